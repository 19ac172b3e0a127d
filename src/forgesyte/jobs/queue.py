"""The worker side of the job store: the FIFO queue of jobs and of split jobs' segments.

Workers name `JobQueue`; the lease keeper only its two renewals
(`forgesyte.workers.lease.LeasedJobs`). Every change to a running job or segment is
conditional on the worker still holding it (status running, its worker id on it): a
worker whose lease was taken away cannot overwrite what its successor does, and learns
so from a False answer. The state each change writes is decided once, in
`forgesyte.jobs.rules`; the stores supply the atomic updates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from forgesyte.jobs.records import JobRecord, RecoveryReport
from forgesyte.jobs.segments import SegmentRecord, SegmentRecovery, SegmentSpan
from forgesyte.search.values import IndexEntries


class JobReads(Protocol):
    """The reads of one job that the API, the workers and housekeeping all make."""

    def get(self, job_id: uuid.UUID) -> JobRecord | None:
        """The job with this id, or None."""
        ...

    def segments(self, job_id: uuid.UUID) -> list[SegmentRecord]:
        """The job's segments in order (empty for a job that was not split)."""
        ...


class JobQueue(JobReads, Protocol):
    """Claiming, holding and ending jobs and segments: what a worker does to the store."""

    # -- jobs ----------------------------------------------------------------------------

    def has_pending_work(self) -> bool:
        """Whether a pending job, or a pending segment of a running job, waits for a worker.

        One read: idle workers ask it on every poll and try the claims (writes, several
        times its cost) only when it says yes.
        """
        ...

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Claim the oldest pending job (by created_at) for this worker, or None if none.

        The job becomes running, held by worker_id until its lease expires, with one more
        attempt counted and progress back at 0 (a split job's: its segments'). Two claimers
        never get the same job.
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
        self,
        job_id: uuid.UUID,
        worker_id: str,
        output_path: str,
        summary: dict[str, Any],
        index: IndexEntries | None = None,
    ) -> bool:
        """Mark a job completed with its results path; False if the job was taken away.

        index: its timeline's text segments and object tracks, written to the search index
        in the completion's transaction (None: left to the backfill, `index_job`).
        """
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

    # -- segments of split jobs ----------------------------------------------------------

    def add_segments(self, job_id: uuid.UUID, worker_id: str, spans: Sequence[SegmentSpan]) -> bool:
        """Split a running job held by worker_id into pending segments (seq 0, 1, ...).

        False (nothing written) when the job is not held by worker_id or already has
        segments: a job is split once.
        """
        ...

    def claim_segment(
        self, worker_id: str, lease_seconds: float, job_id: uuid.UUID | None = None
    ) -> SegmentRecord | None:
        """Claim a pending segment of a running job (of job_id only, if given), or None.

        The oldest job's lowest pending segment first. It becomes running, held by
        worker_id until its lease expires, with one more attempt counted and frames_done 0.
        Two claimers never get the same segment.
        """
        ...

    def heartbeat_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, lease_seconds: float
    ) -> bool:
        """Renew the lease on a segment; False when it is no longer held (or its job
        was cancelled or failed)."""
        ...

    def holds_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Whether the segment is running, held by worker_id, and its job neither cancelled
        nor failed (a read, no write)."""
        ...

    def set_segment_progress(
        self, job_id: uuid.UUID, seq: int, worker_id: str, frames_done: int, lease_seconds: float
    ) -> bool:
        """Record frames done, renew the lease, and set the job's progress to the frames
        done over all its segments; False when the segment is not held."""
        ...

    def finish_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Mark a held segment done (its results are stored); False when not held or its
        job was cancelled or failed."""
        ...

    def fail_segment(self, job_id: uuid.UUID, seq: int, worker_id: str, message: str) -> bool:
        """Mark a held segment failed with a message; False when not held."""
        ...

    def release_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, *, count_attempt: bool = False
    ) -> bool:
        """Hand a held segment back to pending; the attempt counts only if count_attempt."""
        ...

    def recover_expired_segments(self, max_attempts: int) -> SegmentRecovery:
        """Return running segments whose lease expired to pending, or mark those out of
        attempts failed (their job then fails)."""
        ...
