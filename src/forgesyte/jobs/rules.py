"""The state changes both stores make, written once: jobs and the segments of split jobs.

What a new job starts as, what a claim, each write of a worker that holds a job or a
segment, and an expired lease make of either. `SqlJobStore` and `InMemoryJobStore` inherit
`JobStoreRules` and differ only in how they make a change atomic.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from forgesyte.jobs.changes import JobChangeFeed, JobListener
from forgesyte.jobs.models import JobStatus, SegmentStatus
from forgesyte.jobs.records import JobRecord, NewJob
from forgesyte.search.values import IndexEntries

Clock = Callable[[], datetime]
Status = TypeVar("Status", JobStatus, SegmentStatus)


def lost_worker_message(attempts: int, max_attempts: int) -> str:
    """The error of a job or segment whose lease expired once too often."""
    times = f"{attempts} time" if attempts == 1 else f"{attempts} times"
    tries = f"{max_attempts} attempt{'' if max_attempts == 1 else 's'}"
    return (
        f"the worker running this job was lost {times} (lease expired each time); "
        f"giving up after {tries}"
    )


def pending_record(new: NewJob, now: datetime) -> JobRecord:
    """The snapshot of a job just accepted: pending, nothing run, no attempt counted."""
    return JobRecord(
        job_id=new.job_id,
        status=JobStatus.PENDING,
        pipeline_id=new.pipeline_id,
        options=new.options,
        input_path=new.input_path,
        output_path=None,
        error_message=None,
        progress=0.0,
        attempts=0,
        worker_id=None,
        lease_expires_at=None,
        idempotency_key=new.idempotency_key,
        result_summary=None,
        created_at=now,
        updated_at=now,
        filename=new.filename,
        owner=new.owner,
    )


NEVER_SERVED = datetime(1970, 1, 1, tzinfo=UTC)  # an owner's last claim before its first


def fair_claim_order(job: JobRecord, owner_last_claim: datetime | None) -> tuple[Any, ...]:
    """Where a pending job stands in the fair queue, lowest first: owners never served
    before every other, then the owner whose last claim is oldest (ties by owner name),
    then that owner's oldest job. The SQL claim orders by the same columns
    (`queue_owners.last_claimed_at NULLS FIRST, owner, created_at, job_id`)."""
    last = owner_last_claim or NEVER_SERVED
    return (owner_last_claim is not None, last, job.owner, job.created_at, job.job_id)


def claimed(worker_id: str, lease_until: datetime) -> tuple[JobStatus, dict[str, Any]]:
    """What a claim makes of a pending job, besides counting one more attempt: running,
    held by worker_id until lease_until, progress from the start (a split job's then
    follows its segments)."""
    held = {"worker_id": worker_id, "lease_expires_at": lease_until, "progress": 0.0}
    return JobStatus.RUNNING, held


def claimed_segment(worker_id: str, lease_until: datetime) -> tuple[SegmentStatus, dict[str, Any]]:
    """What a claim makes of a pending segment, besides counting one more attempt: as of a
    job, its frames done from 0."""
    held = {"lease_owner": worker_id, "lease_expires_at": lease_until, "frames_done": 0}
    return SegmentStatus.RUNNING, held


def _expired(
    attempts: int, max_attempts: int, lost: tuple[Status, Status], holder: str, restart: str
) -> tuple[Status, dict[str, Any]]:
    """Failed once max_attempts are used, else pending again with `restart` zeroed; its
    holder column and lease cleared either way. lost: the (failed, pending) statuses."""
    released: dict[str, Any] = {holder: None, "lease_expires_at": None}
    if attempts >= max_attempts:
        return lost[0], {"error_message": lost_worker_message(attempts, max_attempts), **released}
    return lost[1], {restart: 0, **released}


def expired_lease_outcome(attempts: int, max_attempts: int) -> tuple[JobStatus, dict[str, Any]]:
    """What a running job whose lease expired becomes: pending again for another worker,
    or failed once it has used max_attempts. The values to write besides its status."""
    lost = (JobStatus.FAILED, JobStatus.PENDING)
    return _expired(attempts, max_attempts, lost, "worker_id", "progress")


def expired_segment_outcome(
    attempts: int, max_attempts: int
) -> tuple[SegmentStatus, dict[str, Any]]:
    """What a running segment whose lease expired becomes, as a job does; its frames done
    start again from 0."""
    lost = (SegmentStatus.FAILED, SegmentStatus.PENDING)
    return _expired(attempts, max_attempts, lost, "lease_owner", "frames_done")


@dataclass(frozen=True)
class HeldChange:
    """One change to a job its worker holds: the status it moves to and the columns to write."""

    status: JobStatus
    values: dict[str, Any] = field(default_factory=dict)
    uncount_attempt: bool = False  # take back the attempt that the claim counted
    index: IndexEntries | None = None  # a completion's search entries, written with it


@dataclass(frozen=True)
class SegmentChange:
    """One change to a segment its worker holds: the status it moves to and the columns to
    write, under the conditions the flags add."""

    status: SegmentStatus
    values: dict[str, Any] = field(default_factory=dict)
    uncount_attempt: bool = False  # take back the attempt that the claim counted
    while_job_active: bool = False  # only while its job is pending or running (not stopped)
    all_frames_done: bool = False  # frames_done becomes the segment's frames
    job_follows: bool = False  # the job's progress is then set from its segments


class JobStoreRules(abc.ABC):
    """What both stores share: the clock of every write and lease (tests move it on instead
    of sleeping), the change listeners, and every write a worker makes to what it holds,
    each one call of a primitive the store supplies (`_update_held`, `_update_held_segment`).
    """

    def __init__(self, *, clock: Clock, on_change: JobListener | None) -> None:
        self.clock = clock
        self.changes = JobChangeFeed()
        if on_change is not None:
            self.changes.subscribe(on_change)

    def add_change_listener(self, listener: JobListener) -> None:
        """Call listener(JobChange) after this store changes a job (same process only)."""
        self.changes.subscribe(listener)

    @abc.abstractmethod
    def _update_held(self, job_id: uuid.UUID, held_by: str, change: HeldChange) -> bool:
        """Apply change to a job this worker still holds; False if it no longer holds it.

        A job handed back to pending keeps its segments' progress (0 if not split).
        Listeners hear of the change.
        """

    @abc.abstractmethod
    def _update_held_segment(
        self, job_id: uuid.UUID, seq: int, held_by: str, change: SegmentChange
    ) -> bool:
        """Apply change to a segment this worker still holds; False if it no longer holds
        it (or, with change.while_job_active, its job was cancelled or failed). With
        change.job_follows, the job's progress follows and its listeners hear of it."""

    def _lease_until(self, lease_seconds: float) -> datetime:
        return self.clock() + timedelta(seconds=lease_seconds)

    # -- a held job ----------------------------------------------------------------------

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew the worker's lease on a job; False if the job was taken away."""
        renewed = {"lease_expires_at": self._lease_until(lease_seconds)}
        return self._update_held(job_id, worker_id, HeldChange(JobStatus.RUNNING, renewed))

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record progress (percent, two decimals) and renew the lease; False if taken away."""
        values = {
            "progress": round(progress, 2),
            "lease_expires_at": self._lease_until(lease_seconds),
        }
        return self._update_held(job_id, worker_id, HeldChange(JobStatus.RUNNING, values))

    def complete(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        output_path: str,
        summary: dict[str, Any],
        index: IndexEntries | None = None,
    ) -> bool:
        """Mark a job completed with its results path, and its timeline's entries in the
        search index in the same transaction; False if the job was taken away."""
        values = {
            "progress": 100.0,
            "output_path": output_path,
            "result_summary": summary,
            "error_message": None,
            "lease_expires_at": None,
        }
        change = HeldChange(JobStatus.COMPLETED, values, index=index)
        return self._update_held(job_id, worker_id, change)

    def fail(self, job_id: uuid.UUID, worker_id: str, message: str) -> bool:
        """Mark a job failed with a message; False if the job was taken away."""
        values = {"error_message": message, "lease_expires_at": None}
        return self._update_held(job_id, worker_id, HeldChange(JobStatus.FAILED, values))

    def release(self, job_id: uuid.UUID, worker_id: str, *, count_attempt: bool = False) -> bool:
        """Hand a job back to pending; the attempt is not counted unless count_attempt."""
        values = {"worker_id": None, "lease_expires_at": None, "progress": 0.0}
        change = HeldChange(JobStatus.PENDING, values, uncount_attempt=not count_attempt)
        return self._update_held(job_id, worker_id, change)

    # -- a held segment ------------------------------------------------------------------
    # a segment's holder keeps going while its job is running or back in the queue (its
    # coordinator was lost); a cancelled or failed job stops it

    def heartbeat_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, lease_seconds: float
    ) -> bool:
        """Renew the lease on a segment; False when not held or its job stopped."""
        renewed = {"lease_expires_at": self._lease_until(lease_seconds)}
        change = SegmentChange(SegmentStatus.RUNNING, renewed, while_job_active=True)
        return self._update_held_segment(job_id, seq, worker_id, change)

    def set_segment_progress(
        self, job_id: uuid.UUID, seq: int, worker_id: str, frames_done: int, lease_seconds: float
    ) -> bool:
        """Record frames done and renew the lease; the job's progress follows (running,
        or pending again after its coordinator was lost)."""
        values = {"frames_done": frames_done, "lease_expires_at": self._lease_until(lease_seconds)}
        change = SegmentChange(
            SegmentStatus.RUNNING, values, while_job_active=True, job_follows=True
        )
        return self._update_held_segment(job_id, seq, worker_id, change)

    def finish_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Mark a held segment done; False when not held or its job stopped."""
        change = SegmentChange(
            SegmentStatus.DONE,
            {"lease_expires_at": None},
            while_job_active=True,
            all_frames_done=True,
        )
        return self._update_held_segment(job_id, seq, worker_id, change)

    def fail_segment(self, job_id: uuid.UUID, seq: int, worker_id: str, message: str) -> bool:
        """Mark a held segment failed with a message; False when not held."""
        values = {"error_message": message, "lease_expires_at": None}
        change = SegmentChange(SegmentStatus.FAILED, values)
        return self._update_held_segment(job_id, seq, worker_id, change)

    def release_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, *, count_attempt: bool = False
    ) -> bool:
        """Hand a held segment back to pending; the attempt counts only if count_attempt."""
        values = {"lease_owner": None, "lease_expires_at": None, "frames_done": 0}
        change = SegmentChange(SegmentStatus.PENDING, values, uncount_attempt=not count_attempt)
        return self._update_held_segment(job_id, seq, worker_id, change)
