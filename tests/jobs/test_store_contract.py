"""The JobStore contract, run on every store: in memory, a DuckDB file, PostgreSQL.

Lifecycle, FIFO claims, leases and their recovery, attempts, idempotency, change
notifications and concurrency; then what only the SQL store does (its locking).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import event, select

from forgesyte.db.tables import Job
from forgesyte.jobs.changes import JobChange
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import DuplicateIdempotencyKeyError, JobStore, NewJob
from tests.support.stores import SteppingClock

LEASE_S = 30.0
CLAIMERS = 8  # threads claiming at once
CLAIM_ROUNDS = 10


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


def run_together(count: int, target: object) -> list[BaseException]:
    """Run target(index) on `count` threads released at once; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            start.wait()
            target(index)  # type: ignore[operator]
        except BaseException as exc:  # surfaced to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return errors


# -- creating and reading -------------------------------------------------------------------


def test_create_then_get_returns_a_pending_job(store: JobStore) -> None:
    created = store.create(new_job())
    fetched = store.get(created.job_id)
    assert fetched is not None and fetched == created
    assert fetched.status is JobStatus.PENDING
    assert fetched.progress == 0.0
    assert fetched.attempts == 0
    assert fetched.worker_id is None and fetched.lease_expires_at is None
    assert fetched.options == {"frame_stride": 1, "max_frames": None}
    assert fetched.created_at.tzinfo is not None
    assert fetched.created_at == fetched.updated_at
    assert store.get(uuid.uuid4()) is None


def test_snapshots_are_copies(store: JobStore) -> None:
    created = store.create(new_job())
    created.options["frame_stride"] = 99
    fetched = store.get(created.job_id)
    assert fetched is not None and fetched.options["frame_stride"] == 1


def test_idempotency_key_is_unique(store: JobStore) -> None:
    first = store.create(new_job(idempotency_key="k-1"))
    with pytest.raises(DuplicateIdempotencyKeyError):
        store.create(new_job(idempotency_key="k-1"))
    found = store.get_by_idempotency_key("k-1")
    assert found is not None and found.job_id == first.job_id
    assert store.get_by_idempotency_key("k-2") is None
    store.create(new_job())  # many jobs without a key are fine
    store.create(new_job())
    assert store.count_by_status() == {
        "pending": 3,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }


