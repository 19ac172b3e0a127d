"""The job store: every read and write of the jobs table, including the FIFO claim."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from forgesyte.db.engine import retry_on_conflict
from forgesyte.jobs.models import Job, JobStatus, utcnow
from forgesyte.jobs.options import JobOptions

LOOKUP_BATCH = 500  # ids per query when checking which jobs exist

__all__ = ["JobOptions", "JobRecord", "JobStore", "NewJob", "RecoveryReport"]

_JOBS = Job.__table__


@dataclass(frozen=True)
class JobRecord:
    """An immutable snapshot of a job row."""

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

    @classmethod
    def from_row(cls, row: Job | Row[Any]) -> JobRecord:
        """Snapshot an ORM object or a Core row of the jobs table."""
        return cls(
            job_id=row.job_id,
            status=JobStatus(row.status),
            pipeline_id=row.pipeline_id,
            options=dict(row.options or {}),
            input_path=row.input_path,
            output_path=row.output_path,
            error_message=row.error_message,
            progress=row.progress,
            attempts=row.attempts,
            worker_id=row.worker_id,
            lease_expires_at=row.lease_expires_at,
            idempotency_key=row.idempotency_key,
            result_summary=row.result_summary,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class NewJob:
    """What the API knows of a job when it accepts an upload."""

    job_id: uuid.UUID
    pipeline_id: str
    options: dict[str, Any]
    input_path: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RecoveryReport:
    """What a sweep of expired leases did."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]


def _times(count: int) -> str:
    return f"{count} time" if count == 1 else f"{count} times"


class DuplicateIdempotencyKeyError(Exception):
    """Another job already holds this idempotency key."""


