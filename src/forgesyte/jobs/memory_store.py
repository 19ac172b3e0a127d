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
from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.store import (
    DuplicateIdempotencyKeyError,
    JobRecord,
    JobStore,
    NewJob,
    RecoveryReport,
    lost_worker_message,
)

Clock = Callable[[], datetime]


class InMemoryJobStore:
    """A thread-safe `JobStore` in a dict: FIFO by created_at, leases, attempts, idempotency.

    One lock makes each operation atomic, as a transaction would; listeners are called
    after the lock is released. Snapshots handed out are copies: changing one changes
    nothing stored.
    """

    def __init__(self, *, on_change: JobListener | None = None, clock: Clock = utcnow) -> None:
        self._jobs: dict[uuid.UUID, JobRecord] = {}
        self._by_key: dict[str, uuid.UUID] = {}
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
