"""Engine creation for DuckDB (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")

CONFLICT_RETRIES = 50
CONFLICT_BACKOFF_S = 0.005  # seconds, doubled up to a cap on each retry


class DatabaseLockedError(RuntimeError):
    """The DuckDB file is held by another process."""


def is_duckdb(engine: Engine) -> bool:
    """Whether the engine talks to DuckDB."""
    return engine.dialect.name == "duckdb"


def create_db_engine(url: str) -> Engine:
    """Create the engine for a database URL; a DuckDB file's folder is created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "duckdb":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # one connection per API thread (AnyIO's pool has 40) plus the workers: none is dropped
        engine = create_engine(url, pool_size=48, max_overflow=16, pool_pre_ping=False)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    if parsed.get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _utc(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.close()

    return engine


def is_lost_race(exc: BaseException) -> bool:
    """Whether a database error is a lost optimistic-concurrency race, worth retrying.

    DuckDB reports two transactions updating one row as a TransactionException
    ("Conflict on update"); PostgreSQL's equivalents are serialization failures.
    """
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return any(
        marker in text
        for marker in ("Conflict on", "conflict", "could not serialize", "TransactionContext")
    )


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
        delay = min(delay * 2, 0.1)
    raise AssertionError("unreachable")  # pragma: no cover


def describe_lock_error(exc: OperationalError | DBAPIError, url: str) -> str | None:
    """One clear line when a DuckDB file is locked by another process, else None."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    if "Could not set lock" not in text and "Conflicting lock" not in text:
        return None
    database = make_url(url).database
    return (
        f"the DuckDB file {database} is in use by another process; DuckDB allows one process "
        "per file: run the workers inside `forgesyte serve --workers N`, or move the jobs to "
        "PostgreSQL (FORGESYTE_DATABASE_URL=postgresql+psycopg://...) to run separate workers"
    )
