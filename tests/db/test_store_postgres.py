"""The job store on a real PostgreSQL: create/get, FIFO claims, concurrent claimers."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from forgesyte.db.engine import create_db_engine
from forgesyte.db.migrate import upgrade
from forgesyte.jobs import JobStatus, JobStore, NewJob
from forgesyte.storage.base import video_key

LEASE_S = 60.0  # seconds


@pytest.fixture
def engine(postgres_database_url: str) -> Iterator[Engine]:
    """An engine on a fresh, migrated PostgreSQL database."""
    engine = create_db_engine(postgres_database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> JobStore:
    """A job store on the migrated database."""
    return JobStore(engine)


def _new_job(**options: int) -> NewJob:
    job_id = uuid.uuid4()
    return NewJob(
        job_id=job_id,
        pipeline_id="ocr_only",
        options={"frame_stride": 1, **options},
        input_path=video_key(job_id),
    )


def test_create_then_get(store: JobStore) -> None:
    new = _new_job(max_frames=5)
    created = store.create(new)
    fetched = store.get(new.job_id)

    assert fetched == created
    assert fetched.status is JobStatus.PENDING
    assert fetched.options == {"frame_stride": 1, "max_frames": 5}
    assert fetched.input_path == video_key(new.job_id)
    assert fetched.created_at.utcoffset() is not None  # timezone-aware, as stored
    assert store.get(uuid.uuid4()) is None


def test_claims_are_fifo(store: JobStore) -> None:
    created = [store.create(_new_job()).job_id for _ in range(10)]

    claimed = []
    while (job := store.claim_next("worker-1", LEASE_S)) is not None:
        assert job.status is JobStatus.RUNNING
        assert job.worker_id == "worker-1"
        assert job.attempts == 1
        assert job.lease_expires_at is not None
        claimed.append(job.job_id)

    assert claimed == created
    assert store.count_by_status()[JobStatus.RUNNING.value] == 10


def test_concurrent_claimers_take_each_job_exactly_once(store: JobStore) -> None:
    jobs = 200
    threads = 8
    created = {store.create(_new_job()).job_id for _ in range(jobs)}
    claims: list[list[uuid.UUID]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def claimer(index: int) -> None:
        try:
            start.wait()
            while True:
                job = store.claim_next(f"worker-{index}", LEASE_S)
                if job is not None:
                    claims[index].append(job.job_id)
                elif store.count_by_status()[JobStatus.PENDING.value] == 0:
                    return  # SKIP LOCKED can pass over rows others hold: stop only when drained
        except BaseException as exc:  # a failing thread must fail the test
            errors.append(exc)

    workers = [threading.Thread(target=claimer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers), "a claimer hung"
    assert errors == []

    counts = Counter(job_id for claimed in claims for job_id in claimed)
    assert set(counts) == created
    assert max(counts.values()) == 1, "a job was claimed twice"
    assert sum(1 for claimed in claims if claimed) > 1, "claims were not concurrent"

    for index, claimed in enumerate(claims):
        for job_id in claimed:
            record = store.get(job_id)
            assert record is not None
            assert (record.status, record.worker_id) == (JobStatus.RUNNING, f"worker-{index}")
    assert store.count_by_status() == {
        JobStatus.PENDING.value: 0,
        JobStatus.RUNNING.value: jobs,
        JobStatus.COMPLETED.value: 0,
        JobStatus.FAILED.value: 0,
    }
