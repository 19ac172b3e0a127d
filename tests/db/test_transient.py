"""Transient or permanent, told once for database errors (db/engine.py `is_transient`),
and the waits a PostgreSQL engine bounds.

Against psycopg's and DuckDB's real exceptions where the real servers produce them here:
a refused port, a backend terminated by an administrator, a statement timeout, a
serialization failure, no free pooled connection, a refused password, a missing table, a
refused privilege, a duplicate key, DuckDB's write conflict and its catalog and
constraint errors. Constructed (the same classes psycopg raises, with their SQLSTATE)
only for what a single test server cannot be made to say cheaply: a deadlock, too many
connections, a server starting up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import duckdb
import psycopg
import psycopg.errors
import pytest
from sqlalchemy import Engine, create_engine, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from forgesyte.db import migrate
from forgesyte.db.engine import (
    CONNECT_TIMEOUT_S,
    STATEMENT_TIMEOUT_S,
    create_db_engine,
    is_transient,
)
from forgesyte.db.tables import Job
from forgesyte.faults import Dependency, transient_fault
from tests.support.services import PostgresServer, free_port
from tests.support.stores import insert_job_row

PASSWORD_ROLE = "forgesyte_with_password"


def _raised(call: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as raised:
        call()
    return raised.value


def _query(engine: Engine, sql: str) -> Callable[[], object]:
    def run() -> object:
        with engine.connect() as connection:
            return connection.execute(text(sql)).all()

    return run


# -- PostgreSQL, transient --------------------------------------------------------------


def test_a_refused_connection_is_transient() -> None:
    engine = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    error = _raised(_query(engine, "SELECT 1"))
    assert isinstance(error, OperationalError) and isinstance(error.orig, psycopg.OperationalError)
    assert getattr(error.orig, "sqlstate", None) is None  # libpq's own failure: no SQLSTATE
    assert is_transient(error) and transient_fault(error) is Dependency.DATABASE


def test_a_connection_the_server_ends_is_transient(postgres_engine: Engine) -> None:
    def terminated() -> object:
        with postgres_engine.connect() as doomed:
            pid = doomed.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with postgres_engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return doomed.execute(text("SELECT 1")).all()

    error = _raised(terminated)
    assert isinstance(error, DBAPIError) and isinstance(error.orig, psycopg.errors.AdminShutdown)
    assert is_transient(error)


def test_a_statement_timeout_is_transient(postgres_engine: Engine) -> None:
    def too_slow() -> object:
        with postgres_engine.connect() as connection:
            connection.execute(text("SET statement_timeout = '50ms'"))
            return connection.execute(text("SELECT pg_sleep(1)")).all()

    error = _raised(too_slow)
    assert isinstance(error, DBAPIError) and isinstance(error.orig, psycopg.errors.QueryCanceled)
    assert is_transient(error)


def test_a_serialization_failure_is_transient(postgres_engine: Engine) -> None:
    job_id = uuid.uuid4()
    insert_job_row(postgres_engine, job_id)
    progress = update(Job).where(Job.job_id == job_id)
    snapshot = postgres_engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        snapshot.begin()
        snapshot.execute(text("SELECT 1 FROM jobs"))  # the snapshot is taken here
        with postgres_engine.begin() as other:
            other.execute(progress.values(progress=1.0))
        error = _raised(lambda: snapshot.execute(progress.values(progress=2.0)))
        snapshot.rollback()
    finally:
        snapshot.close()
    assert isinstance(error, DBAPIError)
    assert isinstance(error.orig, psycopg.errors.SerializationFailure)
    assert is_transient(error)


def test_no_free_pooled_connection_is_transient(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        with engine.connect():
            error = _raised(engine.connect)
    finally:
        engine.dispose()
    assert is_transient(error) and transient_fault(error) is Dependency.DATABASE


@pytest.mark.parametrize(
    "original",
    [
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.CrashShutdown("terminating connection because of crash"),
        psycopg.errors.DiskFull("could not extend file"),
        psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
    ],
)
def test_states_the_test_server_cannot_be_made_to_say_cheaply_are_transient(
    original: psycopg.Error,
) -> None:
    assert original.sqlstate is not None  # the class psycopg raises for that SQLSTATE
    assert is_transient(OperationalError("SELECT 1", {}, original))


# -- PostgreSQL, permanent --------------------------------------------------------------


@pytest.fixture
def password_role(postgres_server: PostgresServer) -> Iterator[str]:
    """A role that must log in with a password: pg_hba.conf gains a line for it alone."""
    admin = psycopg.connect(
        host=postgres_server.host, port=postgres_server.port, user="postgres", autocommit=True
    )
    hba_file = str(admin.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
    with open(hba_file, encoding="utf-8") as handle:
        original = handle.read()
    rule = f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
    with open(hba_file, "w", encoding="utf-8") as handle:
        handle.write(rule + original)
    admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right'")
    admin.execute("SELECT pg_reload_conf()")
    try:
        yield f"postgresql+psycopg://{PASSWORD_ROLE}:%s@127.0.0.1:{postgres_server.port}/postgres"
    finally:
        with open(hba_file, "w", encoding="utf-8") as handle:
            handle.write(original)
        admin.execute("SELECT pg_reload_conf()")
        admin.execute(f"DROP ROLE {PASSWORD_ROLE}")
        admin.close()


def test_a_refused_password_is_permanent(password_role: str) -> None:
    assert _query(create_db_engine(password_role % "right"), "SELECT 1")() == [(1,)]
    error = _raised(_query(create_db_engine(password_role % "wrong"), "SELECT 1"))
    assert isinstance(error, OperationalError) and isinstance(error.orig, psycopg.OperationalError)
    assert getattr(error.orig, "sqlstate", None) is None  # psycopg issue 1188: none is given
    assert not is_transient(error) and transient_fault(error) is None


def test_a_password_refused_by_its_sqlstate_is_permanent() -> None:
    """What the server says (28P01), should a psycopg to come pass it on."""
    refused = psycopg.errors.InvalidPassword("password authentication failed")
    assert not is_transient(OperationalError("connect", {}, refused))


def test_a_missing_table_a_refused_privilege_and_a_duplicate_are_permanent(
    postgres_engine: Engine,
) -> None:
    missing = _raised(_query(postgres_engine, "SELECT * FROM no_such_table"))
    assert isinstance(missing, DBAPIError)
    assert isinstance(missing.orig, psycopg.errors.UndefinedTable)

    role = f"forgesyte_reader_{uuid.uuid4().hex[:8]}"
    with postgres_engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} NOLOGIN"))
    refused = _raised(_query(postgres_engine, f"SET ROLE {role}; SELECT * FROM jobs"))
    with postgres_engine.begin() as connection:
        connection.execute(text(f"DROP ROLE {role}"))
    assert isinstance(refused, DBAPIError)
    assert isinstance(refused.orig, psycopg.errors.InsufficientPrivilege)

    job_id = uuid.uuid4()
    insert_job_row(postgres_engine, job_id)
    duplicate = _raised(lambda: insert_job_row(postgres_engine, job_id))
    assert isinstance(duplicate, DBAPIError)
    assert isinstance(duplicate.orig, psycopg.errors.UniqueViolation)

    for error in (missing, refused, duplicate):
        assert not is_transient(error) and transient_fault(error) is None


def test_errors_of_other_kinds_are_no_database_faults() -> None:
    assert not is_transient(RuntimeError("connection refused"))
    assert not is_transient(OSError("connection refused"))


# -- DuckDB -----------------------------------------------------------------------------


def test_duckdb_s_write_conflict_is_transient_and_its_other_errors_are_not(
    duckdb_engine: Engine,
) -> None:
    job_id = uuid.uuid4()
    insert_job_row(duckdb_engine, job_id)
    progress = update(Job).where(Job.job_id == job_id)
    with duckdb_engine.connect() as first, duckdb_engine.connect() as second:
        first.begin()
        first.execute(progress.values(progress=1.0))
        second.begin()
        conflict = _raised(lambda: second.execute(progress.values(progress=2.0)))
        second.rollback()
        first.commit()
    assert isinstance(conflict, DBAPIError)
    assert isinstance(conflict.orig, duckdb.TransactionException)
    assert is_transient(conflict)

    catalog = _raised(_query(duckdb_engine, "SELECT * FROM no_such_table"))
    duplicate = _raised(lambda: insert_job_row(duckdb_engine, job_id))
    assert isinstance(catalog, DBAPIError) and isinstance(catalog.orig, duckdb.CatalogException)
    assert isinstance(duplicate, DBAPIError)
    assert isinstance(duplicate.orig, duckdb.ConstraintException)
    # an OperationalError without a SQLSTATE, as libpq's are: DuckDB's are told by type
    io_error = OperationalError("SELECT 1", {}, duckdb.IOException("disk I/O error"))
    for error in (catalog, duplicate, io_error):
        assert not is_transient(error)


# -- the waits a PostgreSQL engine bounds --------------------------------------------------


def test_a_postgresql_session_has_a_statement_timeout_and_migrations_lift_it(
    postgres_database_url: str,
) -> None:
    engine = create_db_engine(postgres_database_url)
    try:
        assert _query(engine, "SHOW statement_timeout")() == [(f"{STATEMENT_TIMEOUT_S}s",)]
        assert _query(engine, "SHOW TIME ZONE")() == [("UTC",)]
        with engine.connect() as connection:
            parameters = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert parameters["connect_timeout"] == str(CONNECT_TIMEOUT_S)
        assert parameters["tcp_user_timeout"] == "10000"
        migrate.upgrade(engine)  # under SET LOCAL statement_timeout = 0: see migrate.py
        assert _query(engine, "SHOW statement_timeout")() == [(f"{STATEMENT_TIMEOUT_S}s",)]
    finally:
        engine.dispose()
    own = create_db_engine(postgres_database_url + "?connect_timeout=7")
    try:
        with own.connect() as connection:
            parameters = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert parameters["connect_timeout"] == "7"  # the URL's own is kept
    finally:
        own.dispose()
