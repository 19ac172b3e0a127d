"""The job store in memory: the same contract as the database, for tests that need some store.

One class under one lock: the SQL store is split in two by table (sql_segments.py), a
double this size needs no split. What each write changes is decided in
`forgesyte.jobs.rules`, as for the SQL store.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Unpack

from forgesyte.jobs import records, rules, stats
from forgesyte.jobs.changes import JobListener
from forgesyte.jobs.keys import LAST_USED_EVERY, DuplicateKeyName, KeyRecord, Role
from forgesyte.jobs.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    JobStatus,
    SegmentStatus,
    WebhookState,
    utcnow,
)
from forgesyte.jobs.records import JobRecord, WebhookDelivery
from forgesyte.jobs.segments import SegmentRecord, SegmentRecovery, SegmentSpan, job_progress
from forgesyte.search.memory_index import MemorySearchIndex
from forgesyte.search.values import IndexEntries, SearchHit, SearchQuery


def _name(key: KeyRecord) -> str:
    return key.name


if TYPE_CHECKING:
    from forgesyte.jobs.store import JobStore


@dataclasses.dataclass
class _Webhook:
    """A job's outbox entry (the job_webhooks row of the SQL store)."""

    callback_url: str
    event_id: uuid.UUID
    next_attempt_at: datetime
    state: WebhookState = WebhookState.PENDING
    attempts: int = 0
    last_error: str | None = None


