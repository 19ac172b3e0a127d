"""Segments of a split job: the values the queue's segment operations take and give.

A job whose selected frames reach the split size is cut at keyframes into segments
(rows of job_segments). Any worker may claim a pending segment of a running job; a
segment is leased like a job (claim, renew, expire, retry). The worker holding the job
waits for every segment, then merges their results in order and completes the job.

The operations are the segment half of `forgesyte.jobs.queue.JobQueue`, their state changes
are in `forgesyte.jobs.rules`; tests/jobs/test_segments_contract.py runs on each store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from forgesyte.jobs.models import PROGRESS_CAP, SegmentStatus


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

    def of(self, status: SegmentStatus) -> list[tuple[uuid.UUID, int]]:
        """Where a segment the sweep left in `status` is listed."""
        return self.failed if status is SegmentStatus.FAILED else self.requeued


def job_progress(segments: Sequence[SegmentRecord]) -> float:
    """The job's percent done: frames done over all its segments, capped below 100."""
    planned = sum(segment.frames for segment in segments)
    done = sum(segment.frames_done for segment in segments)
    return round(min(PROGRESS_CAP, 100.0 * done / max(planned, 1)), 2)
