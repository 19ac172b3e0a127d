"""The job store seam: its protocols, one for each kind of caller, and `JobStore`, their union.

The jobs table is the queue. The store is split where its callers differ, and each caller
names the narrowest protocol it needs: `JobRegistry` the API side, `JobHousekeeping`
retention and the storage sweep, `JobQueue` (jobs/queue.py) the workers, `WebhookOutbox`
the webhook sender, `JobMonitoring` the /metrics and /healthz routes. Two implementations
keep the same contract (tests/jobs runs one suite on each): `SqlJobStore` (DuckDB or
PostgreSQL through SQLAlchemy) and `InMemoryJobStore` (a thread-safe double for tests).

Adding an operation: declare it in the protocol of its caller with its docstring,
implement it in both stores (a state change: its rule in jobs/rules.py), and add its
contract test. This module and the values it names load no SQLAlchemy.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol, Unpack

from forgesyte.jobs.changes import JobListener
from forgesyte.jobs.keys import KeyRing
from forgesyte.jobs.queue import JobQueue, JobReads
from forgesyte.jobs.records import (
    DuplicateIdempotencyKeyError,
    JobFinishedError,
    JobPageCursor,
    JobPageQuery,
    JobRecord,
    JobRunningError,
    NewJob,
    RecoveryReport,
    WebhookDelivery,
    WebhookOutcome,
)
from forgesyte.jobs.stats import DURATION_BUCKETS_S, DurationHistogram
from forgesyte.search.values import IndexEntries, SearchHit, SearchQuery

__all__ = [
    "DuplicateIdempotencyKeyError",
    "JobFinishedError",
    "JobHousekeeping",
    "JobListener",
    "JobMonitoring",
    "JobPageCursor",
    "JobPageQuery",
    "JobQueue",
    "JobReads",
    "JobRecord",
    "JobRegistry",
    "JobRunningError",
    "JobStore",
    "KeyRing",
    "NewJob",
    "RecoveryReport",
    "WebhookDelivery",
    "WebhookOutbox",
    "WebhookOutcome",
]


class JobRegistry(JobReads, Protocol):
    """The jobs clients submit: what the API creates, reads, lists, cancels and deletes."""

    def create(self, new: NewJob) -> JobRecord:
        """Insert a pending job; being in the store is being in the queue.

        Raises DuplicateIdempotencyKeyError when another job holds new.idempotency_key.
        """
        ...

    def get_by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job submitted with this idempotency key, or None."""
        ...

    def count_pending(self, owner: str) -> int:
        """How many pending jobs this owner has (the per-key cap of submits)."""
        ...

    def list_page(self, **query: Unpack[JobPageQuery]) -> list[JobRecord]:
        """Up to `limit` jobs, newest first (created_at, then job_id, both descending),
        only those in `status` and of `pipeline_id` when given.

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
        """Remove a job that is not running (with its webhook outbox row and its search
        entries, in one transaction); the removed snapshot, or None if unknown. Raises
        JobRunningError for a running job. The job's storage objects are the caller's to
        remove. Listeners hear the removal as a change with the job's last status."""
        ...

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Up to query.limit moments of completed jobs that match query, in answer order
        (`SearchPosition`: distance, newest job, start_s), strictly behind query.after.

        Matches found before a page are never shifted by jobs completing meanwhile: a
        position's place in the order does not depend on what else is indexed.
        """
        ...


class JobHousekeeping(JobRegistry, Protocol):
    """Retention and the storage sweep: they remove jobs as the API's DELETE does
    (`forgesyte.retention.remove_job`), and read which jobs ended or exist; the search
    backfill indexes the completed jobs the index lacks."""

    def finished_before(self, cutoff: datetime, limit: int) -> list[JobRecord]:
        """Up to limit jobs that ended (completed, failed, cancelled) before cutoff, oldest
        first; a finished job's updated_at is when it ended."""
        ...

    def existing_job_ids(self, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these job ids have a job."""
        ...

    def oldest_created_at(self) -> datetime | None:
        """When the oldest job was created, or None when there is no job."""
        ...

    def unindexed_jobs(self, limit: int) -> list[JobRecord]:
        """Up to limit completed jobs whose entries are not in the search index (completed
        before it existed, or by a worker that could not read its timeline), oldest first."""
        ...

    def index_job(self, job_id: uuid.UUID, entries: IndexEntries) -> bool:
        """Put a completed job's entries in the search index, marking it indexed in the same
        transaction; False (nothing written) when it is not completed or indexed already."""
        ...

    def maintain_search_index(self) -> None:
        """Keep the search index quick to read as jobs are added (run now and then by the
        search maintenance thread of serve and worker)."""
        ...


class WebhookOutbox(Protocol):
    """The webhook sender's side: the outbox row is created with the job, from
    NewJob.callback_url, and is due once the job has finished."""

    def claim_webhooks(self, limit: int, retry_after_s: float) -> list[WebhookDelivery]:
        """Claim up to limit due deliveries of finished jobs, counting one attempt each.

        A claimed delivery is due again after retry_after_s unless `finish_webhook` says
        otherwise first: a sender that dies mid-attempt leaves it to be retried.
        """
        ...

    def finish_webhook(self, delivery: WebhookDelivery, outcome: WebhookOutcome) -> bool:
        """Record how an attempt went: delivered, retried at a time, or abandoned. False
        when the attempt was not the latest claim (nothing changed)."""
        ...

    def webhook_state(self, job_id: uuid.UUID) -> tuple[str, int] | None:
        """A job's webhook delivery state and attempts so far, or None if it has none."""
        ...


class JobMonitoring(Protocol):
    """The monitoring reads, made at scrape time so every process reports the same."""

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each state (every state present, zero included)."""
        ...

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

    def pending_by_owner(self) -> dict[str, int]:
        """Pending jobs per owner that has any (owners are key names: as many as keys)."""
        ...


class JobStore(JobHousekeeping, JobQueue, WebhookOutbox, JobMonitoring, KeyRing, Protocol):
    """Every operation on jobs: what the two stores implement and a process wires once.

    After each change it commits, the store tells its change listeners.
    """

    def add_change_listener(self, listener: JobListener) -> None:
        """Call listener(JobChange) after this store changes a job (same process only)."""
        ...

    def close(self) -> None:
        """Release what the store holds (database connections); it is not used afterwards."""
        ...
