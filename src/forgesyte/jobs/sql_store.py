"""The job store on DuckDB or PostgreSQL: every read and write of the jobs table and the
webhook outbox, the monitoring aggregates included; the segments are in sql_segments.py."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Unpack

from sqlalchemy import (
    Float,
    Row,
    Select,
    Update,
    and_,
    case,
    cast,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from forgesyte.db.engine import retry_on_conflict
from forgesyte.db.migrate import open_engine
from forgesyte.db.tables import Job, JobWebhook, QueueOwner
from forgesyte.jobs import records, rules, stats
from forgesyte.jobs.changes import JobListener
from forgesyte.jobs.models import ACTIVE_STATUSES, FINISHED_STATUSES, JobStatus, WebhookState
from forgesyte.jobs.records import JobRecord, WebhookDelivery
from forgesyte.jobs.sql_keys import SqlKeys
from forgesyte.jobs.sql_segments import SqlSegments
from forgesyte.search.values import IndexEntries, SearchHit, SearchQuery

LOOKUP_BATCH = 500  # ids per query when checking which jobs exist
# the owner a job's create makes known to the fair queue, as never served (if it is new)
_OWNER_KNOWN = text(
    "INSERT INTO queue_owners (owner, last_claimed_at) VALUES (:owner, :never)"
    " ON CONFLICT (owner) DO NOTHING"
)
# the fair queue's candidate by one sort: pending jobs by their owner's last claim (none
# first), owner, age (DuckDB's claim; PostgreSQL's when its owner-first walk finds none)
_SORTED_CANDIDATE = (
    select(Job.job_id)
    .outerjoin(QueueOwner, QueueOwner.owner == Job.owner)
    .where(Job.status == JobStatus.PENDING.value)
    .order_by(
        QueueOwner.last_claimed_at.asc().nulls_first(),
        Job.owner,
        Job.created_at,
        Job.job_id,
    )
    .limit(1)
)
# an owner's last claim, set in the claim's transaction (DuckDB and PostgreSQL alike)
_SERVED = text(
    "INSERT INTO queue_owners (owner, last_claimed_at) VALUES (:owner, :now)"
    " ON CONFLICT (owner) DO UPDATE SET last_claimed_at = excluded.last_claimed_at"
)

_JOBS = Job.__table__
_FINISHED = [status.value for status in FINISHED_STATUSES]
_RECORD_FIELDS = [field.name for field in dataclasses.fields(JobRecord)]


def record_from_row(row: Job | Row[Any]) -> JobRecord:
    """Snapshot an ORM object or a Core row of the jobs table (a column per record field)."""
    values = {name: getattr(row, name) for name in _RECORD_FIELDS}
    values.update(status=JobStatus(row.status), options=dict(row.options or {}))
    return JobRecord(**values)


def _latest_claim(job_id: uuid.UUID, attempts: int) -> Any:
    """A job's pending outbox row, if its latest claim is the one that counted `attempts`."""
    return and_(
        JobWebhook.job_id == job_id,
        JobWebhook.attempts == attempts,
        JobWebhook.state == WebhookState.PENDING.value,
    )


