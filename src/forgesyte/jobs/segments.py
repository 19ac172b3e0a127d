"""Segments of a split job: the values and the `SegmentStore` operations of the job store.

A job whose selected frames reach the split size is cut at keyframes into segments
(rows of job_segments). Any worker may claim a pending segment of a running job; a
segment is leased like a job (claim, renew, expire, retry). The worker holding the job
waits for every segment, then merges their results in order and completes the job.

Both stores implement these operations (`SqlSegmentsMixin`, `InMemorySegmentsMixin`);
tests/jobs/test_segments_contract.py runs one test suite on each.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from forgesyte.jobs.models import SegmentStatus

__all__ = [
    "PROGRESS_CAP",
    "SegmentRecord",
    "SegmentRecovery",
    "SegmentSpan",
    "SegmentStatus",
    "SegmentStore",
    "job_progress",
]

PROGRESS_CAP = 99.0  # percent; 100 is written only when the job completes


@dataclass(frozen=True)
class SegmentSpan:
    """Where a segment lies: selected frames with first_frame <= frame_index < end_frame."""

    first_frame: int
    end_frame: int
    frames: int  # how many selected frames it holds


@dataclass(frozen=True)
class SegmentRecord:
    """An immutable snapshot of one segment of a job."""

    job_id: uuid.UUID
    seq: int
    first_frame: int
    end_frame: int
    frames: int
    status: SegmentStatus = SegmentStatus.PENDING
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0
    frames_done: int = 0
    error_message: str | None = None

    @property
    def span(self) -> SegmentSpan:
        """Where the segment lies."""
        return SegmentSpan(self.first_frame, self.end_frame, self.frames)

    @classmethod
    def pending(cls, job_id: uuid.UUID, seq: int, span: SegmentSpan) -> SegmentRecord:
        """A segment just written: pending, never claimed, nothing done (the defaults)."""
        return cls(job_id, seq, span.first_frame, span.end_frame, span.frames)


@dataclass(frozen=True)
class SegmentRecovery:
    """What a sweep of expired segment leases did: (job_id, seq) of each segment."""

    requeued: list[tuple[uuid.UUID, int]]
    failed: list[tuple[uuid.UUID, int]]


def job_progress(segments: Sequence[SegmentRecord]) -> float:
    """The job's percent done: frames done over all its segments, capped below 100."""
    planned = sum(segment.frames for segment in segments)
    done = sum(segment.frames_done for segment in segments)
    return round(min(PROGRESS_CAP, 100.0 * done / max(planned, 1)), 2)


class SegmentStore(Protocol):
    """The job store's segment operations.

    Every change to a running segment is conditional on the worker still holding it
    (status running, lease_owner matching), like a job's.
    """

    def add_segments(self, job_id: uuid.UUID, worker_id: str, spans: Sequence[SegmentSpan]) -> bool:
        """Split a running job held by worker_id into pending segments (seq 0, 1, ...).

        False (nothing written) when the job is not held by worker_id or already has
        segments: a job is split once.
        """
        ...

    def segments(self, job_id: uuid.UUID) -> list[SegmentRecord]:
        """The job's segments in order (empty for a job that was not split)."""
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
        """Record frames done, renew the lease, and set the running job's progress to the
        frames done over all its segments; False when the segment is not held."""
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
