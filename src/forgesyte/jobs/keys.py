"""API keys as the job store keeps them: roles, the stored record (a digest, never a key),
the store's `KeyRing` protocol, and the owner rules of jobs written once.

A job belongs to the key that submitted it, by the key's name. Names are unique for good:
a revoked key keeps its row, so a new key never takes a name that jobs still carry.
`FORGESYTE_API_KEY` acts as ADMIN_NAME, a name no stored key may take. Plain Python.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

ADMIN_NAME = "admin"  # the owner of the jobs FORGESYTE_API_KEY (or an open server) submits
KEY_NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key


class Role(enum.StrEnum):
    """What a key may do: `admin` everything, keys included; `user` its own jobs only;
    `viewer` read every job, change nothing."""

    ADMIN = "admin"
    USER = "user"
    VIEWER = "viewer"


@dataclass(frozen=True)
class KeyRecord:
    """A stored key: its name, role, SHA-256 digest (hex) and times."""

    name: str
    role: Role
    digest: str
    created_at: datetime
    last_used_at: datetime | None = None


class DuplicateKeyName(Exception):
    """A key (live or revoked) already has this name."""


def owner_filter(role: Role, name: str) -> str | None:
    """The owner whose jobs a caller's lists and searches are limited to; None: every job."""
    return name if role is Role.USER else None


class KeyRing(Protocol):
    """The API keys: what the API's key routes and its key check need of the store."""

    def create_key(self, name: str, role: Role, digest: str) -> KeyRecord:
        """Store a new key by its digest; DuplicateKeyName if the name was ever used."""
        ...

    def key_by_digest(self, digest: str) -> KeyRecord | None:
        """The live (not revoked) key with this digest, or None."""
        ...

    def list_keys(self) -> list[KeyRecord]:
        """Every live key, by name."""
        ...

    def revoke_key(self, name: str) -> bool:
        """Revoke the live key of this name (its row and name stay); False if there is none."""
        ...

    def has_keys(self) -> bool:
        """Whether any live key exists (a server with none and no FORGESYTE_API_KEY is open)."""
        ...

    def touch_key(self, name: str) -> None:
        """Record that the key was used now, unless that was recorded less than
        LAST_USED_EVERY ago (the condition is in the write: any process may call it)."""
        ...
