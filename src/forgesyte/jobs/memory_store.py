"""The job store in memory: the same contract as the database, for tests that need some store."""

from __future__ import annotations

import copy
import dataclasses
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from forgesyte.jobs import stats
from forgesyte.jobs.changes import JobChangeFeed, JobListener
from forgesyte.jobs.memory_segments import InMemorySegmentsMixin
from forgesyte.jobs.models import FINISHED_STATUSES, JobStatus, WebhookState, utcnow
from forgesyte.jobs.segments import SegmentRecord
from forgesyte.jobs.store import (
    DuplicateIdempotencyKeyError,
    JobFinishedError,
    JobPageCursor,
    JobRecord,
    JobRunningError,
    JobStore,
    NewJob,
    RecoveryReport,
    WebhookDelivery,
    lost_worker_message,
)

Clock = Callable[[], datetime]


@dataclasses.dataclass
class _Webhook:
    """A job's outbox entry (the job_webhooks row of the SQL store)."""

    callback_url: str
    event_id: uuid.UUID
    next_attempt_at: datetime
    state: WebhookState = WebhookState.PENDING
    attempts: int = 0
    last_error: str | None = None


class InMemoryJobStore(InMemorySegmentsMixin):
    """A thread-safe `JobStore` in a dict: FIFO by created_at, leases, attempts, idempotency.

    One lock makes each operation atomic, as a transaction would; listeners are called
    after the lock is released. Snapshots handed out are copies: changing one changes
    nothing stored.
    """

    def __init__(self, *, on_change: JobListener | None = None, clock: Clock = utcnow) -> None:
        self._jobs: dict[uuid.UUID, JobRecord] = {}
        self._by_key: dict[str, uuid.UUID] = {}
        self._webhooks: dict[uuid.UUID, _Webhook] = {}
        self._segments: dict[uuid.UUID, list[SegmentRecord]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._changes = JobChangeFeed()
        if on_change is not None:
            self._changes.subscribe(on_change)

    def add_change_listener(self, listener: JobListener) -> None:
        """Call listener(JobChange) after this store changes a job."""
        self._changes.subscribe(listener)

    def close(self) -> None:
        """Nothing to release."""

    # -- the API side -----------------------------------------------------------------

    def create(self, new: NewJob) -> JobRecord:
        """Add a pending job; DuplicateIdempotencyKeyError if its key is taken."""
        with self._lock:
            if new.job_id in self._jobs:
                raise ValueError(f"job {new.job_id} exists already")
            if new.idempotency_key is not None and new.idempotency_key in self._by_key:
                raise DuplicateIdempotencyKeyError(new.idempotency_key)
            now = self._clock()
            record = JobRecord(
                job_id=new.job_id,
                status=JobStatus.PENDING,
                pipeline_id=new.pipeline_id,
                options=copy.deepcopy(new.options),
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
            self._jobs[new.job_id] = record
            if new.idempotency_key is not None:
                self._by_key[new.idempotency_key] = new.job_id
            if new.callback_url is not None:
                self._webhooks[new.job_id] = _Webhook(new.callback_url, uuid.uuid4(), now)
            snapshot = _copy(record)
        self._changes.publish(record.job_id, record.status)
        return snapshot

    def get(self, job_id: uuid.UUID) -> JobRecord | None:
        """The job with this id, or None."""
        with self._lock:
            record = self._jobs.get(job_id)
            return _copy(record) if record is not None else None

    def get_by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job submitted with this idempotency key, or None."""
        with self._lock:
            job_id = self._by_key.get(key)
            return _copy(self._jobs[job_id]) if job_id is not None else None

    def existing_job_ids(self, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these job ids have a job."""
        with self._lock:
            return {job_id for job_id in job_ids if job_id in self._jobs}

    def oldest_created_at(self) -> datetime | None:
        """When the oldest job was created, or None when there is no job."""
        with self._lock:
            return min((job.created_at for job in self._jobs.values()), default=None)

    def oldest_pending_created_at(self) -> datetime | None:
        """When the job that has waited longest in the queue was submitted; None if none."""
        with self._lock:
            pending = (j.created_at for j in self._jobs.values() if j.status is JobStatus.PENDING)
            return min(pending, default=None)

    def finished_job_durations(
        self, bounds: Sequence[float] = stats.DURATION_BUCKETS_S
    ) -> list[stats.DurationHistogram]:
        """One cumulative histogram of submit-to-end seconds per (pipeline_id, final status)."""
        finished = set(stats.finished_statuses())
        with self._lock:
            durations = [
                (
                    job.pipeline_id,
                    job.status.value,
                    (job.updated_at - job.created_at).total_seconds(),
                )
                for job in self._jobs.values()
                if job.status in finished
            ]
        return stats.histograms_of(durations, bounds)

    def frames_analysed_total(self) -> int:
        """Frames analysed by every completed job still in the store (from its summary)."""
        with self._lock:
            return sum(
                int((job.result_summary or {}).get("frames_analysed", 0))
                for job in self._jobs.values()
                if job.status is JobStatus.COMPLETED
            )

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each state."""
        counts = {status.value: 0 for status in JobStatus}
        with self._lock:
            for job in self._jobs.values():
                counts[job.status.value] += 1
        return counts

    def list_page(
        self,
        *,
        limit: int,
        after: JobPageCursor | None = None,
        status: JobStatus | None = None,
        pipeline_id: str | None = None,
    ) -> list[JobRecord]:
        """Up to limit jobs, newest first (created_at, job_id descending); after `after`."""
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if (status is None or job.status is status)
                and (pipeline_id is None or job.pipeline_id == pipeline_id)
                and (
                    after is None or (job.created_at, job.job_id) < (after.created_at, after.job_id)
                )
            ]
            jobs.sort(key=lambda job: (job.created_at, job.job_id), reverse=True)
            return [_copy(job) for job in jobs[:limit]]

    def cancel(self, job_id: uuid.UUID) -> JobRecord | None:
        """Make a pending or running job cancelled; JobFinishedError if it already ended."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status not in (JobStatus.PENDING, JobStatus.RUNNING):
                raise JobFinishedError(job.status)
            cancelled = self._replace(
                job, self._clock(), status=JobStatus.CANCELLED, lease_expires_at=None
            )
        self._changes.publish(job_id, JobStatus.CANCELLED)
        return cancelled

    def delete(self, job_id: uuid.UUID) -> JobRecord | None:
        """Remove a job that is not running, with its outbox entry; the removed snapshot."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status is JobStatus.RUNNING:
                raise JobRunningError(str(job_id))
            del self._jobs[job_id]
            self._webhooks.pop(job_id, None)
            self._segments.pop(job_id, None)
            if job.idempotency_key is not None:
                self._by_key.pop(job.idempotency_key, None)
        self._changes.publish(job_id, job.status)  # caches of this job must forget it
        return _copy(job)

    def finished_before(self, cutoff: datetime, limit: int) -> list[JobRecord]:
        """Up to limit finished jobs that ended before cutoff, oldest first."""
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if job.status in FINISHED_STATUSES and job.updated_at < cutoff
            ]
            jobs.sort(key=lambda job: (job.updated_at, job.job_id))
            return [_copy(job) for job in jobs[:limit]]

    # -- webhooks ---------------------------------------------------------------------

    def claim_webhooks(self, limit: int, retry_after_s: float) -> list[WebhookDelivery]:
        """Claim up to limit due deliveries of finished jobs, one attempt counted each."""
        with self._lock:
            now = self._clock()
            due = sorted(
                (
                    (hook.next_attempt_at, job_id)
                    for job_id, hook in self._webhooks.items()
                    if hook.state is WebhookState.PENDING
                    and hook.next_attempt_at <= now
                    and self._jobs[job_id].status in FINISHED_STATUSES
                ),
            )[:limit]
            claimed = []
            for _, job_id in due:
                hook = self._webhooks[job_id]
                hook.attempts += 1
                hook.next_attempt_at = now + timedelta(seconds=retry_after_s)
                job = self._jobs[job_id]
                claimed.append(
                    WebhookDelivery(
                        job_id=job_id,
                        event_id=hook.event_id,
                        callback_url=hook.callback_url,
                        attempt=hook.attempts,
                        status=job.status,
                        error_message=job.error_message,
                        updated_at=job.updated_at,
                    )
                )
            return claimed

    def finish_webhook(
        self,
        delivery: WebhookDelivery,
        *,
        delivered: bool,
        retry_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how an attempt went; False when it was not the latest claim."""
        with self._lock:
            hook = self._webhooks.get(delivery.job_id)
            if (
                hook is None
                or hook.state is not WebhookState.PENDING
                or hook.attempts != delivery.attempt
            ):
                return False
            if delivered:
                hook.state, hook.last_error = WebhookState.DELIVERED, None
            elif retry_at is None:
                hook.state, hook.last_error = WebhookState.ABANDONED, error
            else:
                hook.next_attempt_at, hook.last_error = retry_at, error
            return True

    def webhook_state(self, job_id: uuid.UUID) -> tuple[str, int] | None:
        """A job's webhook delivery state and attempts so far, or None."""
        with self._lock:
            hook = self._webhooks.get(job_id)
            return (hook.state.value, hook.attempts) if hook is not None else None

    # -- the worker side --------------------------------------------------------------

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Claim the oldest pending job (created_at, then job_id, as the database orders)."""
        with self._lock:
            pending = [job for job in self._jobs.values() if job.status is JobStatus.PENDING]
            if not pending:
                return None
            oldest = min(pending, key=lambda job: (job.created_at, job.job_id))
            now = self._clock()
            claimed = self._replace(
                oldest,
                now,
                status=JobStatus.RUNNING,
                worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=oldest.attempts + 1,
                progress=0.0,
            )
        self._changes.publish(claimed.job_id, claimed.status)
        return claimed

    def _update_held(self, job_id: uuid.UUID, held_by: str, **values: Any) -> bool:
        """Change a running job this worker still holds; False if it no longer does."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING or job.worker_id != held_by:
                return False
            changed = self._replace(job, self._clock(), **values)
        self._changes.publish(job_id, changed.status)
        return True

    def _replace(self, job: JobRecord, now: datetime, **values: Any) -> JobRecord:
        """Store a changed copy of job (the lock held); return a snapshot of it."""
        changed = dataclasses.replace(job, updated_at=now, **values)
        self._jobs[job.job_id] = changed
        return _copy(changed)

    def _lease_until(self, lease_seconds: float) -> datetime:
        return self._clock() + timedelta(seconds=lease_seconds)

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew the worker's lease on a job; False if the job was taken away."""
        return self._update_held(
            job_id, worker_id, lease_expires_at=self._lease_until(lease_seconds)
        )

    def holds(self, job_id: uuid.UUID, worker_id: str) -> bool:
        """Whether the job is still running and held by this worker (a read, no write)."""
        with self._lock:
            job = self._jobs.get(job_id)
            return (
                job is not None and job.status is JobStatus.RUNNING and job.worker_id == worker_id
            )

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record progress (percent) and renew the lease; False if the job was taken away."""
        return self._update_held(
            job_id,
            worker_id,
            progress=round(progress, 2),
            lease_expires_at=self._lease_until(lease_seconds),
        )

    def complete(
        self, job_id: uuid.UUID, worker_id: str, output_path: str, summary: dict[str, Any]
    ) -> bool:
        """Mark a job completed with its results path; False if the job was taken away."""
        return self._update_held(
            job_id,
            worker_id,
            status=JobStatus.COMPLETED,
            progress=100.0,
            output_path=output_path,
            result_summary=copy.deepcopy(summary),
            error_message=None,
            lease_expires_at=None,
        )

    def fail(self, job_id: uuid.UUID, worker_id: str, message: str) -> bool:
        """Mark a job failed with a message; False if the job was taken away."""
        return self._update_held(
            job_id, worker_id, status=JobStatus.FAILED, error_message=message, lease_expires_at=None
        )

    def release(self, job_id: uuid.UUID, worker_id: str, *, count_attempt: bool = False) -> bool:
        """Hand a job back to pending; the attempt is not counted unless count_attempt."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING or job.worker_id != worker_id:
                return False
            self._replace(
                job,
                self._clock(),
                status=JobStatus.PENDING,
                worker_id=None,
                lease_expires_at=None,
                progress=0.0,
                attempts=job.attempts if count_attempt else job.attempts - 1,
            )
        self._changes.publish(job_id, JobStatus.PENDING)
        return True

    def recover_expired(self, max_attempts: int) -> RecoveryReport:
        """Return jobs whose lease expired to pending, or fail them when attempts ran out."""
        requeued: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        with self._lock:
            now = self._clock()
            for job in list(self._jobs.values()):
                lease = job.lease_expires_at
                if job.status is not JobStatus.RUNNING or lease is None or lease >= now:
                    continue
                if job.attempts >= max_attempts:
                    self._replace(
                        job,
                        now,
                        status=JobStatus.FAILED,
                        error_message=lost_worker_message(job.attempts, max_attempts),
                        worker_id=None,
                        lease_expires_at=None,
                    )
                    failed.append(job.job_id)
                else:
                    self._replace(
                        job,
                        now,
                        status=JobStatus.PENDING,
                        progress=0.0,
                        worker_id=None,
                        lease_expires_at=None,
                    )
                    requeued.append(job.job_id)
        for job_id in requeued:
            self._changes.publish(job_id, JobStatus.PENDING)
        for job_id in failed:
            self._changes.publish(job_id, JobStatus.FAILED)
        return RecoveryReport(requeued, failed)


def _copy(record: JobRecord) -> JobRecord:
    """A snapshot sharing nothing mutable with the stored record."""
    return dataclasses.replace(
        record,
        options=copy.deepcopy(record.options),
        result_summary=copy.deepcopy(record.result_summary),
    )


if TYPE_CHECKING:  # mypy checks here that the double keeps the whole protocol
    _conforms: JobStore = InMemoryJobStore()
