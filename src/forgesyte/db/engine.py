"""Engine creation for DuckDB (embedded default) and PostgreSQL (scale-out), and its errors.

Database errors are recognised by type and SQLSTATE, never by message text: text can
carry what a client sent (an Idempotency-Key), and must not decide a retry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb
import duckdb_engine
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

CONFLICT_RETRIES = 50
CONFLICT_BACKOFF_S = 0.005  # seconds, doubled up to a cap on each retry
CONFLICT_BACKOFF_CAP_S = 0.1  # seconds

# PostgreSQL's "try the transaction again" states: serialization_failure, deadlock_detected
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


class CachingDuckDBDialect(duckdb_engine.Dialect):
    """duckdb_engine's dialect with SQLAlchemy's compiled-statement cache turned on.

    duckdb_engine declares ``supports_statement_cache = False`` (as third-party dialects
    did by default when SQLAlchemy 1.4 made them declare it), so every statement was
    compiled again at each execution: 1-2 ms of CPU per query on this project's queries,
    the idle workers' poll among them. Its SQL comes from SQLAlchemy's PostgreSQL
    compiler, which is cache-safe; duckdb_engine adds only an identifier preparer and a
    TRY_CAST construct, both pure functions of the statement.
    """

    supports_statement_cache = True


registry.register("duckdb.cached", __name__, "CachingDuckDBDialect")
DUCKDB_DRIVER = "duckdb+cached"


class DatabaseLockedError(RuntimeError):
    """The DuckDB file is held by another process; the message says what to do."""


def create_db_engine(url: str) -> Engine:
    """Create the engine for a database URL; a DuckDB file's folder is created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "duckdb":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # one connection per API thread (AnyIO's pool has 40) plus the workers: none is dropped
        engine = create_engine(
            parsed.set(drivername=DUCKDB_DRIVER),
            pool_size=48,
            max_overflow=16,
            pool_pre_ping=False,
        )
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    if parsed.get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _utc(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.close()

    return engine


def display_url(url: str) -> str:
    """The database URL fit for a log line: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def is_lost_race(exc: BaseException) -> bool:
    """Whether a database error is a lost concurrency race, worth retrying.

    DuckDB reports two transactions writing one row as a TransactionException;
    PostgreSQL's equivalents are the SQLSTATEs 40001 (serialization failure) and
    40P01 (deadlock). Nothing else is retried, whatever its message says.
    """
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if isinstance(original, duckdb.TransactionException):
        return True
    return getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES


def retry_on_conflict(operation: Callable[[], T]) -> T:
    """Run a database operation, retrying it while it loses write-write races."""
    delay = CONFLICT_BACKOFF_S
    for attempt in range(CONFLICT_RETRIES):
        try:
            return operation()
        except DBAPIError as exc:
            if not is_lost_race(exc) or attempt == CONFLICT_RETRIES - 1:
                raise
        time.sleep(delay)
        delay = min(delay * 2, CONFLICT_BACKOFF_CAP_S)
    raise AssertionError("unreachable")  # pragma: no cover


def _is_duckdb_file_lock(exc: DBAPIError) -> bool:
    # DuckDB has no error type or code of its own for a held file lock: an IOException
    # whose text DuckDB writes (the database path is the operator's, never a client's)
    original = exc.orig
    return isinstance(original, duckdb.IOException) and "Could not set lock" in str(original)


@contextlib.contextmanager
def lock_errors_translated(url: str) -> Iterator[None]:
    """Turn DuckDB's "file held by another process" into a DatabaseLockedError."""
    try:
        yield
    except DBAPIError as exc:
        if not _is_duckdb_file_lock(exc):
            raise
        database = make_url(url).database
        raise DatabaseLockedError(
            f"the DuckDB file {database} is in use by another process; DuckDB allows one "
            "process per file: run the workers inside `forgesyte serve --workers N`, or move "
            "the jobs to PostgreSQL (FORGESYTE_DATABASE_URL=postgresql+psycopg://...) to run "
            "separate workers"
        ) from None
