"""The job list at 10,000 jobs on DuckDB and PostgreSQL: paging visits each once, the
newest-first query uses the (created_at, job_id) index, and its time is reported."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, text

from forgesyte.db.tables import Job
from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobPageCursor
from tests.support.stores import ENGINE_FIXTURES

JOBS = 10_000
BATCH = 2_000
TIMED_QUERIES = 20
STATUSES = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.PENDING, JobStatus.CANCELLED]


@pytest.fixture(params=["duckdb", "postgresql"])
def store(request: pytest.FixtureRequest) -> SqlJobStore:
    engine = request.getfixturevalue(ENGINE_FIXTURES[request.param])
    return SqlJobStore(engine)


def _insert_jobs(store: SqlJobStore) -> list[uuid.UUID]:
    """10,000 jobs in bulk, a millisecond apart (a few share a timestamp: ties by job_id)."""
    start = utcnow() - timedelta(days=1)
    rows = []
    for index in range(JOBS):
        job_id = uuid.uuid4()
        at = start + timedelta(milliseconds=index - index % 7)  # groups of 7 share a time
        rows.append(
            {
                "job_id": job_id,
                "status": STATUSES[index % len(STATUSES)].value,
                "pipeline_id": "ocr_only" if index % 3 else "detect",
                "options": {},
                "input_path": f"videos/{job_id}.mp4",
                "progress": 0.0,
                "attempts": 0,
                "created_at": at,
                "updated_at": at,
            }
        )
    with store.engine.begin() as connection:
        for offset in range(0, JOBS, BATCH):
            connection.execute(insert(Job), rows[offset : offset + BATCH])
        if store.engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE jobs"))
    return [row["job_id"] for row in rows]


def _median_ms(action: object) -> float:
    times = []
    for _ in range(TIMED_QUERIES):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def test_the_list_at_10000_jobs(store: SqlJobStore, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    ids = _insert_jobs(store)
    insert_s = time.perf_counter() - started

    seen: list[uuid.UUID] = []
    after: JobPageCursor | None = None
    previous = None
    while True:
        page = store.list_page(limit=200, after=after)
        for job in page:
            key = (job.created_at, job.job_id)
            assert previous is None or key < previous, "not newest first"
            previous = key
        seen.extend(job.job_id for job in page)
        if len(page) < 200:
            break
        after = JobPageCursor(page[-1].created_at, page[-1].job_id)
    assert len(seen) == JOBS and set(seen) == set(ids)

    newest = store.list_page(limit=1, after=None)[0]
    deep = store.list_page(limit=5000, after=None)[-1]
    first_ms = _median_ms(lambda: store.list_page(limit=50))
    deep_ms = _median_ms(
        lambda: store.list_page(limit=50, after=JobPageCursor(deep.created_at, deep.job_id))
    )
    filtered_ms = _median_ms(
        lambda: store.list_page(limit=50, status=JobStatus.FAILED, pipeline_id="detect")
    )
    assert newest.job_id == seen[0]
    name = store.engine.dialect.name
    if name == "postgresql":
        with store.engine.connect() as connection:
            plan = "\n".join(
                str(row[0])
                for row in connection.execute(
                    text(
                        "EXPLAIN SELECT * FROM jobs WHERE created_at < now() "
                        "ORDER BY created_at DESC, job_id DESC LIMIT 51"
                    )
                )
            )
        assert "ix_jobs_created_at_job_id" in plan, plan
    line = (
        f"job list at {JOBS} jobs on {name}: first page {first_ms:.1f} ms, page after 5,000 "
        f"{deep_ms:.1f} ms, status+pipeline filter {filtered_ms:.1f} ms (median of "
        f"{TIMED_QUERIES}, limit 50); bulk insert {insert_s:.1f} s"
    )
    with capsys.disabled():
        print("\n" + line)
