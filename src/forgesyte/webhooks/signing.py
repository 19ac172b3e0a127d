"""Webhook signatures: HMAC-SHA256 over "<timestamp>." + body, as Stripe does it."""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-ForgeSyte-Timestamp"
SIGNATURE_HEADER = "X-ForgeSyte-Signature"
SIGNATURE_SCHEME = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-ForgeSyte-Signature value: sha256=<hex HMAC-SHA256(secret, "<ts>." + body)>."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_SCHEME + digest.hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one delivery attempt (a fresh timestamp unless given)."""
    when = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(when),
        SIGNATURE_HEADER: signature(secret, when, body),
    }
