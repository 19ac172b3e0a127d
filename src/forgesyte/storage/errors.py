"""The one family of errors a storage raises, whatever its backend.

StorageError
├── StorageUnavailable  the storage could not do it (disk full, permission, network,
│                       a missing bucket): may pass, so a caller may retry
└── ObjectNotFound      no object under the key (also a FileNotFoundError)

A bad key is a programming error and raises ValueError, not a StorageError.
"""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed; the message says what, without a stack trace.

    The message may name the object (for logs); ``reason`` says what went wrong without
    naming any key, bucket or path, for a client to read.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


class StorageUnavailable(StorageError):
    """The storage could not carry out the operation (disk, permission, network, bucket)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object is stored under the key."""
