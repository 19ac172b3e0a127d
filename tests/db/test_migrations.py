"""Alembic upgrade -> downgrade -> upgrade on a real DuckDB file and a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from forgesyte.db.engine import create_db_engine
from forgesyte.db.migrate import current_revision, downgrade, upgrade

JOB_INDEXES = {"ix_jobs_status_created_at", "ix_jobs_idempotency_key", "ix_jobs_created_at_job_id"}
OWNER_INDEX = "ix_jobs_status_owner_created_at"
HEAD = "0005_keys"
SEARCH_TABLES = {"search_jobs", "search_text", "search_objects"}


@pytest.fixture(params=["duckdb", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database of each kind."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'jobs.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _job_indexes(engine: Engine) -> set[str]:
    """Index names on the jobs table (duckdb-engine cannot reflect indexes: ask DuckDB)."""
    if engine.dialect.name == "duckdb":
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'jobs'")
            )
            return {str(name) for (name,) in rows}
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'"))
        return {str(name) for (name,) in rows} - {"jobs_pkey"}


def _columns(engine: Engine) -> set[str]:
    """Column names of the jobs table (information_schema works on both engines)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'")
        )
        return {str(name) for (name,) in rows}


def _assert_at_head(engine: Engine) -> None:
    assert current_revision(engine) == HEAD
    assert {"jobs", "job_webhooks", "job_segments", *SEARCH_TABLES} <= _tables(engine)
    assert {"api_keys", "queue_owners"} <= _tables(engine)
    owner_index = {OWNER_INDEX} if engine.dialect.name == "postgresql" else set()
    assert _job_indexes(engine) == JOB_INDEXES | owner_index
    assert {"job_id", "status", "created_at", "lease_expires_at", "filename", "owner"} <= (
        _columns(engine)
    )


def _assert_empty(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert "jobs" not in _tables(engine)
    assert _job_indexes(engine) == set()


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    _assert_empty(engine)
    upgrade(engine)
    _assert_at_head(engine)
    downgrade(engine, "base")
    _assert_empty(engine)
    upgrade(engine)
    _assert_at_head(engine)


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    _assert_at_head(engine)


def test_session_database_migrates(postgres_url: str) -> None:
    """The session's forgesyte_test database (the URL the fixtures hand out) migrates too."""
    engine = create_db_engine(postgres_url)
    try:
        upgrade(engine)
        _assert_at_head(engine)
        downgrade(engine, "base")
        _assert_empty(engine)
    finally:
        engine.dispose()


def test_downgrading_job_management_keeps_cancelled_jobs_readable(engine: Engine) -> None:
    """Down from 0002 a cancelled job becomes failed (0001's code knows no `cancelled`);
    the outbox and the list index go; up again they come back."""
    upgrade(engine)
    with engine.begin() as connection:
        for job_id, status in (("a", "cancelled"), ("b", "completed")):
            connection.execute(
                text(
                    "INSERT INTO jobs (job_id, status, pipeline_id, options, input_path, progress,"
                    " attempts, created_at, updated_at) VALUES (:id, :status, 'ocr_only', '{}',"
                    " 'videos/x.mp4', 0, 0, now(), now())"
                ),
                {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, job_id)), "status": status},
            )
    downgrade(engine, "0001_create_jobs")
    assert current_revision(engine) == "0001_create_jobs"
    assert "job_webhooks" not in _tables(engine)
    assert _job_indexes(engine) == JOB_INDEXES - {"ix_jobs_created_at_job_id"}
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, error_message FROM jobs ORDER BY status"))
        assert [tuple(row) for row in rows] == [
            ("completed", None),
            ("failed", "cancelled on request"),
        ]
    upgrade(engine)
    _assert_at_head(engine)


def _insert_job(engine: Engine, name: str) -> str:
    job_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (job_id, status, pipeline_id, options, input_path, progress,"
                " attempts, created_at, updated_at) VALUES (:id, 'completed', 'ocr_only', '{}',"
                " 'videos/x.mp4', 100, 1, now(), now())"
            ),
            {"id": job_id},
        )
    return job_id


def test_the_search_index_migration_goes_up_and_down_with_jobs_kept(engine: Engine) -> None:
    """0004 adds jobs.filename (null for older jobs) and the index tables; down again the
    column and tables go, the jobs and their indexes stay (DuckDB: made again)."""
    upgrade(engine, "0003_job_segments")
    older = _insert_job(engine, "older")
    upgrade(engine)
    _assert_at_head(engine)
    newer = _insert_job(engine, "newer")
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET filename = :name WHERE job_id = :id"),
            {"name": "station.mp4", "id": newer},
        )
        rows = connection.execute(text("SELECT job_id, filename FROM jobs ORDER BY filename"))
        assert {str(job_id): name for job_id, name in rows} == {older: None, newer: "station.mp4"}
    downgrade(engine, "0003_job_segments")
    assert current_revision(engine) == "0003_job_segments"
    assert not SEARCH_TABLES & _tables(engine) and "search_trigrams" not in _tables(engine)
    assert "filename" not in _columns(engine)
    assert _job_indexes(engine) == JOB_INDEXES
    with engine.connect() as connection:
        ids = {str(job_id) for (job_id,) in connection.execute(text("SELECT job_id FROM jobs"))}
    assert ids == {older, newer}
    upgrade(engine)
    _assert_at_head(engine)


def test_the_keys_migration_gives_existing_jobs_to_the_admin_and_goes_down(engine: Engine) -> None:
    """0005 adds jobs.owner (existing jobs: the admin's; rows that name none: the admin's
    too), its index, api_keys and queue_owners; down again they go and the jobs stay."""
    upgrade(engine, "0004_search_index")
    older = _insert_job(engine, "older")
    upgrade(engine)
    _assert_at_head(engine)
    unnamed = _insert_job(engine, "unnamed")  # an INSERT that names no owner
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (name, role, digest, created_at)"
                " VALUES ('alice', 'user', :digest, now())"
            ),
            {"digest": "0" * 64},
        )
        rows = connection.execute(text("SELECT job_id, owner FROM jobs"))
        assert {str(job_id): owner for job_id, owner in rows} == {older: "admin", unnamed: "admin"}
    downgrade(engine, "0004_search_index")
    assert current_revision(engine) == "0004_search_index"
    assert not {"api_keys", "queue_owners"} & _tables(engine)
    assert "owner" not in _columns(engine)
    assert _job_indexes(engine) == JOB_INDEXES
    with engine.connect() as connection:
        ids = {str(job_id) for (job_id,) in connection.execute(text("SELECT job_id FROM jobs"))}
    assert ids == {older, unnamed}
    upgrade(engine)
    _assert_at_head(engine)
