"""Each job store: in memory, on a real DuckDB file, on the real PostgreSQL test server."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from forgesyte.db.tables import Job
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobStore

ENGINE_FIXTURES = {"duckdb": "duckdb_engine", "postgresql": "postgres_engine"}
DATABASES = list(ENGINE_FIXTURES)
STORE_KINDS = ["memory", *DATABASES]


class SteppingClock:
    """A clock for a store under test: each reading is a microsecond after the last.

    Time never stands still (two writes never share a timestamp) and `advance` moves it
    on, so a test can expire a lease without waiting for it.
    """

    def __init__(self) -> None:
        self._now = utcnow()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(microseconds=1)
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock on by this many seconds."""
        with self._lock:
            self._now += timedelta(seconds=seconds)


def make_store(
    kind: str, request: pytest.FixtureRequest, clock: SteppingClock | None = None
) -> JobStore:
    """A job store of this kind on a fresh database (from the engine fixtures)."""
    if kind == "memory":
        return InMemoryJobStore(clock=clock or utcnow)
    if kind not in ENGINE_FIXTURES:
        raise ValueError(f"unknown job store {kind!r}; known: {STORE_KINDS}")
    engine: Engine = request.getfixturevalue(ENGINE_FIXTURES[kind])
    return SqlJobStore(engine, clock=clock or utcnow)


def insert_job_row(
    engine: Engine, job_id: uuid.UUID | None = None, idempotency_key: str | None = None
) -> uuid.UUID:
    """Insert a pending job's row straight into the jobs table (no store); its id."""
    job_id = job_id or uuid.uuid4()
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(Job).values(
                job_id=job_id,
                status=JobStatus.PENDING.value,
                pipeline_id="ocr_only",
                options={},
                input_path=f"videos/{job_id}.mp4",
                idempotency_key=idempotency_key,
                progress=0.0,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    return job_id
