"""The one family of errors a storage raises, whatever its backend.

StorageError
├── StorageUnavailable  the storage could not do it (disk full, permission, network,
│                       a missing bucket)
└── ObjectNotFound      no object under the key (also a FileNotFoundError)

Each error also says whether it is `transient`: whether the same call may succeed later
without anyone changing anything (a dropped connection, a timeout, a 5xx, throttling, a
full disk) or not (a missing object or bucket, a refused credential, a malformed answer).
The backend decides when it translates its own error, once: s3.py for botocore's,
local.py (`unavailable`) for the operating system's. A worker waits out a transient fault
and fails a job at once on a permanent one.

A bad key is a programming error and raises ValueError, not a StorageError.
"""

from __future__ import annotations

import errno

# What the operating system says when a file system may answer again later: busy,
# interrupted, out of space (an operator or the retention sweep frees some), a network
# file system that went away for a while. Permission, a read-only file system or a
# missing folder stay as they are until someone changes them.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.EIO,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ENOLCK,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
    }
)


class StorageError(Exception):
    """A storage operation failed; the message says what, without a stack trace.

    The message may name the object (for logs); ``reason`` says what went wrong without
    naming any key, bucket or path, for a client to read. ``transient``: the fault may
    pass on its own, so the same call may be tried again later.
    """

    def __init__(self, message: str, *, reason: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason
        self.transient = transient


class StorageUnavailable(StorageError):
    """The storage could not carry out the operation (disk, permission, network, bucket).

    Transient unless the backend that raises it says otherwise: a storage that does not
    answer is the usual reason.
    """

    def __init__(self, message: str, *, reason: str | None = None, transient: bool = True) -> None:
        super().__init__(message, reason=reason, transient=transient)


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object is stored under the key: permanent."""


def unavailable(action: str, exc: OSError) -> StorageUnavailable:
    """The storage error for a failed file-system call: transient or not by its errno."""
    return StorageUnavailable(
        f"{action}: {exc.strerror or exc}", transient=exc.errno in TRANSIENT_ERRNOS
    )
