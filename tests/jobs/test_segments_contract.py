"""The segment operations of the job store, run on every store: in memory, DuckDB, PostgreSQL.

A split job's segments: written once by the job's holder, claimed oldest job first and
lowest segment first, leased (renew, expire, retry, give up), progress over all
segments, stopped by a cancel, removed with the job.
"""

from __future__ import annotations

import uuid

from forgesyte.jobs.models import JobStatus, SegmentStatus
from forgesyte.jobs.segments import SegmentSpan
from forgesyte.jobs.store import JobRecord, JobStore
from tests.jobs.test_store_contract import new_job, run_together
from tests.support.stores import SteppingClock

LEASE_S = 30.0
SPANS = [SegmentSpan(0, 30, 30), SegmentSpan(30, 60, 30), SegmentSpan(60, 100, 40)]


def split_job(store: JobStore, worker: str = "coordinator") -> JobRecord:
    """A running job held by `worker`, split into SPANS."""
    store.create(new_job())
    job = store.claim_next(worker, LEASE_S)
    assert job is not None
    assert store.add_segments(job.job_id, worker, SPANS)
    return job


def test_a_job_is_split_once_by_its_holder(store: JobStore) -> None:
    store.create(new_job())
    job = store.claim_next("holder", LEASE_S)
    assert job is not None
    assert store.segments(job.job_id) == []
    assert not store.add_segments(job.job_id, "someone-else", SPANS)
    assert store.segments(job.job_id) == []
    assert store.add_segments(job.job_id, "holder", SPANS)
    assert not store.add_segments(job.job_id, "holder", SPANS[:1])  # never twice
    segments = store.segments(job.job_id)
    assert [s.seq for s in segments] == [0, 1, 2]
    assert [s.span for s in segments] == SPANS
    assert all(s.status is SegmentStatus.PENDING and s.attempts == 0 for s in segments)
    assert all(s.lease_owner is None and s.frames_done == 0 for s in segments)


def test_pending_job_cannot_be_split(store: JobStore) -> None:
    job = store.create(new_job())
    assert not store.add_segments(job.job_id, "anyone", SPANS)
    assert store.segments(job.job_id) == []


def test_claims_take_the_oldest_jobs_lowest_segment(store: JobStore) -> None:
    first = split_job(store, "a")
    second = split_job(store, "b")
    claimed = [store.claim_segment(f"w{i}", LEASE_S) for i in range(4)]
    assert [(c.job_id, c.seq) for c in claimed if c is not None] == [
        (first.job_id, 0),
        (first.job_id, 1),
        (first.job_id, 2),
        (second.job_id, 0),
    ]
    only = store.claim_segment("w9", LEASE_S, second.job_id)
    assert only is not None and (only.job_id, only.seq) == (second.job_id, 1)
    held = store.segments(first.job_id)[0]
    assert held.status is SegmentStatus.RUNNING and held.lease_owner == "w0"
    assert held.attempts == 1 and held.lease_expires_at is not None


def test_no_segment_of_a_job_that_is_not_running(store: JobStore) -> None:
    job = split_job(store)
    store.cancel(job.job_id)
    assert store.claim_segment("w", LEASE_S) is None


def test_two_claimers_never_share_a_segment(store: JobStore) -> None:
    job = split_job(store)
    got: list[tuple[uuid.UUID, int]] = []

    def claim(index: int) -> None:
        segment = store.claim_segment(f"w{index}", LEASE_S)
        if segment is not None:
            got.append((segment.job_id, segment.seq))

    assert run_together(6, claim) == []
    assert sorted(got) == [(job.job_id, 0), (job.job_id, 1), (job.job_id, 2)]


