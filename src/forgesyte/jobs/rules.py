"""The job-state rules both stores follow, written once.

What a new job starts as, what each write of a worker that holds a job changes, what an
expired lease turns a job into, and what a webhook attempt leaves. `SqlJobStore` and
`InMemoryJobStore` inherit `JobStoreRules` and differ only in how they make a change
atomic: each supplies the primitives it names (`_update_held`, one conditional update).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from forgesyte.jobs.models import JobStatus, WebhookState
from forgesyte.jobs.store import (
    JobPageCursor,
    JobRecord,
    NewJob,
    WebhookDelivery,
    lost_worker_message,
)

Clock = Callable[[], datetime]


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
    )


def expired_lease_outcome(attempts: int, max_attempts: int) -> tuple[JobStatus, dict[str, Any]]:
    """What a running job whose lease expired becomes: pending again for another worker,
    or failed once it has used max_attempts. The values to write besides its status."""
    released: dict[str, Any] = {"worker_id": None, "lease_expires_at": None}
    if attempts >= max_attempts:
        return JobStatus.FAILED, {
            "error_message": lost_worker_message(attempts, max_attempts),
            **released,
        }
    return JobStatus.PENDING, {"progress": 0.0, **released}


@dataclass(frozen=True)
class HeldChange:
    """One change to a job its worker holds: the status it moves to and the columns to write."""

    status: JobStatus
    values: dict[str, Any] = field(default_factory=dict)
    uncount_attempt: bool = False  # take back the attempt that the claim counted


@dataclass(frozen=True)
class JobPageQuery:
    """Which page of the job list to read (the arguments of `JobStore.list_page`)."""

    limit: int
    after: JobPageCursor | None = None
    status: JobStatus | None = None
    pipeline_id: str | None = None


@dataclass(frozen=True)
class WebhookOutcome:
    """What one delivery attempt leaves in the outbox."""

    state: WebhookState  # still PENDING when it is to be retried
    last_error: str | None
    next_attempt_at: datetime | None = None  # set when it is retried


def webhook_outcome(
    delivered: bool, retry_at: datetime | None, error: str | None
) -> WebhookOutcome:
    """Delivered; or abandoned (no retry_at); or pending again until retry_at."""
    if delivered:
        return WebhookOutcome(WebhookState.DELIVERED, None)
    if retry_at is None:
        return WebhookOutcome(WebhookState.ABANDONED, error)
    return WebhookOutcome(WebhookState.PENDING, error, retry_at)


class JobStoreRules:
    """The part of `JobStore` both stores share; a store supplies the primitives.

    - `_update_held`: a change applied only while the job is running and held by that
      worker, which answers False (changing nothing) once it is not. Every write of a
      worker to its job (heartbeat, progress, complete, fail, release) is one.
    - `_select_page`: one page of the job list.
    - `_finish_webhook`: record an attempt's outcome if it is still the latest claim.
    """

    _clock: Clock

    def _update_held(self, job_id: uuid.UUID, held_by: str, change: HeldChange) -> bool:
        """Apply change to a job this worker still holds; False if it no longer holds it."""
        raise NotImplementedError

    def _select_page(self, query: JobPageQuery) -> list[JobRecord]:
        """Up to query.limit jobs, newest first, strictly behind query.after."""
        raise NotImplementedError

    def _finish_webhook(self, delivery: WebhookDelivery, outcome: WebhookOutcome) -> bool:
        """Store outcome if delivery is the latest claim; False (nothing changed) if not."""
        raise NotImplementedError

    def list_page(
        self,
        *,
        limit: int,
        after: JobPageCursor | None = None,
        status: JobStatus | None = None,
        pipeline_id: str | None = None,
    ) -> list[JobRecord]:
        """Up to limit jobs, newest first (created_at, job_id descending); after `after`."""
        return self._select_page(JobPageQuery(limit, after, status, pipeline_id))

    def finish_webhook(
        self,
        delivery: WebhookDelivery,
        *,
        delivered: bool,
        retry_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how an attempt went; False when it was not the latest claim."""
        return self._finish_webhook(delivery, webhook_outcome(delivered, retry_at, error))

    def _lease_until(self, lease_seconds: float) -> datetime:
        return self._clock() + timedelta(seconds=lease_seconds)

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
        self, job_id: uuid.UUID, worker_id: str, output_path: str, summary: dict[str, Any]
    ) -> bool:
        """Mark a job completed with its results path; False if the job was taken away."""
        values = {
            "progress": 100.0,
            "output_path": output_path,
            "result_summary": summary,
            "error_message": None,
            "lease_expires_at": None,
        }
        return self._update_held(job_id, worker_id, HeldChange(JobStatus.COMPLETED, values))

    def fail(self, job_id: uuid.UUID, worker_id: str, message: str) -> bool:
        """Mark a job failed with a message; False if the job was taken away."""
        values = {"error_message": message, "lease_expires_at": None}
        return self._update_held(job_id, worker_id, HeldChange(JobStatus.FAILED, values))

    def release(self, job_id: uuid.UUID, worker_id: str, *, count_attempt: bool = False) -> bool:
        """Hand a job back to pending; the attempt is not counted unless count_attempt."""
        values = {"worker_id": None, "lease_expires_at": None, "progress": 0.0}
        change = HeldChange(JobStatus.PENDING, values, uncount_attempt=not count_attempt)
        return self._update_held(job_id, worker_id, change)
