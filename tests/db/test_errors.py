"""Database errors recognised by type and SQLSTATE, and a held DuckDB file told once, in db/."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg.errors
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from forgesyte.cli import main
from forgesyte.db.engine import DatabaseLockedError, display_url, is_lost_race, retry_on_conflict
from forgesyte.db.migrate import current_revision, open_engine, run_schema_command
from forgesyte.db.tables import Job
from forgesyte.jobs.sql_store import SqlJobStore
from tests.support.stores import insert_job_row

HEAD = "0005_keys"
HOLD_FILE = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(
    ("original", "retried"),
    [
        (duckdb.TransactionException("TransactionContext Error: Conflict on update!"), True),
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (duckdb.ConstraintException('Duplicate key "idempotency_key: no-conflict-here"'), False),
        (psycopg.errors.UniqueViolation("Key (idempotency_key)=(Conflict on update)"), False),
        (duckdb.IOException("conflict, could not serialize, TransactionContext"), False),
        (Exception("Conflict on update"), False),
    ],
)
def test_races_are_told_by_type_and_sqlstate_not_by_text(
    original: Exception, retried: bool
) -> None:
    assert is_lost_race(DBAPIError("UPDATE jobs", {}, original)) is retried


def test_only_database_errors_are_races() -> None:
    assert not is_lost_race(RuntimeError("Conflict on update"))


def test_duckdb_reports_a_write_write_race_that_is_retried(duckdb_engine: Engine) -> None:
    job_id = insert_job_row(duckdb_engine)
    progress = update(Job).where(Job.job_id == job_id)
    with duckdb_engine.connect() as first, duckdb_engine.connect() as second:
        first.begin()
        first.execute(progress.values(progress=1.0))
        second.begin()
        with pytest.raises(DBAPIError) as raised:
            second.execute(progress.values(progress=2.0))
        second.rollback()
        first.commit()
    assert is_lost_race(raised.value)

    attempts: list[int] = []

    def lose_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise raised.value
        return "done"

    assert retry_on_conflict(lose_once) == "done" and len(attempts) == 2


def test_postgresql_reports_a_serialization_failure_that_is_retried(
    postgres_engine: Engine,
) -> None:
    job_id = insert_job_row(postgres_engine)
    row = select(Job.progress).where(Job.job_id == job_id)
    progress = update(Job).where(Job.job_id == job_id)
    snapshot = postgres_engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        snapshot.begin()
        snapshot.execute(row)  # the snapshot is taken here
        with postgres_engine.begin() as other:
            other.execute(progress.values(progress=1.0))
        with pytest.raises(OperationalError) as raised:
            snapshot.execute(progress.values(progress=2.0))
        snapshot.rollback()
    finally:
        snapshot.close()
    assert getattr(raised.value.orig, "sqlstate", None) == "40001"
    assert is_lost_race(raised.value)


@pytest.mark.parametrize("engine_fixture", ["duckdb_engine", "postgres_engine"])
def test_a_duplicate_key_quoting_race_words_is_not_retried(
    request: pytest.FixtureRequest, engine_fixture: str
) -> None:
    engine: Engine = request.getfixturevalue(engine_fixture)
    key = "Conflict on update: could not serialize (TransactionContext) conflict"
    insert_job_row(engine, idempotency_key=key)
    attempts: list[int] = []

    def insert_again() -> uuid.UUID:
        attempts.append(1)
        return insert_job_row(engine, idempotency_key=key)

    with pytest.raises(IntegrityError) as raised:
        retry_on_conflict(insert_again)
    assert attempts == [1]
    assert not is_lost_race(raised.value)


@pytest.fixture
def held_duckdb_file(tmp_path: Path) -> Iterator[str]:
    """The URL of a DuckDB file another process holds open."""
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield f"duckdb:///{path}"
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_held_duckdb_file_is_one_clear_error(held_duckdb_file: str) -> None:
    for opening in (
        lambda: open_engine(held_duckdb_file),
        lambda: open_engine(held_duckdb_file, upgrade_schema=False),
        lambda: SqlJobStore.open(held_duckdb_file),
        lambda: run_schema_command(held_duckdb_file, "current"),
    ):
        with pytest.raises(DatabaseLockedError) as raised:
            opening()
        message = str(raised.value)
        assert "held.duckdb is in use by another process" in message
        assert "forgesyte serve --workers N" in message and "PostgreSQL" in message
        assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_db_command_prints_the_lock_error(
    held_duckdb_file: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORGESYTE_DATABASE_URL", held_duckdb_file)
    assert main(["db", "upgrade"]) == 2
    assert "forgesyte: the DuckDB file" in capsys.readouterr().err


def test_other_duckdb_io_errors_are_not_a_lock(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.duckdb"
    folder.mkdir()
    with pytest.raises(DBAPIError) as raised:
        open_engine(f"duckdb:///{folder}")
    assert not isinstance(raised.value, DatabaseLockedError)


def test_schema_commands_by_url(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'jobs.duckdb'}"
    assert run_schema_command(url, "current") is None
    assert run_schema_command(url, "upgrade") == HEAD
    assert run_schema_command(url, "downgrade", "base") is None
    with pytest.raises(ValueError, match="needs a revision"):
        run_schema_command(url, "downgrade")
    store = SqlJobStore.open(url)
    try:
        assert store.count_by_status()["pending"] == 0
    finally:
        store.close()


def test_an_engine_opened_without_an_upgrade_leaves_the_schema_alone(tmp_path: Path) -> None:
    engine = open_engine(f"duckdb:///{tmp_path / 'jobs.duckdb'}", upgrade_schema=False)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_the_displayed_url_hides_the_password() -> None:
    shown = display_url("postgresql+psycopg://forgesyte:s3cret@db.example:5432/jobs")
    assert "s3cret" not in shown
    assert shown == "postgresql+psycopg://forgesyte:***@db.example:5432/jobs"