def test_only_the_holder_writes_a_segment(store: JobStore) -> None:
    job = split_job(store)
    segment = store.claim_segment("w", LEASE_S)
    assert segment is not None
    assert store.holds_segment(job.job_id, 0, "w")
    assert not store.holds_segment(job.job_id, 0, "x")
    assert not store.heartbeat_segment(job.job_id, 0, "x", LEASE_S)
    assert not store.set_segment_progress(job.job_id, 0, "x", 5, LEASE_S)
    assert not store.finish_segment(job.job_id, 0, "x")
    assert not store.fail_segment(job.job_id, 0, "x", "no")
    assert not store.release_segment(job.job_id, 0, "x")
    assert not store.finish_segment(job.job_id, 1, "w")  # pending, held by nobody
    assert store.heartbeat_segment(job.job_id, 0, "w", LEASE_S)
    assert store.finish_segment(job.job_id, 0, "w")
    done = store.segments(job.job_id)[0]
    assert done.status is SegmentStatus.DONE and done.frames_done == 30
    assert done.lease_expires_at is None
    assert not store.holds_segment(job.job_id, 0, "w")
    assert not store.finish_segment(job.job_id, 0, "w")


def test_progress_covers_every_segment(store: JobStore) -> None:
    job = split_job(store)
    assert store.claim_segment("w0", LEASE_S) is not None
    assert store.claim_segment("w1", LEASE_S) is not None
    assert store.set_segment_progress(job.job_id, 0, "w0", 15, LEASE_S)
    current = store.get(job.job_id)
    assert current is not None and current.progress == 15.0  # 15 of 100 frames
    assert store.set_segment_progress(job.job_id, 1, "w1", 30, LEASE_S)
    assert store.finish_segment(job.job_id, 0, "w0")
    assert store.set_segment_progress(job.job_id, 1, "w1", 30, LEASE_S)
    current = store.get(job.job_id)
    assert current is not None and current.progress == 60.0
    assert current.status is JobStatus.RUNNING and current.worker_id == "coordinator"


def test_a_cancel_stops_every_segment(store: JobStore) -> None:
    job = split_job(store)
    assert store.claim_segment("w0", LEASE_S) is not None
    store.cancel(job.job_id)
    assert not store.holds_segment(job.job_id, 0, "w0")
    assert not store.heartbeat_segment(job.job_id, 0, "w0", LEASE_S)
    assert not store.set_segment_progress(job.job_id, 0, "w0", 3, LEASE_S)
    assert not store.finish_segment(job.job_id, 0, "w0")
    assert store.claim_segment("w1", LEASE_S) is None
    assert store.release_segment(job.job_id, 0, "w0")  # handing back stays possible


def test_pending_work_is_a_pending_job_or_a_running_jobs_pending_segment(
    store: JobStore,
) -> None:
    assert not store.has_pending_work()  # empty
    store.create(new_job())
    assert store.has_pending_work()  # a job waits
    job = store.claim_next("coordinator", LEASE_S)
    assert job is not None and not store.has_pending_work()  # running, not split
    assert store.add_segments(job.job_id, "coordinator", SPANS)
    assert store.has_pending_work()  # its segments wait
    for worker in ("w0", "w1", "w2"):
        assert store.claim_segment(worker, LEASE_S) is not None
    assert not store.has_pending_work()  # every segment is held
    assert store.release_segment(job.job_id, 1, "w1")
    assert store.has_pending_work()  # one is back
    store.cancel(job.job_id)
    assert not store.has_pending_work()  # a cancelled job's segments wait for nobody


def test_segments_outlive_a_lost_coordinator(store: JobStore, clock: SteppingClock) -> None:
    job = split_job(store)
    assert store.claim_segment("w0", LEASE_S) is not None
    clock.advance(LEASE_S / 2)
    assert store.heartbeat_segment(job.job_id, 0, "w0", LEASE_S)
    clock.advance(LEASE_S * 0.75)  # the coordinator's lease ran out, the segment's did not
    report = store.recover_expired(max_attempts=3)
    assert report.requeued == [job.job_id]
    assert store.holds_segment(job.job_id, 0, "w0")
    assert store.recover_expired_segments(max_attempts=3).requeued == []
    reclaimed = store.claim_next("next-coordinator", LEASE_S)
    assert reclaimed is not None and reclaimed.job_id == job.job_id
    assert not store.add_segments(job.job_id, "next-coordinator", SPANS)  # not split again
    assert store.finish_segment(job.job_id, 0, "w0")
    assert store.segments(job.job_id)[0].status is SegmentStatus.DONE


