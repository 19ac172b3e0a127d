"""Taking a submit, free of HTTP and SQL: the service (service.py) and its refusals
(errors.py); api/ adapts requests to it."""
