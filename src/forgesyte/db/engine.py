"""Engine creation for DuckDB (embedded default) and PostgreSQL (scale-out), and its errors.

Database errors are recognised by type and SQLSTATE, never by message text: text can
carry what a client sent (an Idempotency-Key), and must not decide a retry. Two questions
are asked of them: `is_lost_race` (retried at once by `retry_on_conflict`) and
`is_transient` (the database may answer later: a caller may wait it out).

A PostgreSQL engine bounds every wait on the database, so that an outage is an error
within seconds, never a hang: connecting (CONNECT_TIMEOUT_S), a dead connection (TCP
keepalives and a user timeout), a statement (STATEMENT_TIMEOUT_S), and a free connection
from the pool (POOL_TIMEOUT_S).
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
from sqlalchemy.exc import OperationalError as WrappedOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

T = TypeVar("T")

CONFLICT_RETRIES = 50
CONFLICT_BACKOFF_S = 0.005  # seconds, doubled up to a cap on each retry
CONFLICT_BACKOFF_CAP_S = 0.1  # seconds

# PostgreSQL's "try the transaction again" states: serialization_failure, deadlock_detected
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# ... and the states that say the server or the way to it failed, not the statement:
# query_canceled (a statement timeout), admin_shutdown, crash_shutdown, cannot_connect_now
# (starting up, shutting down, in recovery), lock_not_available (a lock timeout); and whole
# classes: 08 connection exception, 53 insufficient resources (too many connections, disk
# full, out of memory), 58 system error (I/O).
TRANSIENT_SQLSTATES = RETRYABLE_SQLSTATES | {"57014", "57P01", "57P02", "57P03", "55P03"}
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "58"})

CONNECT_TIMEOUT_S = 3  # whole seconds (libpq's unit): a refused or unrouted server, noticed
STATEMENT_TIMEOUT_S = 30  # the server cancels a statement running longer (57014)
POOL_TIMEOUT_S = 5.0  # seconds to wait for a free pooled connection
DEAD_CONNECTION_S = 10  # sent data unacknowledged this long: the connection is dead
# libpq connection parameters that bound every wait; a URL that sets one keeps its own
POSTGRES_TIMEOUTS: dict[str, int] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 5,  # seconds of silence before the first probe
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": DEAD_CONNECTION_S * 1000,  # milliseconds
}


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
    if parsed.get_backend_name() != "postgresql":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    timeouts = {
        name: value for name, value in POSTGRES_TIMEOUTS.items() if name not in parsed.query
    }
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args=timeouts,
    )

    @event.listens_for(engine, "connect")
    def _session(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        # a session's own setting: an operator's (ALTER ROLE ... SET) is not overridden
        # unless it is none at all; migrations lift it for their transaction (migrate.py)
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, false) "
            "WHERE current_setting('statement_timeout') = '0'",
            (f"{STATEMENT_TIMEOUT_S}s",),
        )
        cursor.close()
        dbapi_connection.commit()

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


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may pass on its own: the same call may succeed later.

    Transient: a lost race (`is_lost_race`), a connection refused, dropped or timed out,
    a server starting up, shutting down or out of resources, a statement or lock timeout,
    no free pooled connection. Permanent: anything the statement or the credentials
    cause (a missing table, a refused privilege, a constraint) and DuckDB's errors other
    than a write conflict (its file is local).

    A connection that PostgreSQL refused carries no SQLSTATE through psycopg (libpq keeps
    only the text; psycopg issue 1188): libpq's own state tells a refused password (or a
    role or database missing under password authentication), which is permanent, from a
    server that could not be reached, which is not. A refusal under trust authentication,
    which asks for no password, cannot be told apart and counts as transient.
    """
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if isinstance(original, duckdb.Error):
        return isinstance(original, duckdb.TransactionException)
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate:
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, WrappedOperationalError):
        return False
    pgconn = getattr(original, "pgconn", None)
    return not (pgconn is not None and getattr(pgconn, "used_password", False))


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