class SqlJobStore(SqlSegments, SqlKeys):
    """The `JobStore` on a SQLAlchemy engine: the jobs table is the queue.

    `clock` gives the time of every write and lease (tests move it on instead of
    sleeping). The engine belongs to the store once given: `close` disposes of it.
    """

    @classmethod
    def open(
        cls, url: str, *, upgrade_schema: bool = True, on_change: JobListener | None = None
    ) -> SqlJobStore:
        """The store on the database at url; raises DatabaseLockedError for a held DuckDB file."""
        return cls(open_engine(url, upgrade_schema=upgrade_schema), on_change=on_change)

    def _update_returning(
        self,
        statement: Update,
        *,
        follow_segments: bool = False,
        then: Callable[[Session, JobRecord], None] | None = None,
    ) -> JobRecord | None:
        """Run an UPDATE of at most one job in its own transaction; the job as updated.

        follow_segments: a split job's progress is then set from its segments. then: run
        in the same transaction when a job was updated.
        """
        with self.session() as session, session.begin():
            row = session.scalars(
                statement.returning(Job).execution_options(synchronize_session=False)
            ).first()
            if row is None:
                return None
            record = record_from_row(row)
            if then is not None:
                then(session, record)
            if follow_segments:
                progress = self.follow_segments(session, record.job_id, record.updated_at)
                if progress is not None:
                    record = dataclasses.replace(record, progress=progress)
            return record

    # -- the API side -----------------------------------------------------------------

    def create(self, new: records.NewJob) -> JobRecord:
        """Insert a pending job; being in the table is being in the queue."""
        now = self.clock()
        pending = rules.pending_record(new, now)
        row = Job(**{**dataclasses.asdict(pending), "status": pending.status.value})

        def insert() -> JobRecord:
            with self.session() as session, session.begin():
                session.add(row)
                session.execute(_OWNER_KNOWN, {"owner": new.owner, "never": rules.NEVER_SERVED})
                if new.callback_url is not None:
                    session.add(
                        JobWebhook(
                            job_id=new.job_id,
                            callback_url=new.callback_url,
                            event_id=uuid.uuid4(),
                            state=WebhookState.PENDING.value,
                            attempts=0,
                            next_attempt_at=now,
                            updated_at=now,
                        )
                    )
            return record_from_row(row)

        try:
            record = retry_on_conflict(insert)
        except IntegrityError as exc:
            if new.idempotency_key is not None:
                raise records.DuplicateIdempotencyKeyError(new.idempotency_key) from exc
            raise
        self.changes.publish(record.job_id, record.status)
        return record

    def get(self, job_id: uuid.UUID) -> JobRecord | None:
        """The job with this id, or None (a plain Core read: the status hot path)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(_JOBS).where(_JOBS.c.job_id == job_id)).first()
        return record_from_row(row) if row is not None else None

    def get_by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job submitted with this idempotency key, or None."""
        with self.session() as session:
            row = session.scalars(select(Job).where(Job.idempotency_key == key)).first()
            return record_from_row(row) if row is not None else None

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

    # -- monitoring: computed by the database when asked, so every process reports the same

    def oldest_pending_created_at(self) -> datetime | None:
        """When the job that has waited longest in the queue was submitted; None if none."""
        statement = select(func.min(Job.created_at)).where(Job.status == JobStatus.PENDING.value)
        with self.engine.connect() as connection:
            oldest: datetime | None = connection.execute(statement).scalar_one()
        return oldest

    def finished_job_durations(
        self, bounds: Sequence[float] = stats.DURATION_BUCKETS_S
    ) -> list[stats.DurationHistogram]:
        """One cumulative histogram of submit-to-end seconds per (pipeline_id, final status),
        in one scan."""
        bounds = tuple(sorted(bounds))
        # EXTRACT(epoch FROM interval): an interval's seconds, on DuckDB and PostgreSQL alike
        # (cast to a double: PostgreSQL's EXTRACT gives numeric)
        duration = cast(func.extract("epoch", Job.updated_at - Job.created_at), Float)
        statement = (
            select(
                Job.pipeline_id,
                Job.status,
                func.count(),
                func.coalesce(func.sum(duration), 0),
                *(func.sum(case((duration <= bound, 1), else_=0)) for bound in bounds),
            )
            .where(Job.status.in_(_FINISHED))
            .group_by(Job.pipeline_id, Job.status)
            .order_by(Job.pipeline_id, Job.status)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        return [
            stats.DurationHistogram(
                pipeline_id=str(row[0]),
                status=str(row[1]),
                bounds=bounds,
                bucket_counts=tuple(int(n) for n in row[4:]),
                count=int(row[2]),
                sum_s=float(row[3]),
            )
            for row in rows
        ]

    def frames_analysed_total(self) -> int:
        """Frames analysed by every completed job still in the store (from its summary)."""
        frames = Job.result_summary["frames_analysed"].as_integer()
        statement = select(func.coalesce(func.sum(frames), 0)).where(
            Job.status == JobStatus.COMPLETED.value
        )
        with self.engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def count_pending(self, owner: str) -> int:
        """How many pending jobs this owner has (a count on the (status, owner) index)."""
        statement = select(func.count()).where(
            Job.status == JobStatus.PENDING.value, Job.owner == owner
        )
        with self.engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def pending_by_owner(self) -> dict[str, int]:
        """Pending jobs per owner that has any."""
        statement = (
            select(Job.owner, func.count())
            .where(Job.status == JobStatus.PENDING.value)
            .group_by(Job.owner)
        )
        with self.engine.connect() as connection:
            return {str(owner): int(n) for owner, n in connection.execute(statement)}

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        counts = {status.value: 0 for status in JobStatus}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def list_page(self, **query: Unpack[records.JobPageQuery]) -> list[JobRecord]:
        """Up to limit jobs, newest first; with `after`, those strictly behind it.

        The order and the keyset condition follow the (created_at, job_id) index.
        """
        statement = select(_JOBS)
        if (owner := query.get("owner")) is not None:
            statement = statement.where(_JOBS.c.owner == owner)
        if (status := query.get("status")) is not None:
            statement = statement.where(_JOBS.c.status == status.value)
        if (pipeline_id := query.get("pipeline_id")) is not None:
            statement = statement.where(_JOBS.c.pipeline_id == pipeline_id)
        if (after := query.get("after")) is not None:
            statement = statement.where(
                or_(
                    _JOBS.c.created_at < after.created_at,
                    and_(_JOBS.c.created_at == after.created_at, _JOBS.c.job_id < after.job_id),
                )
            )
        statement = statement.order_by(_JOBS.c.created_at.desc(), _JOBS.c.job_id.desc())
        with self.engine.connect() as connection:
            return [
                record_from_row(row) for row in connection.execute(statement.limit(query["limit"]))
            ]

    def cancel(self, job_id: uuid.UUID) -> JobRecord | None:
        """Make a pending or running job cancelled; JobFinishedError if it already ended."""

        def run() -> JobRecord | None:
            statement = (
                update(Job)
                .where(
                    Job.job_id == job_id,
                    Job.status.in_([status.value for status in ACTIVE_STATUSES]),
                )
                .values(
                    status=JobStatus.CANCELLED.value,
                    lease_expires_at=None,
                    updated_at=self.clock(),
                )
            )
            return self._update_returning(statement)

        cancelled = retry_on_conflict(run)
        if cancelled is None:
            current = self.get(job_id)
            if current is None:
                return None
            raise records.JobFinishedError(current.status)
        self.changes.publish(job_id, JobStatus.CANCELLED)
        return cancelled

    def delete(self, job_id: uuid.UUID) -> JobRecord | None:
        """Remove a job that is not running, with its outbox row; the removed snapshot."""

        def run() -> JobRecord | None:
            with self.session() as session, session.begin():
                row = session.execute(
                    delete(Job)
                    .where(Job.job_id == job_id, Job.status != JobStatus.RUNNING.value)
                    .returning(*_JOBS.c)
                    .execution_options(synchronize_session=False)
                ).first()
                if row is None:
                    return None
                session.execute(delete(JobWebhook).where(JobWebhook.job_id == job_id))
                self.delete_segments(session, job_id)
                self.search_index.delete(session, job_id)
                return record_from_row(row)

        removed = retry_on_conflict(run)
        if removed is None:
            current = self.get(job_id)
            if current is None:
                return None
            raise records.JobRunningError(str(job_id))
        self.changes.publish(job_id, removed.status)  # caches of this job must forget it
        return removed

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Up to query.limit matches in answer order, strictly behind query.after."""
        with self.engine.connect() as connection:
            return self.search_index.search(connection, query)

    def unindexed_jobs(self, limit: int) -> list[JobRecord]:
        """Up to limit completed jobs not in the search index, oldest first."""
        with self.engine.connect() as connection:
            ids = self.search_index.unindexed_job_ids(connection, JobStatus.COMPLETED.value, limit)
            if not ids:
                return []
            rows = connection.execute(
                select(_JOBS)
                .where(_JOBS.c.job_id.in_(ids))
                .order_by(_JOBS.c.created_at, _JOBS.c.job_id)
            )
            return [record_from_row(row) for row in rows]

    def maintain_search_index(self) -> None:
        """Keep the index quick to read as it grows (DuckDB: its trigram table sorted again
        once enough was appended; nothing to do on PostgreSQL)."""

        def run() -> int | None:
            with self.session() as session, session.begin():
                return self.search_index.sort_trigrams(session, self._trigrams_sorted_up_to)

        sorted_up_to = retry_on_conflict(run)
        if sorted_up_to is not None:
            self._trigrams_sorted_up_to = sorted_up_to

    def index_job(self, job_id: uuid.UUID, entries: IndexEntries) -> bool:
        """Index a completed job's entries, marking it indexed in the same transaction."""

        def run() -> bool:
            with self.session() as session, session.begin():
                # a write to the job's row: a DELETE at the same time waits for this
                # transaction (PostgreSQL) or loses the race (DuckDB), so entries never
                # outlive their job
                held = session.execute(
                    update(Job)
                    .where(Job.job_id == job_id, Job.status == JobStatus.COMPLETED.value)
                    .values(updated_at=Job.updated_at)
                    .execution_options(synchronize_session=False)
                )
                if held.rowcount != 1:  # type: ignore[attr-defined]
                    return False
                return self.search_index.write(session, job_id, entries, self.clock())

        return retry_on_conflict(run)

    def finished_before(self, cutoff: datetime, limit: int) -> list[JobRecord]:
        """Up to limit finished jobs that ended before cutoff, oldest first."""
        query = (
            select(_JOBS)
            .where(_JOBS.c.status.in_(_FINISHED), _JOBS.c.updated_at < cutoff)
            .order_by(_JOBS.c.updated_at, _JOBS.c.job_id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [record_from_row(row) for row in connection.execute(query)]

    # -- webhooks ---------------------------------------------------------------------

    def claim_webhooks(self, limit: int, retry_after_s: float) -> list[WebhookDelivery]:
        """Claim up to limit due deliveries of finished jobs, one attempt counted each."""

        def claim() -> list[WebhookDelivery]:
            now = self.clock()
            due = (
                select(
                    JobWebhook.job_id,
                    JobWebhook.event_id,
                    JobWebhook.callback_url,
                    JobWebhook.attempts,
                    Job.status,
                    Job.error_message,
                    Job.updated_at,
                )
                .join(Job, Job.job_id == JobWebhook.job_id)
                .where(
                    JobWebhook.state == WebhookState.PENDING.value,
                    JobWebhook.next_attempt_at <= now,
                    Job.status.in_(_FINISHED),
                )
                .order_by(JobWebhook.next_attempt_at)
                .limit(limit)
            )
            claimed: list[WebhookDelivery] = []
            with self.session() as session, session.begin():
                for row in session.execute(self.skip_locked(due, JobWebhook)).all():
                    result = session.execute(
                        update(JobWebhook)
                        .where(_latest_claim(row.job_id, row.attempts))
                        .values(
                            attempts=row.attempts + 1,
                            next_attempt_at=now + timedelta(seconds=retry_after_s),
                            updated_at=now,
                        )
                        .execution_options(synchronize_session=False)
                    )
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        claimed.append(
                            WebhookDelivery(
                                job_id=row.job_id,
                                event_id=row.event_id,
                                callback_url=row.callback_url,
                                attempt=row.attempts + 1,
                                status=JobStatus(row.status),
                                error_message=row.error_message,
                                updated_at=row.updated_at,
                            )
                        )
            return claimed

        return retry_on_conflict(claim)

    def finish_webhook(self, delivery: WebhookDelivery, outcome: records.WebhookOutcome) -> bool:
        """Record how an attempt went; False when it was not the latest claim."""
        values: dict[str, Any] = {"state": outcome.state.value, "last_error": outcome.last_error}
        if outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at

        def run() -> bool:
            statement = (
                update(JobWebhook)
                .where(_latest_claim(delivery.job_id, delivery.attempt))
                .values(updated_at=self.clock(), **values)
                .execution_options(synchronize_session=False)
            )
            with self.session() as session, session.begin():
                return session.execute(statement).rowcount == 1  # type: ignore[attr-defined,no-any-return]

        return retry_on_conflict(run)

    def webhook_state(self, job_id: uuid.UUID) -> tuple[str, int] | None:
        """A job's webhook delivery state and attempts so far, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(JobWebhook.state, JobWebhook.attempts).where(JobWebhook.job_id == job_id)
            ).first()
        return (str(row.state), int(row.attempts)) if row is not None else None

    # -- the worker side --------------------------------------------------------------

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Claim the next pending job for this worker, or None when the queue is empty.

        The fair queue (`rules.fair_claim_order`): the oldest pending job of the owner
        whose last claim is oldest. One conditional UPDATE moves that row to running, and
        the owner's last claim is set in the same transaction; two claimers never get the
        same job. On DuckDB a lost race raises a conflict and is retried; on PostgreSQL
        the candidate row is locked with FOR UPDATE SKIP LOCKED.

        How the candidate is found differs (bench row k): DuckDB sorts the pending jobs
        joined to their owners' last claims (a columnar scan: about 1-3 ms for 10,000);
        PostgreSQL first walks `queue_owners` by last claim to the first owner with a
        pending job (an index probe each) and takes that owner's oldest job (about 0.3 ms
        against 2-4 ms for the sort). When that finds nothing (the owner's jobs are locked
        by other claimers, or a job's owner has no `queue_owners` row: `create` makes one,
        a row written by other means may lack it), the sort runs as on DuckDB.
        """

        def claim(by_owner_first: bool) -> JobRecord | None:
            now = self.clock()
            status, values = rules.claimed(worker_id, now + timedelta(seconds=lease_seconds))
            candidate = self._owner_first_candidate() if by_owner_first else _SORTED_CANDIDATE
            statement = (
                update(Job)
                .where(
                    and_(
                        Job.job_id == self.skip_locked(candidate, Job).scalar_subquery(),
                        Job.status == JobStatus.PENDING.value,
                    )
                )
                .values(status=status.value, attempts=Job.attempts + 1, updated_at=now, **values)
            )

            def served(session: Session, job: JobRecord) -> None:
                session.execute(_SERVED, {"owner": job.owner, "now": now})

            return self._update_returning(statement, follow_segments=True, then=served)

        claimed = None
        if self.engine.dialect.name == "postgresql":
            claimed = retry_on_conflict(lambda: claim(True))
        if claimed is None:
            claimed = retry_on_conflict(lambda: claim(False))
        if claimed is not None:
            self.changes.publish(claimed.job_id, claimed.status)
        return claimed

    @staticmethod
    def _owner_first_candidate() -> Select[uuid.UUID]:
        """PostgreSQL's candidate: the oldest pending job of the first owner, by last claim,
        that has one (owners walked on ix_queue_owners_last_claimed_at)."""
        waiting = aliased(Job)  # not the outer jobs: this one is correlated to the owner only
        pending = (
            select(waiting.job_id)
            .where(waiting.status == JobStatus.PENDING.value, waiting.owner == QueueOwner.owner)
            .correlate(QueueOwner)
        )
        next_owner = (
            select(QueueOwner.owner)
            .where(pending.exists())
            .order_by(QueueOwner.last_claimed_at, QueueOwner.owner)
            .limit(1)
            .scalar_subquery()
        )
        return (
            select(Job.job_id)
            .where(Job.status == JobStatus.PENDING.value, Job.owner == next_owner)
            .order_by(Job.created_at, Job.job_id)
            .limit(1)
        )

    def _update_held(self, job_id: uuid.UUID, held_by: str, change: rules.HeldChange) -> bool:
        """Update a running job that this worker still holds; False if it no longer does."""
        values = dict(change.values)
        if change.uncount_attempt:
            values["attempts"] = Job.attempts - 1

        def run() -> bool:
            now = self.clock()
            statement = (
                update(Job)
                .where(
                    Job.job_id == job_id,
                    Job.status == JobStatus.RUNNING.value,
                    Job.worker_id == held_by,
                )
                .values(status=change.status.value, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            )
            with self.session() as session, session.begin():
                if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
                    return False
                if change.status is JobStatus.PENDING:  # handed back
                    self.follow_segments(session, job_id, now)
                if change.index is not None:  # a completion: its entries with it
                    self.search_index.write(session, job_id, change.index, now)
                return True

        held = retry_on_conflict(run)
        if held:
            self.changes.publish(job_id, change.status)
        return held

    def holds(self, job_id: uuid.UUID, worker_id: str) -> bool:
        """Whether the job is still running and held by this worker (a read, no write)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(_JOBS.c.job_id).where(
                    _JOBS.c.job_id == job_id,
                    _JOBS.c.status == JobStatus.RUNNING.value,
                    _JOBS.c.worker_id == worker_id,
                )
            ).first()
        return row is not None

    def recover_expired(self, max_attempts: int) -> records.RecoveryReport:
        """Return jobs whose lease expired to pending, or fail them when attempts ran out."""
        now = self.clock()

        def sweep() -> records.RecoveryReport:
            requeued: list[uuid.UUID] = []
            failed: list[uuid.UUID] = []
            with self.session() as session, session.begin():
                expired = session.execute(
                    select(Job.job_id, Job.attempts, Job.lease_expires_at).where(
                        Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now
                    )
                ).all()
                for job_id, attempts, lease in expired:
                    # the lease in the condition: a job renewed since the SELECT is left alone
                    held = and_(
                        Job.job_id == job_id,
                        Job.status == JobStatus.RUNNING.value,
                        Job.lease_expires_at == lease,
                    )
                    status, values = rules.expired_lease_outcome(attempts, max_attempts)
                    result = session.execute(
                        update(Job)
                        .where(held)
                        .values(status=status.value, updated_at=now, **values)
                        .execution_options(synchronize_session=False)
                    )
                    if result.rowcount != 1:  # type: ignore[attr-defined]
                        continue
                    if status is JobStatus.FAILED:
                        failed.append(job_id)
                    else:
                        requeued.append(job_id)
                        self.follow_segments(session, job_id, now)
            return records.RecoveryReport(requeued, failed)

        report = retry_on_conflict(sweep)
        for job_id in report.requeued:
            self.changes.publish(job_id, JobStatus.PENDING)
        for job_id in report.failed:
            self.changes.publish(job_id, JobStatus.FAILED)
        return report
