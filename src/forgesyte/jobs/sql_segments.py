"""The segment operations of the SQL job store (DuckDB, PostgreSQL): job_segments rows.

The same race style as the job claim: every write is one guarded UPDATE (the segment
still running and held by the worker), DuckDB's lost races are retried, and PostgreSQL
locks the claim's candidate row with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from forgesyte.db.engine import retry_on_conflict
from forgesyte.jobs.changes import JobChangeFeed
from forgesyte.jobs.models import Job, JobSegment, JobStatus, SegmentStatus
from forgesyte.jobs.segments import (
    SegmentRecord,
    SegmentRecovery,
    SegmentSpan,
    job_progress,
)
from forgesyte.jobs.store import lost_worker_message

_SEGMENTS = JobSegment.__table__
# a segment's holder keeps going while its job is running or back in the queue (its
# coordinator was lost); a cancelled or failed job stops it
_JOB_ALIVE = [JobStatus.RUNNING.value, JobStatus.PENDING.value]
_RECORD_FIELDS = tuple(field.name for field in fields(SegmentRecord))


def segment_from_row(row: Row[Any]) -> SegmentRecord:
    """Snapshot a Core row of the job_segments table (a column per record field)."""
    values = {name: getattr(row, name) for name in _RECORD_FIELDS}
    return SegmentRecord(**{**values, "status": SegmentStatus(row.status)})


class SqlSegmentsMixin:
    """The `SegmentStore` operations of `SqlJobStore` (which provides these attributes)."""

    engine: Engine
    _clock: Callable[[], datetime]
    _changes: JobChangeFeed

    def session(self) -> Session:  # pragma: no cover - provided by SqlJobStore
        """A new session on the store's engine."""
        raise NotImplementedError

    def has_pending_work(self) -> bool:
        """Whether a pending job, or a pending segment of a running job, waits (one read).

        One scan of jobs with an IN over the pending segments, stopping at the first row:
        on DuckDB about 3 ms of CPU per idle look against 4.5 to 5.3 ms for the two
        EXISTS it replaced (500 looks on an empty store, twice).
        """
        jobs = Job.__table__
        pending_segments = select(_SEGMENTS.c.job_id).where(
            _SEGMENTS.c.status == SegmentStatus.PENDING.value
        )
        waiting = (
            select(jobs.c.job_id)
            .where(
                (jobs.c.status == JobStatus.PENDING.value)
                | ((jobs.c.status == JobStatus.RUNNING.value) & jobs.c.job_id.in_(pending_segments))
            )
            .limit(1)
        )
        with self.engine.connect() as connection:
            return connection.execute(waiting).first() is not None

    def _follow_segments(self, session: Session, job_id: uuid.UUID, now: datetime) -> float | None:
        """Set a split job's progress from its segments, in session's transaction; return
        it, or None for a job that is not split (its progress is left alone).

        A split job's progress follows its segments whatever its status: a lost
        coordinator's job waiting to be claimed again, or handed back, keeps what its
        segments have done, instead of the 0 a job run again from the start gets.
        """
        rows = session.execute(select(_SEGMENTS).where(_SEGMENTS.c.job_id == job_id)).all()
        if not rows:
            return None
        progress = job_progress([segment_from_row(row) for row in rows])
        session.execute(
            update(Job)
            .where(Job.job_id == job_id, Job.status.in_(_JOB_ALIVE))  # never an ended job's
            .values(progress=progress, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return progress

    def _held_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> Any:
        return and_(
            JobSegment.job_id == job_id,
            JobSegment.seq == seq,
            JobSegment.status == SegmentStatus.RUNNING.value,
            JobSegment.lease_owner == worker_id,
        )

    def _job_alive(self, job_id: uuid.UUID) -> Any:
        return exists().where(Job.job_id == job_id, Job.status.in_(_JOB_ALIVE))

    def add_segments(self, job_id: uuid.UUID, worker_id: str, spans: Sequence[SegmentSpan]) -> bool:
        """Split a running job held by worker_id into pending segments, once."""

        def run() -> bool:
            now = self._clock()
            with self.session() as session, session.begin():
                held = session.execute(
                    select(Job.job_id).where(
                        Job.job_id == job_id,
                        Job.status == JobStatus.RUNNING.value,
                        Job.worker_id == worker_id,
                    )
                ).first()
                already = session.execute(
                    select(func.count()).where(JobSegment.job_id == job_id)
                ).scalar_one()
                if held is None or already or not spans:
                    return False
                session.execute(
                    insert(JobSegment),
                    [
                        {
                            **asdict(SegmentRecord.pending(job_id, seq, span)),
                            "status": SegmentStatus.PENDING.value,
                            "updated_at": now,
                        }
                        for seq, span in enumerate(spans)
                    ],
                )
            return True

        return retry_on_conflict(run)

    def segments(self, job_id: uuid.UUID) -> list[SegmentRecord]:
        """The job's segments in order."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(_SEGMENTS).where(_SEGMENTS.c.job_id == job_id).order_by(_SEGMENTS.c.seq)
            )
            return [segment_from_row(row) for row in rows]

    def claim_segment(
        self, worker_id: str, lease_seconds: float, job_id: uuid.UUID | None = None
    ) -> SegmentRecord | None:
        """Claim the oldest running job's lowest pending segment, or None."""

        def claim() -> SegmentRecord | None:
            now = self._clock()
            candidate = (
                select(JobSegment.job_id, JobSegment.seq)
                .join(Job, Job.job_id == JobSegment.job_id)
                .where(
                    JobSegment.status == SegmentStatus.PENDING.value,
                    Job.status == JobStatus.RUNNING.value,
                )
                .order_by(Job.created_at, JobSegment.job_id, JobSegment.seq)
                .limit(1)
            )
            if job_id is not None:
                candidate = candidate.where(JobSegment.job_id == job_id)
            if self.engine.dialect.name == "postgresql":
                candidate = candidate.with_for_update(of=JobSegment, skip_locked=True)
            with self.session() as session, session.begin():
                found = session.execute(candidate).first()
                if found is None:
                    return None
                row = session.execute(
                    update(JobSegment)
                    .where(
                        JobSegment.job_id == found.job_id,
                        JobSegment.seq == found.seq,
                        JobSegment.status == SegmentStatus.PENDING.value,
                    )
                    .values(
                        status=SegmentStatus.RUNNING.value,
                        lease_owner=worker_id,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        attempts=JobSegment.attempts + 1,
                        frames_done=0,
                        updated_at=now,
                    )
                    .returning(*_SEGMENTS.c)
                    .execution_options(synchronize_session=False)
                ).first()
                return segment_from_row(row) if row is not None else None

        return retry_on_conflict(claim)

    def _update_segment(self, condition: Any, **values: Any) -> bool:
        def run() -> bool:
            statement = (
                update(JobSegment)
                .where(condition)
                .values(updated_at=self._clock(), **values)
                .execution_options(synchronize_session=False)
            )
            with self.session() as session, session.begin():
                return session.execute(statement).rowcount == 1  # type: ignore[attr-defined,no-any-return]

        return retry_on_conflict(run)

    def heartbeat_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, lease_seconds: float
    ) -> bool:
        """Renew the lease on a segment; False when not held or its job stopped."""
        return self._update_segment(
            and_(self._held_segment(job_id, seq, worker_id), self._job_alive(job_id)),
            lease_expires_at=self._clock() + timedelta(seconds=lease_seconds),
        )

    def holds_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Whether the segment is held by worker_id and its job not stopped (a read)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(JobSegment.seq).where(
                    self._held_segment(job_id, seq, worker_id), self._job_alive(job_id)
                )
            ).first()
        return row is not None

    def set_segment_progress(
        self, job_id: uuid.UUID, seq: int, worker_id: str, frames_done: int, lease_seconds: float
    ) -> bool:
        """Record frames done and renew the lease; the job's progress follows (running,
        or pending again after its coordinator was lost)."""

        def run() -> JobStatus | None:
            now = self._clock()
            with self.session() as session, session.begin():
                result = session.execute(
                    update(JobSegment)
                    .where(self._held_segment(job_id, seq, worker_id), self._job_alive(job_id))
                    .values(
                        frames_done=frames_done,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    return None
                self._follow_segments(session, job_id, now)  # the job is pending or running
                status = session.execute(select(Job.status).where(Job.job_id == job_id))
                return JobStatus(status.scalar_one())

        job_status = retry_on_conflict(run)
        if job_status is None:
            return False
        self._changes.publish(job_id, job_status)
        return True

    def finish_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Mark a held segment done; False when not held or its job stopped."""
        return self._update_segment(
            and_(self._held_segment(job_id, seq, worker_id), self._job_alive(job_id)),
            status=SegmentStatus.DONE.value,
            frames_done=JobSegment.frames,
            lease_expires_at=None,
        )

    def fail_segment(self, job_id: uuid.UUID, seq: int, worker_id: str, message: str) -> bool:
        """Mark a held segment failed with a message; False when not held."""
        return self._update_segment(
            self._held_segment(job_id, seq, worker_id),
            status=SegmentStatus.FAILED.value,
            error_message=message,
            lease_expires_at=None,
        )

    def release_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, *, count_attempt: bool = False
    ) -> bool:
        """Hand a held segment back to pending; the attempt counts only if count_attempt."""
        values: dict[str, Any] = {} if count_attempt else {"attempts": JobSegment.attempts - 1}
        return self._update_segment(
            self._held_segment(job_id, seq, worker_id),
            status=SegmentStatus.PENDING.value,
            lease_owner=None,
            lease_expires_at=None,
            frames_done=0,
            **values,
        )

    def recover_expired_segments(self, max_attempts: int) -> SegmentRecovery:
        """Requeue running segments whose lease expired, or fail those out of attempts."""
        now = self._clock()

        def sweep() -> SegmentRecovery:
            requeued: list[tuple[uuid.UUID, int]] = []
            failed: list[tuple[uuid.UUID, int]] = []
            with self.session() as session, session.begin():
                expired = session.execute(
                    select(
                        JobSegment.job_id,
                        JobSegment.seq,
                        JobSegment.attempts,
                        JobSegment.lease_expires_at,
                    ).where(
                        JobSegment.status == SegmentStatus.RUNNING.value,
                        JobSegment.lease_expires_at < now,
                    )
                ).all()
                for job_id, seq, attempts, lease in expired:
                    if attempts >= max_attempts:
                        values: dict[str, Any] = {
                            "status": SegmentStatus.FAILED.value,
                            "error_message": lost_worker_message(attempts, max_attempts),
                        }
                        target = failed
                    else:
                        values = {"status": SegmentStatus.PENDING.value, "frames_done": 0}
                        target = requeued
                    # the lease in the condition: a segment renewed since the SELECT stays
                    result = session.execute(
                        update(JobSegment)
                        .where(
                            JobSegment.job_id == job_id,
                            JobSegment.seq == seq,
                            JobSegment.status == SegmentStatus.RUNNING.value,
                            JobSegment.lease_expires_at == lease,
                        )
                        .values(lease_owner=None, lease_expires_at=None, updated_at=now, **values)
                        .execution_options(synchronize_session=False)
                    )
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        target.append((job_id, seq))
            return SegmentRecovery(requeued, failed)

        return retry_on_conflict(sweep)

    def _delete_segments(self, session: Session, job_id: uuid.UUID) -> None:
        """Remove a job's segment rows inside the caller's transaction."""
        session.execute(delete(JobSegment).where(JobSegment.job_id == job_id))
