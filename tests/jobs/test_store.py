"""The job store on DuckDB and on PostgreSQL: lifecycle, FIFO claims, leases, concurrency."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from forgesyte.jobs.models import Job, JobStatus, utcnow
from forgesyte.jobs.store import DuplicateIdempotencyKeyError, JobStore, NewJob


def new_job(**overrides: object) -> NewJob:
    job_id = uuid.uuid4()
    values: dict[str, object] = {
        "job_id": job_id,
        "pipeline_id": "ocr_only",
        "options": {"frame_stride": 1, "max_frames": None},
        "input_path": f"videos/{job_id}.mp4",
    }
    values.update(overrides)
    return NewJob(**values)  # type: ignore[arg-type]


def test_create_then_get_returns_a_pending_job(store: JobStore) -> None:
    created = store.create(new_job())
    fetched = store.get(created.job_id)
    assert fetched is not None
    assert fetched.status is JobStatus.PENDING
    assert fetched.progress == 0.0
    assert fetched.attempts == 0
    assert fetched.options == {"frame_stride": 1, "max_frames": None}
    assert fetched.created_at.tzinfo is not None
    assert fetched.created_at == fetched.updated_at
    assert store.get(uuid.uuid4()) is None


def test_claims_come_in_fifo_order_and_each_once(store: JobStore) -> None:
    ids = [store.create(new_job()).job_id for _ in range(5)]
    claimed = [store.claim_next("w1", 30) for _ in range(5)]
    assert [job.job_id for job in claimed if job] == ids
    assert all(job is not None and job.status is JobStatus.RUNNING for job in claimed)
    assert all(job is not None and job.attempts == 1 for job in claimed)
    assert store.claim_next("w1", 30) is None


def test_updated_at_moves_on_every_write_and_created_at_never(store: JobStore) -> None:
    job = store.create(new_job())
    claimed = store.claim_next("w1", 30)
    assert claimed is not None
    time.sleep(0.01)
    assert store.set_progress(job.job_id, "w1", 40.0, 30)
    after = store.get(job.job_id)
    assert after is not None
    assert after.progress == 40.0
    assert after.updated_at > claimed.updated_at
    assert after.created_at == job.created_at


def test_complete_and_fail_need_the_holding_worker(store: JobStore) -> None:
    first = store.create(new_job())
    second = store.create(new_job())
    store.claim_next("w1", 30)
    store.claim_next("w1", 30)
    assert not store.complete(first.job_id, "someone-else", "results/x.json", {})
    assert store.complete(first.job_id, "w1", f"results/{first.job_id}.json", {"n": 1})
    assert store.fail(second.job_id, "w1", "video could not be decoded")
    done, failed = store.get(first.job_id), store.get(second.job_id)
    assert done is not None and failed is not None
    assert done.status is JobStatus.COMPLETED and done.progress == 100.0
    assert done.result_summary == {"n": 1}
    assert failed.status is JobStatus.FAILED
    assert failed.error_message == "video could not be decoded"
    # a finished job cannot be changed again
    assert not store.fail(first.job_id, "w1", "late")
    assert not store.heartbeat(second.job_id, "w1", 30)


def test_release_hands_a_job_back_without_counting_the_attempt(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim_next("w1", 30)
    assert store.release(job.job_id, "w1")
    back = store.get(job.job_id)
    assert back is not None
    assert back.status is JobStatus.PENDING
    assert back.attempts == 0 and back.worker_id is None
    again = store.claim_next("w2", 30)
    assert again is not None and again.job_id == job.job_id and again.worker_id == "w2"


def _expire(store: JobStore, job_id: uuid.UUID) -> None:
    with store.session() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.job_id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_expired_lease_requeues_then_fails_when_attempts_run_out(store: JobStore) -> None:
    job = store.create(new_job())
    for attempt in (1, 2):
        claimed = store.claim_next(f"w{attempt}", 30)
        assert claimed is not None and claimed.attempts == attempt
        _expire(store, job.job_id)
        report = store.recover_expired(max_attempts=3)
        assert report.requeued == [job.job_id] and report.failed == []
        assert not store.heartbeat(job.job_id, f"w{attempt}", 30)  # the lost worker lost it
    store.claim_next("w3", 30)
    _expire(store, job.job_id)
    report = store.recover_expired(max_attempts=3)
    assert report.failed == [job.job_id]
    final = store.get(job.job_id)
    assert final is not None and final.status is JobStatus.FAILED
    assert final.error_message is not None and "lost 3 times" in final.error_message


def test_a_live_lease_is_not_recovered(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim_next("w1", 30)
    assert store.recover_expired(max_attempts=3).requeued == []
    running = store.get(job.job_id)
    assert running is not None and running.status is JobStatus.RUNNING


def test_idempotency_key_is_unique(store: JobStore) -> None:
    first = store.create(new_job(idempotency_key="k-1"))
    with pytest.raises(DuplicateIdempotencyKeyError):
        store.create(new_job(idempotency_key="k-1"))
    found = store.get_by_idempotency_key("k-1")
    assert found is not None and found.job_id == first.job_id
    store.create(new_job())  # many jobs without a key are fine
    store.create(new_job())
    assert store.count_by_status()["pending"] == 3


def test_concurrent_claimers_never_get_the_same_job(store: JobStore) -> None:
    ids = {store.create(new_job()).job_id for _ in range(150)}
    threads = 8
    claims: list[list[uuid.UUID]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def claim_until_drained(index: int) -> None:
        try:
            start.wait()
            while True:
                job = store.claim_next(f"w{index}", 30)
                if job is not None:
                    claims[index].append(job.job_id)
                elif store.count_by_status()["pending"] == 0:
                    return  # SKIP LOCKED may pass over rows others hold: stop once drained
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=claim_until_drained, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "a claimer hung"
    assert errors == []
    counts = Counter(job_id for claimed in claims for job_id in claimed)
    assert set(counts) == ids
    assert max(counts.values()) == 1, "a job was claimed twice"
    assert sum(1 for claimed in claims if claimed) > 1, "claims were not concurrent"
    for index, claimed in enumerate(claims):
        for job_id in claimed:
            record = store.get(job_id)
            assert record is not None and record.worker_id == f"w{index}"
            assert record.status is JobStatus.RUNNING and record.attempts == 1
    assert store.count_by_status() == {"pending": 0, "running": 150, "completed": 0, "failed": 0}


def test_the_claim_locks_with_skip_locked_on_postgresql_only(store: JobStore) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    store.create(new_job())
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert store.claim_next("w1", 30) is not None
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    claims = [s for s in statements if s.lstrip().upper().startswith("UPDATE JOBS")]
    assert len(claims) == 1
    skip_locked = "FOR UPDATE SKIP LOCKED" in claims[0].upper()
    assert skip_locked == (store.engine.dialect.name == "postgresql")


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_claim_passes_over_a_job_another_transaction_holds(store: JobStore) -> None:
    first = store.create(new_job()).job_id
    second = store.create(new_job()).job_id
    claimed: list[uuid.UUID | None] = []
    with store.engine.connect() as other, other.begin():
        # another claimer is between its SELECT ... FOR UPDATE and its UPDATE
        other.execute(select(Job.job_id).where(Job.job_id == first).with_for_update())
        claimer = threading.Thread(
            target=lambda: claimed.append(getattr(store.claim_next("w2", 30), "job_id", None))
        )
        claimer.start()
        claimer.join(timeout=20)
        assert not claimer.is_alive(), "the claim waited for the locked row"
    assert claimed == [second]
    again = store.claim_next("w3", 30)
    assert again is not None and again.job_id == first