def test_concurrent_creates_with_one_key_keep_one_job_at_once(store: JobStore) -> None:
    """A key whose text reads like a database race must not be retried as one."""
    created: list[uuid.UUID] = []
    duplicates: list[str] = []

    def submit(_index: int) -> None:
        try:
            created.append(store.create(new_job(idempotency_key="no-conflict-here")).job_id)
        except DuplicateIdempotencyKeyError as exc:
            duplicates.append(str(exc))

    started = time.monotonic()
    assert run_together(6, submit) == []
    assert time.monotonic() - started < 3.0
    assert len(created) == 1 and len(duplicates) == 5
    found = store.get_by_idempotency_key("no-conflict-here")
    assert found is not None and found.job_id == created[0]


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_a_job_id_is_taken_once(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    with pytest.raises(ValueError, match="exists already"):
        store.create(job)
    assert store.count_by_status()["pending"] == 1


def test_existing_ids_and_the_oldest_job(store: JobStore) -> None:
    assert store.oldest_created_at() is None
    assert store.existing_job_ids([uuid.uuid4()]) == set()
    first = store.create(new_job())
    second = store.create(new_job())
    stranger = uuid.uuid4()
    assert store.existing_job_ids([first.job_id, second.job_id, stranger]) == {
        first.job_id,
        second.job_id,
    }
    assert store.existing_job_ids([]) == set()
    assert store.oldest_created_at() == first.created_at


# -- claiming and holding -------------------------------------------------------------------


def test_claims_come_in_fifo_order_and_each_once(store: JobStore) -> None:
    ids = [store.create(new_job()).job_id for _ in range(5)]
    claimed = [store.claim_next("w1", LEASE_S) for _ in range(5)]
    assert [job.job_id for job in claimed if job] == ids
    assert all(job is not None and job.status is JobStatus.RUNNING for job in claimed)
    assert all(job is not None and job.attempts == 1 for job in claimed)
    assert all(job is not None and job.worker_id == "w1" for job in claimed)
    assert store.claim_next("w1", LEASE_S) is None


def test_a_claim_sets_the_lease(store: JobStore, clock: SteppingClock) -> None:
    store.create(new_job())
    before = clock()
    claimed = store.claim_next("w1", LEASE_S)
    assert claimed is not None and claimed.lease_expires_at is not None
    lease_s = (claimed.lease_expires_at - before).total_seconds()
    assert LEASE_S <= lease_s < LEASE_S + 1


def test_updated_at_moves_on_every_write_and_created_at_never(
    store: JobStore, clock: SteppingClock
) -> None:
    job = store.create(new_job())
    claimed = store.claim_next("w1", LEASE_S)
    assert claimed is not None
    assert claimed.updated_at > job.updated_at
    clock.advance(1.0)
    assert store.set_progress(job.job_id, "w1", 40.004, LEASE_S)
    after = store.get(job.job_id)
    assert after is not None
    assert after.progress == 40.0
    assert after.updated_at > claimed.updated_at
    assert after.lease_expires_at is not None and claimed.lease_expires_at is not None
    assert after.lease_expires_at > claimed.lease_expires_at
    assert after.created_at == job.created_at


def test_complete_and_fail_need_the_holding_worker(store: JobStore) -> None:
    first = store.create(new_job())
    second = store.create(new_job())
    store.claim_next("w1", LEASE_S)
    store.claim_next("w1", LEASE_S)
    assert not store.complete(first.job_id, "someone-else", "results/x.json", {})
    assert not store.set_progress(first.job_id, "someone-else", 5.0, LEASE_S)
    assert store.complete(first.job_id, "w1", f"results/{first.job_id}.json", {"n": 1})
    assert store.fail(second.job_id, "w1", "video could not be decoded")
    done, failed = store.get(first.job_id), store.get(second.job_id)
    assert done is not None and failed is not None
    assert done.status is JobStatus.COMPLETED and done.progress == 100.0
    assert done.output_path == f"results/{first.job_id}.json"
    assert done.result_summary == {"n": 1} and done.lease_expires_at is None
    assert failed.status is JobStatus.FAILED and failed.lease_expires_at is None
    assert failed.error_message == "video could not be decoded"
    # a finished job cannot be changed again, nor a job nobody claimed
    assert not store.fail(first.job_id, "w1", "late")
    assert not store.heartbeat(second.job_id, "w1", LEASE_S)
    assert not store.release(second.job_id, "w1")
    assert not store.heartbeat(uuid.uuid4(), "w1", LEASE_S)


def test_monitoring_reads_queue_age_durations_and_frames(
    store: JobStore, clock: SteppingClock
) -> None:
    assert store.oldest_pending_created_at() is None
    assert store.finished_job_durations() == [] and store.frames_analysed_total() == 0
    quick, slow, waiting = (store.create(new_job()) for _ in range(3))
    store.claim_next("w1", LEASE_S)
    store.claim_next("w1", LEASE_S)
    clock.advance(3.0)
    assert store.complete(
        quick.job_id, "w1", f"results/{quick.job_id}.json", {"frames_analysed": 7}
    )
    clock.advance(100.0)
    assert store.fail(slow.job_id, "w1", "video could not be decoded")
    assert store.oldest_pending_created_at() == waiting.created_at
    assert store.frames_analysed_total() == 7
    completed, failed = store.finished_job_durations(bounds=(5.0, 60.0, 600.0))
    assert (completed.status, completed.pipeline_id) == ("completed", "ocr_only")
    assert completed.count == 1 and completed.bucket_counts == (1, 1, 1)
    assert 3.0 <= completed.sum_s < 4.0
    assert failed.status == "failed" and failed.bucket_counts == (0, 0, 1)
    assert 103.0 <= failed.sum_s < 104.0


def test_release_hands_a_job_back_without_counting_the_attempt(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim_next("w1", LEASE_S)
    assert store.set_progress(job.job_id, "w1", 50.0, LEASE_S)
    assert store.release(job.job_id, "w1")
    back = store.get(job.job_id)
    assert back is not None
    assert back.status is JobStatus.PENDING and back.progress == 0.0
    assert back.attempts == 0 and back.worker_id is None and back.lease_expires_at is None
    again = store.claim_next("w2", LEASE_S)
    assert again is not None and again.job_id == job.job_id and again.worker_id == "w2"
    assert not store.heartbeat(job.job_id, "w1", LEASE_S)  # w1 handed it back


def test_release_may_count_the_attempt(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim_next("w1", LEASE_S)
    assert store.release(job.job_id, "w1", count_attempt=True)
    back = store.get(job.job_id)
    assert back is not None and back.status is JobStatus.PENDING and back.attempts == 1
    again = store.claim_next("w2", LEASE_S)
    assert again is not None and again.attempts == 2


# -- leases that expire ---------------------------------------------------------------------


def test_expired_lease_requeues_then_fails_when_attempts_run_out(
    store: JobStore, clock: SteppingClock
) -> None:
    job = store.create(new_job())
    for attempt in (1, 2):
        claimed = store.claim_next(f"w{attempt}", LEASE_S)
        assert claimed is not None and claimed.attempts == attempt
        clock.advance(LEASE_S + 1)
        report = store.recover_expired(max_attempts=3)
        assert report.requeued == [job.job_id] and report.failed == []
        requeued = store.get(job.job_id)
        assert requeued is not None and requeued.status is JobStatus.PENDING
        assert requeued.worker_id is None and requeued.progress == 0.0
        assert not store.heartbeat(job.job_id, f"w{attempt}", LEASE_S)  # the lost worker lost it
    store.claim_next("w3", LEASE_S)
    clock.advance(LEASE_S + 1)
    report = store.recover_expired(max_attempts=3)
    assert report.failed == [job.job_id] and report.requeued == []
    final = store.get(job.job_id)
    assert final is not None and final.status is JobStatus.FAILED
    assert final.error_message is not None and "lost 3 times" in final.error_message
    assert final.attempts == 3 and final.worker_id is None
    assert store.recover_expired(max_attempts=3).failed == []  # only once


def test_a_live_or_renewed_lease_is_not_recovered(store: JobStore, clock: SteppingClock) -> None:
    job = store.create(new_job())
    store.claim_next("w1", LEASE_S)
    assert store.recover_expired(max_attempts=3).requeued == []
    for _ in range(3):  # three lease periods, renewed in each
        clock.advance(LEASE_S * 0.6)
        assert store.heartbeat(job.job_id, "w1", LEASE_S)
        report = store.recover_expired(max_attempts=3)
        assert report.requeued == [] and report.failed == []
    running = store.get(job.job_id)
    assert running is not None and running.status is JobStatus.RUNNING
    assert running.attempts == 1 and running.worker_id == "w1"


# -- being told -----------------------------------------------------------------------------


def test_listeners_hear_every_change_and_only_changes(store: JobStore) -> None:
    heard: list[JobChange] = []
    store.add_change_listener(heard.append)
    first = store.create(new_job()).job_id
    second = store.create(new_job()).job_id
    store.claim_next("w1", LEASE_S)
    assert not store.set_progress(first, "someone-else", 1.0, LEASE_S)  # refused: not heard
    store.set_progress(first, "w1", 10.0, LEASE_S)
    store.heartbeat(first, "w1", LEASE_S)
    store.complete(first, "w1", "results/a.json", {})
    store.claim_next("w1", LEASE_S)
    store.release(second, "w1")
    store.claim_next("w1", LEASE_S)
    store.fail(second, "w1", "broken")
    pending, running = JobStatus.PENDING, JobStatus.RUNNING
    assert heard == [
        JobChange(first, pending),
        JobChange(second, pending),
        JobChange(first, running),
        JobChange(first, running),
        JobChange(first, running),
        JobChange(first, JobStatus.COMPLETED),
        JobChange(second, running),
        JobChange(second, pending),
        JobChange(second, running),
        JobChange(second, JobStatus.FAILED),
    ]


def test_recovery_is_heard_and_a_failing_listener_harms_nothing(
    store: JobStore, clock: SteppingClock
) -> None:
    heard: list[JobChange] = []

    def broken(_change: JobChange) -> None:
        raise RuntimeError("listener bug")

    store.add_change_listener(broken)
    store.add_change_listener(heard.append)
    lost = store.create(new_job()).job_id
    store.claim_next("w1", LEASE_S)
    clock.advance(LEASE_S + 1)
    assert store.recover_expired(max_attempts=1).failed == [lost]
    assert heard[-1] == JobChange(lost, JobStatus.FAILED)
    again = store.create(new_job()).job_id
    store.claim_next("w1", LEASE_S)
    clock.advance(LEASE_S + 1)
    assert store.recover_expired(max_attempts=3).requeued == [again]
    assert heard[-1] == JobChange(again, JobStatus.PENDING)


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_claimers_never_get_the_same_job(store: JobStore) -> None:
    ids = {store.create(new_job()).job_id for _ in range(CLAIMERS * CLAIM_ROUNDS)}
    claims: list[list[uuid.UUID]] = [[] for _ in range(CLAIMERS)]
    next_round = threading.Barrier(CLAIMERS)

    def claim_one_a_round(index: int) -> None:
        # in each round every claimer races the others for one job
        for _ in range(CLAIM_ROUNDS):
            while (job := store.claim_next(f"w{index}", LEASE_S)) is None:
                # SKIP LOCKED may pass over rows others hold: try again while any is pending
                if store.count_by_status()["pending"] == 0:
                    break
            if job is not None:
                claims[index].append(job.job_id)
            next_round.wait()

    assert run_together(CLAIMERS, claim_one_a_round) == []
    counts = Counter(job_id for claimed in claims for job_id in claimed)
    assert set(counts) == ids
    assert max(counts.values()) == 1, "a job was claimed twice"
    assert [len(claimed) for claimed in claims] == [CLAIM_ROUNDS] * CLAIMERS
    for index, claimed in enumerate(claims):
        for job_id in claimed:
            record = store.get(job_id)
            assert record is not None and record.worker_id == f"w{index}"
            assert record.status is JobStatus.RUNNING and record.attempts == 1
    assert store.count_by_status() == {
        "pending": 0,
        "running": CLAIMERS * CLAIM_ROUNDS,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }


# -- what only the SQL store does -----------------------------------------------------------


@pytest.mark.parametrize("store", ["duckdb", "postgresql"], indirect=True)
def test_the_claim_locks_with_skip_locked_on_postgresql_only(store: SqlJobStore) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    store.create(new_job())
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert store.claim_next("w1", LEASE_S) is not None
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    claims = [s for s in statements if s.lstrip().upper().startswith("UPDATE JOBS")]
    assert len(claims) == 1
    skip_locked = "FOR UPDATE OF JOBS SKIP LOCKED" in claims[0].upper()
    assert skip_locked == (store.engine.dialect.name == "postgresql")


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_claim_passes_over_a_job_another_transaction_holds(store: SqlJobStore) -> None:
    first = store.create(new_job()).job_id
    second = store.create(new_job()).job_id
    claimed: list[uuid.UUID | None] = []
    with store.engine.connect() as other, other.begin():
        # another claimer is between its SELECT ... FOR UPDATE and its UPDATE
        other.execute(select(Job.job_id).where(Job.job_id == first).with_for_update())
        claimer = threading.Thread(
            target=lambda: claimed.append(getattr(store.claim_next("w2", LEASE_S), "job_id", None))
        )
        claimer.start()
        claimer.join(timeout=20)
        assert not claimer.is_alive(), "the claim waited for the locked row"
    assert claimed == [second]
    again = store.claim_next("w3", LEASE_S)
    assert again is not None and again.job_id == first