def test_a_split_jobs_progress_follows_its_segments_through_a_lost_coordinator(
    store: JobStore, clock: SteppingClock
) -> None:
    job = split_job(store)
    assert store.claim_segment("w0", LEASE_S) is not None
    clock.advance(LEASE_S / 2)
    assert store.set_segment_progress(job.job_id, 0, "w0", 20, LEASE_S)  # 20 of 100 frames
    clock.advance(LEASE_S * 0.75)  # the coordinator's lease ran out, the segment's did not
    assert store.recover_expired(max_attempts=3).requeued == [job.job_id]
    waiting = store.get(job.job_id)
    assert waiting is not None and waiting.status is JobStatus.PENDING
    assert waiting.progress == 20.0  # what its segments did, not a restart's 0
    assert store.set_segment_progress(job.job_id, 0, "w0", 25, LEASE_S)  # work goes on
    waiting = store.get(job.job_id)
    assert waiting is not None and (waiting.status, waiting.progress) == (JobStatus.PENDING, 25.0)
    reclaimed = store.claim_next("next-coordinator", LEASE_S)
    assert reclaimed is not None and reclaimed.job_id == job.job_id
    assert reclaimed.progress == 25.0
    assert store.release(job.job_id, "next-coordinator")  # handed back at a shutdown
    handed_back = store.get(job.job_id)
    assert handed_back is not None and handed_back.progress == 25.0
    # (a job that is not split starts again from 0: test_store_contract.py)


def test_an_expired_segment_is_retried_then_failed(store: JobStore, clock: SteppingClock) -> None:
    job = split_job(store)
    assert store.claim_segment("w0", LEASE_S) is not None
    assert store.claim_segment("w1", LEASE_S) is not None
    assert store.heartbeat_segment(job.job_id, 1, "w1", LEASE_S)
    clock.advance(LEASE_S - 1)
    assert store.heartbeat_segment(job.job_id, 1, "w1", LEASE_S)
    clock.advance(2)
    report = store.recover_expired_segments(max_attempts=2)
    assert report.requeued == [(job.job_id, 0)] and report.failed == []
    lost = store.segments(job.job_id)[0]
    assert lost.status is SegmentStatus.PENDING and lost.lease_owner is None
    assert not store.holds_segment(job.job_id, 0, "w0")
    again = store.claim_segment("w2", LEASE_S)
    assert again is not None and again.seq == 0 and again.attempts == 2
    clock.advance(LEASE_S + 1)
    report = store.recover_expired_segments(max_attempts=2)
    assert (job.job_id, 0) in report.failed
    failed = store.segments(job.job_id)[0]
    assert failed.status is SegmentStatus.FAILED
    assert failed.error_message is not None and "lost 2 times" in failed.error_message


def test_released_and_failed_segments(store: JobStore) -> None:
    job = split_job(store)
    assert store.claim_segment("w0", LEASE_S) is not None
    assert store.release_segment(job.job_id, 0, "w0")
    back = store.segments(job.job_id)[0]
    assert back.status is SegmentStatus.PENDING and back.attempts == 0
    assert store.claim_segment("w0", LEASE_S) is not None
    assert store.release_segment(job.job_id, 0, "w0", count_attempt=True)
    assert store.segments(job.job_id)[0].attempts == 1
    assert store.claim_segment("w0", LEASE_S) is not None
    assert store.fail_segment(job.job_id, 0, "w0", "video could not be decoded")
    failed = store.segments(job.job_id)[0]
    assert failed.status is SegmentStatus.FAILED
    assert failed.error_message == "video could not be decoded"


def test_deleting_a_job_removes_its_segments(store: JobStore) -> None:
    job = split_job(store)
    other = split_job(store, "other")
    store.cancel(job.job_id)
    assert store.delete(job.job_id) is not None
    assert store.segments(job.job_id) == []
    assert len(store.segments(other.job_id)) == 3
