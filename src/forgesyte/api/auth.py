"""Who is calling: API keys made, digested and looked up, and the `Caller` they resolve to.

A key is `fsk_` and 43 characters of base64url (32 random bytes: 256 bits): the prefix makes
a leaked key easy to find (a secret scanner, a grep of a log). The server keeps only its
SHA-256 digest; a lookup is by digest, so no comparison of key text against stored text
happens at all, and `FORGESYTE_API_KEY` is compared by digest in constant time.

Each API process caches lookups for at most LOOKUP_TTL_S (found or not, and whether any
key exists), so a revoked key is refused by every process within that, and a busy key
costs one database read per second per process. `last_used_at` is written at most once a
minute per key (`KeyLookups` asks only then; the store's UPDATE holds the same condition,
so several processes write it once). Nothing here logs a key or puts one in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from forgesyte.jobs.keys import (
    ADMIN_NAME,
    LAST_USED_EVERY,
    KeyRecord,
    KeyRing,
    Role,
    owner_filter,
)
from forgesyte.jobs.records import JobRecord

KEY_PREFIX = "fsk_"  # what every key this server makes starts with
KEY_RANDOM_BYTES = 32  # 256 bits of randomness per key
LOOKUP_TTL_S = 1.0  # seconds a lookup is trusted: a revoked key works at most this long
MAX_CACHED_LOOKUPS = 10_000  # digests remembered per process (unknown ones included)


def new_key() -> str:
    """A new random key: the prefix and 32 random bytes in base64url."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def key_digest(key: str) -> str:
    """The SHA-256 digest (hex) the server stores and looks a key up by."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the key's name (a job's owner) and its role."""

    name: str
    role: Role

    @property
    def owner_filter(self) -> str | None:
        """The owner lists and searches are limited to: a user's own name; None: all."""
        return owner_filter(self.role, self.name)

    def may_read(self, job: JobRecord) -> bool:
        """Whether the caller may see this job (a user: only its own)."""
        return self.role is not Role.USER or job.owner == self.name


ADMIN = Caller(ADMIN_NAME, Role.ADMIN)  # FORGESYTE_API_KEY, and every caller of an open server


class KeyLookups:
    """This process's view of the keys: `FORGESYTE_API_KEY` and the store's, cached briefly.

    Thread-safe: lookups run in the thread pool.
    """

    def __init__(self, store: KeyRing, admin_key: str | None, ttl_s: float = LOOKUP_TTL_S):
        self.store = store
        self.ttl_s = ttl_s
        self._admin_digest = key_digest(admin_key).encode() if admin_key else None
        self._lock = threading.Lock()
        self._found: dict[str, tuple[float, KeyRecord | None]] = {}  # digest -> (until, key)
        self._any: tuple[float, bool] | None = None  # (until, whether a stored key exists)
        self._touched: dict[str, float] = {}  # key name -> when this process last wrote it

    def open(self) -> bool:
        """Whether the server needs no key: no FORGESYTE_API_KEY and no stored key."""
        if self._admin_digest is not None:
            return False
        now = time.monotonic()
        with self._lock:
            if self._any is not None and now < self._any[0]:
                return not self._any[1]
        exists = self.store.has_keys()
        with self._lock:
            self._any = (now + self.ttl_s, exists)
        return not exists

    def caller(self, presented: str | None) -> Caller | None:
        """The caller a request's key makes, or None: no valid key where one is needed.

        Blocking (a database read at most once per LOOKUP_TTL_S per key): call it from the
        thread pool.
        """
        if presented:
            digest = key_digest(presented)
            if self._admin_digest is not None and hmac.compare_digest(
                digest.encode(), self._admin_digest
            ):
                return ADMIN
            key = self._lookup(digest)
            if key is not None:
                self._touch(key.name)
                return Caller(key.name, key.role)
        return ADMIN if self.open() else None

    def forget(self) -> None:
        """Drop every cached lookup (this process just changed the keys)."""
        with self._lock:
            self._found.clear()
            self._any = None

    def _lookup(self, digest: str) -> KeyRecord | None:
        now = time.monotonic()
        with self._lock:
            cached = self._found.get(digest)
            if cached is not None and now < cached[0]:
                return cached[1]
        key = self.store.key_by_digest(digest)
        with self._lock:
            if len(self._found) >= MAX_CACHED_LOOKUPS:
                self._found.clear()  # random keys tried in bulk cannot grow it without bound
            self._found[digest] = (now + self.ttl_s, key)
        return key

    def _touch(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(name, -1e18) < LAST_USED_EVERY.total_seconds():
                return
            self._touched[name] = now
        self.store.touch_key(name)
