"""Completion webhooks: signed POSTs to a job's callback_url, sent from an outbox in the store.

- `signing`: the signature headers and how a receiver checks them.
- `guard`: which callback URLs are allowed (http(s), no private addresses by default).
- `sender`: the background thread that claims due deliveries and sends them.
"""