class JobStore:
    """Reads and writes jobs; the jobs table is the queue.

    Every state change of a running job is conditional on the worker still holding
    the job (status running and worker_id matching), so a worker whose lease was
    taken away cannot overwrite what its successor does.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._change_listeners: list[Callable[[uuid.UUID], None]] = []

    def add_change_listener(self, listener: Callable[[uuid.UUID], None]) -> None:
        """Call listener(job_id) after this store changes a job (same process only)."""
        self._change_listeners.append(listener)

    def _changed(self, job_id: uuid.UUID) -> None:
        for listener in self._change_listeners:
            listener(job_id)

    def session(self) -> Session:
        """A new session on the store's engine."""
        return self._sessions()

    # -- the API side -----------------------------------------------------------------

    def create(self, new: NewJob) -> JobRecord:
        """Insert a pending job; being in the table is being in the queue."""
        now = utcnow()
        row = Job(
            job_id=new.job_id,
            status=JobStatus.PENDING.value,
            pipeline_id=new.pipeline_id,
            options=new.options,
            input_path=new.input_path,
            idempotency_key=new.idempotency_key,
            progress=0.0,
            attempts=0,
            created_at=now,
            updated_at=now,
        )

        def insert() -> JobRecord:
            with self.session() as session, session.begin():
                session.add(row)
            return JobRecord.from_row(row)

        try:
            return retry_on_conflict(insert)
        except IntegrityError as exc:
            if new.idempotency_key is not None:
                raise DuplicateIdempotencyKeyError(new.idempotency_key) from exc
            raise

    def get(self, job_id: uuid.UUID) -> JobRecord | None:
        """The job with this id, or None (a plain Core read: the status hot path)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(_JOBS).where(_JOBS.c.job_id == job_id)).first()
        return JobRecord.from_row(row) if row is not None else None

    def get_by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job submitted with this idempotency key, or None."""
        with self.session() as session:
            row = session.scalars(select(Job).where(Job.idempotency_key == key)).first()
            return JobRecord.from_row(row) if row is not None else None

    def existing_job_ids(self, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these job ids have a row."""
        wanted = list(job_ids)
        found: set[uuid.UUID] = set()
        with self.session() as session:
            for start in range(0, len(wanted), LOOKUP_BATCH):
                batch = wanted[start : start + LOOKUP_BATCH]
                found.update(session.scalars(select(Job.job_id).where(Job.job_id.in_(batch))))
        return found

    def oldest_created_at(self) -> datetime | None:
        """When the oldest job was created, or None when there is no job."""
        with self.session() as session:
            oldest: datetime | None = session.scalar(select(func.min(Job.created_at)))
        return oldest

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        counts = {status.value: 0 for status in JobStatus}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    # -- the worker side --------------------------------------------------------------

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Claim the oldest pending job for this worker, or None when the queue is empty.

        One conditional UPDATE moves the oldest pending row to running; two claimers
        never get the same job. On DuckDB a lost race raises a conflict and is retried;
        on PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED.
        """

        def claim() -> JobRecord | None:
            now = utcnow()
            candidate = (
                select(Job.job_id)
                .where(Job.status == JobStatus.PENDING.value)
                .order_by(Job.created_at, Job.job_id)
                .limit(1)
            )
            if self.engine.dialect.name == "postgresql":
                candidate = candidate.with_for_update(skip_locked=True)
            statement = (
                update(Job)
                .where(
                    and_(
                        Job.job_id == candidate.scalar_subquery(),
                        Job.status == JobStatus.PENDING.value,
                    )
                )
                .values(
                    status=JobStatus.RUNNING.value,
                    worker_id=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1,
                    progress=0.0,
                    updated_at=now,
                )
                .returning(Job)
                .execution_options(synchronize_session=False)
            )
            with self.session() as session, session.begin():
                row = session.scalars(statement).first()
                return JobRecord.from_row(row) if row is not None else None

        claimed = retry_on_conflict(claim)
        if claimed is not None:
            self._changed(claimed.job_id)
        return claimed

    def _update_held(self, job_id: uuid.UUID, held_by: str, **values: Any) -> bool:
        """Update a running job that this worker still holds; False if it no longer does."""

        def run() -> bool:
            statement = (
                update(Job)
                .where(
                    Job.job_id == job_id,
                    Job.status == JobStatus.RUNNING.value,
                    Job.worker_id == held_by,
                )
                .values(updated_at=utcnow(), **values)
                .execution_options(synchronize_session=False)
            )
            with self.session() as session, session.begin():
                return session.execute(statement).rowcount == 1  # type: ignore[attr-defined,no-any-return]

        held = retry_on_conflict(run)
        self._changed(job_id)
        return held

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew the worker's lease on a job; False if the job was taken away."""
        expires = utcnow() + timedelta(seconds=lease_seconds)
        return self._update_held(job_id, worker_id, lease_expires_at=expires)

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record progress (percent) and renew the lease; False if the job was taken away."""
        expires = utcnow() + timedelta(seconds=lease_seconds)
        return self._update_held(
            job_id, worker_id, progress=round(progress, 2), lease_expires_at=expires
        )

    def complete(
        self, job_id: uuid.UUID, worker_id: str, output_path: str, summary: dict[str, Any]
    ) -> bool:
        """Mark a job completed with its results path; False if the job was taken away."""
        return self._update_held(
            job_id,
            worker_id,
            status=JobStatus.COMPLETED.value,
            progress=100.0,
            output_path=output_path,
            result_summary=summary,
            error_message=None,
            lease_expires_at=None,
        )

    def fail(self, job_id: uuid.UUID, worker_id: str, message: str) -> bool:
        """Mark a job failed with a message; False if the job was taken away."""
        return self._update_held(
            job_id,
            worker_id,
            status=JobStatus.FAILED.value,
            error_message=message,
            lease_expires_at=None,
        )

    def release(self, job_id: uuid.UUID, worker_id: str, *, count_attempt: bool = False) -> bool:
        """Hand a job back to pending; the attempt is not counted unless count_attempt.

        A graceful shutdown does not count; an infrastructure failure (the analysis
        process would not start) does, so such a job cannot bounce forever.
        """
        values: dict[str, Any] = {} if count_attempt else {"attempts": Job.attempts - 1}
        return self._update_held(
            job_id,
            worker_id,
            status=JobStatus.PENDING.value,
            worker_id=None,
            lease_expires_at=None,
            progress=0.0,
            **values,
        )

    def recover_expired(self, max_attempts: int) -> RecoveryReport:
        """Return jobs whose lease expired to pending, or fail them when attempts ran out."""
        now = utcnow()

        def sweep() -> RecoveryReport:
            requeued: list[uuid.UUID] = []
            failed: list[uuid.UUID] = []
            with self.session() as session, session.begin():
                expired = session.execute(
                    select(Job.job_id, Job.attempts, Job.lease_expires_at).where(
                        Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now
                    )
                ).all()
                for job_id, attempts, lease in expired:
                    held = and_(
                        Job.job_id == job_id,
                        Job.status == JobStatus.RUNNING.value,
                        Job.lease_expires_at == lease,
                    )
                    if attempts >= max_attempts:
                        values: dict[str, Any] = {
                            "status": JobStatus.FAILED.value,
                            "error_message": (
                                f"the worker running this job was lost {_times(attempts)} "
                                f"(lease expired each time); giving up after "
                                f"{max_attempts} attempt{'' if max_attempts == 1 else 's'}"
                            ),
                        }
                        target = failed
                    else:
                        values = {"status": JobStatus.PENDING.value, "progress": 0.0}
                        target = requeued
                    result = session.execute(
                        update(Job)
                        .where(held)
                        .values(worker_id=None, lease_expires_at=None, updated_at=now, **values)
                        .execution_options(synchronize_session=False)
                    )
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        target.append(job_id)
            return RecoveryReport(requeued, failed)

        report = retry_on_conflict(sweep)
        for job_id in report.requeued + report.failed:
            self._changed(job_id)
        return report