class InMemoryJobStore(rules.JobStoreRules):
    """A thread-safe `JobStore` in dicts: FIFO by created_at, leases, attempts, idempotency.

    One lock makes each operation atomic, as a transaction would; listeners are called
    after the lock is released. Snapshots handed out are copies: changing one changes
    nothing stored.
    """

    def __init__(
        self, *, on_change: JobListener | None = None, clock: rules.Clock = utcnow
    ) -> None:
        super().__init__(clock=clock, on_change=on_change)
        self._lock = threading.Lock()
        self._jobs: dict[uuid.UUID, JobRecord] = {}
        self._by_key: dict[str, uuid.UUID] = {}
        self._webhooks: dict[uuid.UUID, _Webhook] = {}
        self._segments: dict[uuid.UUID, list[SegmentRecord]] = {}
        self._search = MemorySearchIndex()
        self._keys: dict[str, tuple[KeyRecord, bool]] = {}  # name -> (key, revoked)
        self._last_claims: dict[str, datetime] = {}  # owner -> its last claim (the fair queue)

    def close(self) -> None:
        """Nothing to release."""

    # -- the API side -----------------------------------------------------------------

    def count_pending(self, owner: str) -> int:
        """How many pending jobs this owner has."""
        with self._lock:
            return sum(
                job.status is JobStatus.PENDING and job.owner == owner
                for job in self._jobs.values()
            )

    def pending_by_owner(self) -> dict[str, int]:
        """Pending jobs per owner that has any."""
        with self._lock:
            counts: dict[str, int] = {}
            for job in self._jobs.values():
                if job.status is JobStatus.PENDING:
                    counts[job.owner] = counts.get(job.owner, 0) + 1
            return counts

    # -- the keys ---------------------------------------------------------------------

    def create_key(self, name: str, role: Role, digest: str) -> KeyRecord:
        """Store a new key; DuplicateKeyName if the name was ever used."""
        with self._lock:
            if name in self._keys or any(k.digest == digest for k, _ in self._keys.values()):
                raise DuplicateKeyName(name)
            key = KeyRecord(name, role, digest, self.clock())
            self._keys[name] = (key, False)
            return key

    def key_by_digest(self, digest: str) -> KeyRecord | None:
        """The live key with this digest, or None."""
        with self._lock:
            found = [k for k, revoked in self._keys.values() if not revoked and k.digest == digest]
            return found[0] if found else None

    def list_keys(self) -> list[KeyRecord]:
        """Every live key, by name."""
        with self._lock:
            return sorted((k for k, revoked in self._keys.values() if not revoked), key=_name)

    def revoke_key(self, name: str) -> bool:
        """Revoke the live key of this name; False if there is none."""
        with self._lock:
            entry = self._keys.get(name)
            if entry is None or entry[1]:
                return False
            self._keys[name] = (entry[0], True)
            return True

    def has_keys(self) -> bool:
        """Whether any live key exists."""
        with self._lock:
            return any(not revoked for _, revoked in self._keys.values())

    def touch_key(self, name: str) -> None:
        """Record the key's use now, unless it was recorded within LAST_USED_EVERY."""
        with self._lock:
            entry = self._keys.get(name)
            if entry is None:
                return
            key, revoked = entry
            now = self.clock()
            if key.last_used_at is None or key.last_used_at <= now - LAST_USED_EVERY:
                self._keys[name] = (dataclasses.replace(key, last_used_at=now), revoked)

    def create(self, new: records.NewJob) -> JobRecord:
        """Add a pending job; DuplicateIdempotencyKeyError if its key is taken."""
        with self._lock:
            if new.job_id in self._jobs:
                raise ValueError(f"job {new.job_id} exists already")
            if new.idempotency_key is not None and new.idempotency_key in self._by_key:
                raise records.DuplicateIdempotencyKeyError(new.idempotency_key)
            now = self.clock()
            record = _copy(rules.pending_record(new, now))  # shares nothing with the caller's
            self._jobs[new.job_id] = record
            if new.idempotency_key is not None:
                self._by_key[new.idempotency_key] = new.job_id
            if new.callback_url is not None:
                self._webhooks[new.job_id] = _Webhook(new.callback_url, uuid.uuid4(), now)
            snapshot = _copy(record)
        self.changes.publish(record.job_id, record.status)
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
        with self._lock:
            durations = [
                (
                    job.pipeline_id,
                    job.status.value,
                    (job.updated_at - job.created_at).total_seconds(),
                )
                for job in self._jobs.values()
                if job.status in FINISHED_STATUSES
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

    def list_page(self, **query: Unpack[records.JobPageQuery]) -> list[JobRecord]:
        """Up to limit jobs, newest first (created_at, job_id descending); after `after`."""
        after, status = query.get("after"), query.get("status")
        pipeline_id, owner = query.get("pipeline_id"), query.get("owner")
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if (status is None or job.status is status)
                and (pipeline_id is None or job.pipeline_id == pipeline_id)
                and (owner is None or job.owner == owner)
                and (
                    after is None or (job.created_at, job.job_id) < (after.created_at, after.job_id)
                )
            ]
            jobs.sort(key=lambda job: (job.created_at, job.job_id), reverse=True)
            return [_copy(job) for job in jobs[: query["limit"]]]

    def cancel(self, job_id: uuid.UUID) -> JobRecord | None:
        """Make a pending or running job cancelled; JobFinishedError if it already ended."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status not in ACTIVE_STATUSES:
                raise records.JobFinishedError(job.status)
            cancelled = self._replace(
                job, self.clock(), status=JobStatus.CANCELLED, lease_expires_at=None
            )
        self.changes.publish(job_id, JobStatus.CANCELLED)
        return cancelled

    def delete(self, job_id: uuid.UUID) -> JobRecord | None:
        """Remove a job that is not running, with its outbox entry; the removed snapshot."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status is JobStatus.RUNNING:
                raise records.JobRunningError(str(job_id))
            del self._jobs[job_id]
            self._webhooks.pop(job_id, None)
            self._segments.pop(job_id, None)
            self._search.delete(job_id)
            if job.idempotency_key is not None:
                self._by_key.pop(job.idempotency_key, None)
        self.changes.publish(job_id, job.status)  # caches of this job must forget it
        return _copy(job)

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Up to query.limit matches in answer order, strictly behind query.after."""
        with self._lock:
            return self._search.search(query)

    def unindexed_jobs(self, limit: int) -> list[JobRecord]:
        """Up to limit completed jobs not in the search index, oldest first."""
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if job.status is JobStatus.COMPLETED and not self._search.has(job.job_id)
            ]
            jobs.sort(key=lambda job: (job.created_at, job.job_id))
            return [_copy(job) for job in jobs[:limit]]

    def maintain_search_index(self) -> None:
        """Nothing to keep: the in-memory index is read whole."""

    def index_job(self, job_id: uuid.UUID, entries: IndexEntries) -> bool:
        """Index a completed job's entries; False when not completed or indexed already."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.COMPLETED:
                return False
            return self._search.write(job_id, job.created_at, job.filename, entries, job.owner)

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
            now = self.clock()
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

    def finish_webhook(self, delivery: WebhookDelivery, outcome: records.WebhookOutcome) -> bool:
        """Record how an attempt went; False when it was not the latest claim."""
        with self._lock:
            hook = self._webhooks.get(delivery.job_id)
            if (
                hook is None
                or hook.state is not WebhookState.PENDING
                or hook.attempts != delivery.attempt
            ):
                return False
            hook.state, hook.last_error = outcome.state, outcome.last_error
            if outcome.next_attempt_at is not None:
                hook.next_attempt_at = outcome.next_attempt_at
            return True

    def webhook_state(self, job_id: uuid.UUID) -> tuple[str, int] | None:
        """A job's webhook delivery state and attempts so far, or None."""
        with self._lock:
            hook = self._webhooks.get(job_id)
            return (hook.state.value, hook.attempts) if hook is not None else None

    # -- the worker side --------------------------------------------------------------

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Claim the oldest pending job of the owner whose last claim is oldest (the fair
        queue: `rules.fair_claim_order`, as the database orders)."""
        with self._lock:
            pending = [job for job in self._jobs.values() if job.status is JobStatus.PENDING]
            if not pending:
                return None
            last = self._last_claims
            oldest = min(pending, key=lambda job: rules.fair_claim_order(job, last.get(job.owner)))
            now = self.clock()
            last[oldest.owner] = now
            status, values = rules.claimed(worker_id, now + timedelta(seconds=lease_seconds))
            values["progress"] = self.restart_progress(oldest.job_id)
            claimed = self._replace(
                oldest, now, status=status, attempts=oldest.attempts + 1, **values
            )
        self.changes.publish(claimed.job_id, claimed.status)
        return claimed

    def _update_held(self, job_id: uuid.UUID, held_by: str, change: rules.HeldChange) -> bool:
        """Change a running job this worker still holds; False if it no longer does."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING or job.worker_id != held_by:
                return False
            values = dict(change.values)
            if change.uncount_attempt:
                values["attempts"] = job.attempts - 1
            if change.status is JobStatus.PENDING:  # handed back
                values["progress"] = self.restart_progress(job_id)
            self._replace(job, self.clock(), status=change.status, **values)
            if change.index is not None:  # a completion: its entries with it
                self._search.write(job_id, job.created_at, job.filename, change.index, job.owner)
        self.changes.publish(job_id, change.status)
        return True

    def _replace(self, job: JobRecord, now: datetime, **values: Any) -> JobRecord:
        """Store a changed copy of job (the lock held), sharing nothing with values; return
        a snapshot of it."""
        changed = _copy(dataclasses.replace(job, updated_at=now, **values))
        self._jobs[job.job_id] = changed
        return _copy(changed)

    def holds(self, job_id: uuid.UUID, worker_id: str) -> bool:
        """Whether the job is still running and held by this worker (a read, no write)."""
        with self._lock:
            job = self._jobs.get(job_id)
            return (
                job is not None and job.status is JobStatus.RUNNING and job.worker_id == worker_id
            )

    def recover_expired(self, max_attempts: int) -> records.RecoveryReport:
        """Return jobs whose lease expired to pending, or fail them when attempts ran out."""
        requeued: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        with self._lock:
            now = self.clock()
            for job in list(self._jobs.values()):
                lease = job.lease_expires_at
                if job.status is not JobStatus.RUNNING or lease is None or lease >= now:
                    continue
                status, values = rules.expired_lease_outcome(job.attempts, max_attempts)
                if status is JobStatus.PENDING:
                    values["progress"] = self.restart_progress(job.job_id)
                self._replace(job, now, status=status, **values)
                (failed if status is JobStatus.FAILED else requeued).append(job.job_id)
        for job_id in requeued:
            self.changes.publish(job_id, JobStatus.PENDING)
        for job_id in failed:
            self.changes.publish(job_id, JobStatus.FAILED)
        return records.RecoveryReport(requeued, failed)

    # -- segments of split jobs -------------------------------------------------------

    def _held(self, job_id: uuid.UUID, seq: int, worker_id: str) -> SegmentRecord | None:
        """The segment if worker_id holds it (caller holds the lock)."""
        segments = self._segments.get(job_id, [])
        if seq < 0 or seq >= len(segments):
            return None
        segment = segments[seq]
        if segment.status is SegmentStatus.RUNNING and segment.lease_owner == worker_id:
            return segment
        return None

    def _active(self, job_id: uuid.UUID) -> bool:
        job = self._jobs.get(job_id)
        return job is not None and job.status in ACTIVE_STATUSES

    def _put(self, segment: SegmentRecord) -> None:
        self._segments[segment.job_id][segment.seq] = segment

    def restart_progress(self, job_id: uuid.UUID) -> float:
        """The progress of a job going back to pending or claimed again (the lock held):
        0 for a job that runs from the start, its segments' for a split job."""
        segments = self._segments.get(job_id)
        return job_progress(segments) if segments else 0.0

    def add_segments(self, job_id: uuid.UUID, worker_id: str, spans: Sequence[SegmentSpan]) -> bool:
        """Split a running job held by worker_id into pending segments, once."""
        with self._lock:
            job = self._jobs.get(job_id)
            if (
                job is None
                or job.status is not JobStatus.RUNNING
                or job.worker_id != worker_id
                or self._segments.get(job_id)
                or not spans
            ):
                return False
            self._segments[job_id] = [
                SegmentRecord.pending(job_id, seq, span) for seq, span in enumerate(spans)
            ]
            return True

    def segments(self, job_id: uuid.UUID) -> list[SegmentRecord]:
        """The job's segments in order."""
        with self._lock:
            return list(self._segments.get(job_id, []))

    def has_pending_work(self) -> bool:
        """Whether a pending job, or a pending segment of a running job, waits."""
        with self._lock:
            return any(
                job.status is JobStatus.PENDING
                or (
                    job.status is JobStatus.RUNNING
                    and any(
                        segment.status is SegmentStatus.PENDING
                        for segment in self._segments.get(job.job_id, ())
                    )
                )
                for job in self._jobs.values()
            )

    def claim_segment(
        self, worker_id: str, lease_seconds: float, job_id: uuid.UUID | None = None
    ) -> SegmentRecord | None:
        """Claim the oldest running job's lowest pending segment, or None."""
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if job.status is JobStatus.RUNNING
                and job.job_id in self._segments
                and (job_id is None or job.job_id == job_id)
            ]
            jobs.sort(key=lambda job: (job.created_at, job.job_id))
            for job in jobs:
                for segment in self._segments[job.job_id]:
                    if segment.status is SegmentStatus.PENDING:
                        lease = self.clock() + timedelta(seconds=lease_seconds)
                        status, values = rules.claimed_segment(worker_id, lease)
                        claimed = dataclasses.replace(
                            segment, status=status, attempts=segment.attempts + 1, **values
                        )
                        self._put(claimed)
                        return claimed
            return None

    def holds_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Whether the segment is held by worker_id and its job not stopped (a read)."""
        with self._lock:
            return self._held(job_id, seq, worker_id) is not None and self._active(job_id)

    def _update_held_segment(
        self, job_id: uuid.UUID, seq: int, held_by: str, change: rules.SegmentChange
    ) -> bool:
        """Change a segment this worker holds; False if it does not."""
        with self._lock:
            segment = self._held(job_id, seq, held_by)
            if segment is None or (change.while_job_active and not self._active(job_id)):
                return False
            values = dict(change.values)
            if change.uncount_attempt:
                values["attempts"] = segment.attempts - 1
            if change.all_frames_done:
                values["frames_done"] = segment.frames
            self._put(dataclasses.replace(segment, status=change.status, **values))
            if not change.job_follows:
                return True
            job = self._jobs[job_id]  # active: pending or running
            progress = job_progress(self._segments[job_id])
            self._jobs[job_id] = dataclasses.replace(
                job, progress=progress, updated_at=self.clock()
            )
        self.changes.publish(job_id, job.status)
        return True

    def recover_expired_segments(self, max_attempts: int) -> SegmentRecovery:
        """Requeue running segments whose lease expired, or fail those out of attempts."""
        recovery = SegmentRecovery([], [])
        with self._lock:
            now = self.clock()
            for segments in self._segments.values():
                for segment in segments:
                    lease = segment.lease_expires_at
                    if segment.status is not SegmentStatus.RUNNING or lease is None or lease >= now:
                        continue
                    status, values = rules.expired_segment_outcome(segment.attempts, max_attempts)
                    self._put(dataclasses.replace(segment, status=status, **values))
                    recovery.of(status).append((segment.job_id, segment.seq))
        return recovery


def _copy(record: JobRecord) -> JobRecord:
    """A snapshot sharing nothing mutable with the stored record."""
    return dataclasses.replace(
        record,
        options=copy.deepcopy(record.options),
        result_summary=copy.deepcopy(record.result_summary),
    )


if TYPE_CHECKING:  # mypy checks here that the double keeps the whole protocol
    _conforms: JobStore = InMemoryJobStore()
