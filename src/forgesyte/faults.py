"""Transient or permanent: the one question the workers and the API ask of a storage or a
database fault, and which of the two it came from.

Each family is classified once, where it is translated: storage when a backend turns its
own error into a StorageError (`StorageError.transient`: storage/s3.py for botocore's,
storage/local.py for the operating system's), the database by the DBAPI error's type and
SQLSTATE (`forgesyte.db.engine.is_transient`, beside `is_lost_race`). A transient fault is
waited out (workers/outages.py) or answered with 503 and `Retry-After` (api/errors.py);
a permanent one fails the job or the request at once.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from forgesyte.db.engine import is_transient as is_transient_database_error
from forgesyte.storage.errors import StorageError

# the types a storage or database fault comes as: a StorageError, a DBAPI error wrapped by
# SQLAlchemy, or no free pooled connection
FAULT_TYPES: tuple[type[Exception], ...] = (StorageError, DBAPIError, PoolTimeout)


class Dependency(StrEnum):
    """What a worker or an API process needs and may lose for a while."""

    STORAGE = "storage"  # where videos and results live: a folder, an S3 bucket
    DATABASE = "database"  # the jobs table: DuckDB, PostgreSQL


def transient_fault(exc: BaseException) -> Dependency | None:
    """The dependency whose passing fault exc is; None when exc is none (a permanent
    fault, or no storage or database error at all)."""
    if isinstance(exc, StorageError):
        return Dependency.STORAGE if exc.transient else None
    if is_transient_database_error(exc):
        return Dependency.DATABASE
    return None
