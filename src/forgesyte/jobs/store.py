"""The job store seam: the `JobStore` protocol and the values that cross it.

The jobs table is the queue. Every operation the API, the CLI and the workers use is a
method of `JobStore`; two implementations keep the same contract
(tests/jobs/test_store_contract.py runs one test suite on each):

- `SqlJobStore` (jobs/sql_store.py): DuckDB or PostgreSQL through SQLAlchemy.
- `InMemoryJobStore` (jobs/memory_store.py): a thread-safe double for tests.

Adding an operation: declare it here with its docstring, implement it in both stores,
and add its contract test.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from forgesyte.jobs.changes import JobChange, JobListener
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.options import JobOptions
from forgesyte.jobs.segments import SegmentStore
from forgesyte.jobs.stats import DURATION_BUCKETS_S, DurationHistogram

__all__ = [
    "DuplicateIdempotencyKeyError",
    "JobChange",
    "JobFinishedError",
    "JobListener",
    "JobOptions",
    "JobPageCursor",
    "JobRecord",
    "JobRunningError",
    "JobStore",
    "NewJob",
    "RecoveryReport",
    "WebhookDelivery",
]


@dataclass(frozen=True)
class JobRecord:
    """An immutable snapshot of a job."""

    job_id: uuid.UUID
    status: JobStatus
    pipeline_id: str
    options: dict[str, Any]
    input_path: str
    output_path: str | None
    error_message: str | None
    progress: float
    attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    idempotency_key: str | None
    result_summary: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewJob:
    """What the API knows of a job when it accepts an upload."""

    job_id: uuid.UUID
    pipeline_id: str
    options: dict[str, Any]
    input_path: str
    idempotency_key: str | None = None
    callback_url: str | None = None  # checked by the API; the store keeps its outbox row


@dataclass(frozen=True)
class JobPageCursor:
    """Where a newest-first page of the job list stopped: its last job's position."""

    created_at: datetime
    job_id: uuid.UUID


@dataclass(frozen=True)
class WebhookDelivery:
    """One claimed attempt to tell a finished job's callback_url how it ended."""

    job_id: uuid.UUID
    event_id: uuid.UUID
    callback_url: str
    attempt: int  # 1 for the first try
    status: JobStatus
    error_message: str | None
    updated_at: datetime


@dataclass(frozen=True)
class RecoveryReport:
    """What a sweep of expired leases did."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]


class DuplicateIdempotencyKeyError(Exception):
    """Another job already holds this idempotency key."""


class JobFinishedError(Exception):
    """The job has already ended (completed, failed or cancelled); it cannot be cancelled."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job is already {status.value}")
        self.status = status


class JobRunningError(Exception):
    """The job is running; it cannot be deleted (cancel it first)."""


def lost_worker_message(attempts: int, max_attempts: int) -> str:
    """The error of a job whose lease expired once too often."""
    times = f"{attempts} time" if attempts == 1 else f"{attempts} times"
    tries = f"{max_attempts} attempt{'' if max_attempts == 1 else 's'}"
    return (
        f"the worker running this job was lost {times} (lease expired each time); "
        f"giving up after {tries}"
    )


