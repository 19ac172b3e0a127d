"""The HTTP API: the app factory (api/app.py) and one router per resource (api/routes/).

Nothing is re-exported here: the `worker` command imports api/context.py, and loading
the app (FastAPI, every route) there cost it a second of start-up.
"""