class JobStore(SegmentStore, Protocol):
    """Reads and writes jobs; the store is also the FIFO queue.

    Every change to a running job is conditional on the worker still holding it (status
    running, worker_id matching): a worker whose lease was taken away cannot overwrite what
    its successor does, and learns so from a False answer. After each change it commits,
    the store tells its change listeners (see `add_change_listener`).
    """

    # -- being told ----------------------------------------------------------------------

    def add_change_listener(self, listener: JobListener) -> None:
        """Call listener(JobChange) after this store changes a job (same process only)."""
        ...

    # -- the API side --------------------------------------------------------------------

    def create(self, new: NewJob) -> JobRecord:
        """Insert a pending job; being in the store is being in the queue.

        Raises DuplicateIdempotencyKeyError when another job holds new.idempotency_key.
        """
        ...

    def get(self, job_id: uuid.UUID) -> JobRecord | None:
        """The job with this id, or None."""
        ...

    def get_by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job submitted with this idempotency key, or None."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each state (every state present, zero included)."""
        ...

    def list_page(
        self,
        *,
        limit: int,
        after: JobPageCursor | None = None,
        status: JobStatus | None = None,
        pipeline_id: str | None = None,
    ) -> list[JobRecord]:
        """Up to limit jobs, newest first (created_at, then job_id, both descending).

        With `after`, only jobs strictly behind that position: paging with the last job of
        each page visits every job once, and jobs created meanwhile (newer) never shift it.
        """
        ...

    def cancel(self, job_id: uuid.UUID) -> JobRecord | None:
        """Make a pending or running job cancelled at once; its snapshot, or None if unknown.

        A running job's worker learns it at its next held write (heartbeat, progress,
        complete, fail), which then answers False. Raises JobFinishedError for a job that
        already ended.
        """
        ...

    def delete(self, job_id: uuid.UUID) -> JobRecord | None:
        """Remove a job that is not running (and its webhook outbox row); the removed
        snapshot, or None if unknown. Raises JobRunningError for a running job. The job's
        storage objects are the caller's to remove. Listeners hear the removal as a change
        with the job's last status."""
        ...

    def finished_before(self, cutoff: datetime, limit: int) -> list[JobRecord]:
        """Up to limit jobs that ended (completed, failed, cancelled) before cutoff, oldest
        first; a finished job's updated_at is when it ended."""
        ...

    # -- webhooks (the outbox is created with the job, from NewJob.callback_url) ---------

    def claim_webhooks(self, limit: int, retry_after_s: float) -> list[WebhookDelivery]:
        """Claim up to limit due deliveries of finished jobs, counting one attempt each.

        A claimed delivery is due again after retry_after_s unless `finish_webhook` says
        otherwise first: a sender that dies mid-attempt leaves it to be retried.
        """
        ...

    def finish_webhook(
        self,
        delivery: WebhookDelivery,
        *,
        delivered: bool,
        retry_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how an attempt went: delivered, retried at retry_at, or (no retry_at)
        abandoned. False when the attempt was not the latest claim (nothing changed)."""
        ...

    def webhook_state(self, job_id: uuid.UUID) -> tuple[str, int] | None:
        """A job's webhook delivery state and attempts so far, or None if it has none."""
        ...

    # -- monitoring (read at scrape time, so every process reports the same) -----------

    def oldest_pending_created_at(self) -> datetime | None:
        """When the job that has waited longest in the queue was submitted; None if none."""
        ...

    def finished_job_durations(
        self, bounds: Sequence[float] = DURATION_BUCKETS_S
    ) -> list[DurationHistogram]:
        """One cumulative histogram of submit-to-end seconds per (pipeline_id, final status)."""
        ...

    def frames_analysed_total(self) -> int:
        """Frames analysed by every completed job still in the store (from its summary)."""
        ...

    # -- the start-up sweep --------------------------------------------------------------

    def existing_job_ids(self, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these job ids have a job."""
        ...

    def oldest_created_at(self) -> datetime | None:
        """When the oldest job was created, or None when there is no job."""
        ...

    # -- the worker side -----------------------------------------------------------------

    def has_pending_work(self) -> bool:
        """Whether a pending job, or a pending segment of a running job, waits for a worker.

        One read: idle workers ask it on every poll and try the claims (writes, several
        times its cost) only when it says yes.
        """
        ...

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Claim the oldest pending job (by created_at) for this worker, or None if none.

        The job becomes running, held by worker_id until its lease expires, with one more
        attempt counted and progress back at 0. Two claimers never get the same job.
        """
        ...

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew the worker's lease on a job; False if the job was taken away."""
        ...

    def holds(self, job_id: uuid.UUID, worker_id: str) -> bool:
        """Whether the job is still running and held by this worker (a read, no write):
        False once it was cancelled or taken away."""
        ...

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record progress (percent, two decimals) and renew the lease; False if taken away."""
        ...

    def complete(
        self, job_id: uuid.UUID, worker_id: str, output_path: str, summary: dict[str, Any]
    ) -> bool:
        """Mark a job completed with its results path; False if the job was taken away."""
        ...

    def fail(self, job_id: uuid.UUID, worker_id: str, message: str) -> bool:
        """Mark a job failed with a message; False if the job was taken away."""
        ...

    def release(self, job_id: uuid.UUID, worker_id: str, *, count_attempt: bool = False) -> bool:
        """Hand a job back to pending; the attempt is not counted unless count_attempt.

        A graceful shutdown does not count; an infrastructure failure (the analysis
        process would not start) does, so such a job cannot bounce forever.
        """
        ...

    def recover_expired(self, max_attempts: int) -> RecoveryReport:
        """Return running jobs whose lease expired to pending, or fail those out of attempts."""
        ...

    # -- the end -------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the store holds (database connections); it is not used afterwards."""
        ...
