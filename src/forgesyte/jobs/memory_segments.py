"""The segment operations of the in-memory job store, under its one lock."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from forgesyte.jobs.changes import JobChangeFeed
from forgesyte.jobs.models import JobStatus, SegmentStatus
from forgesyte.jobs.segments import SegmentRecord, SegmentRecovery, SegmentSpan, job_progress
from forgesyte.jobs.store import JobRecord, lost_worker_message

_JOB_ALIVE = (JobStatus.RUNNING, JobStatus.PENDING)


class InMemorySegmentsMixin:
    """The `SegmentStore` operations of `InMemoryJobStore` (which provides these attributes)."""

    _lock: threading.Lock
    _jobs: dict[uuid.UUID, JobRecord]
    _segments: dict[uuid.UUID, list[SegmentRecord]]
    _clock: Callable[[], datetime]
    _changes: JobChangeFeed

    def _held(self, job_id: uuid.UUID, seq: int, worker_id: str) -> SegmentRecord | None:
        """The segment if worker_id holds it (caller holds the lock)."""
        segments = self._segments.get(job_id, [])
        if seq < 0 or seq >= len(segments):
            return None
        segment = segments[seq]
        if segment.status is SegmentStatus.RUNNING and segment.lease_owner == worker_id:
            return segment
        return None

    def _alive(self, job_id: uuid.UUID) -> bool:
        job = self._jobs.get(job_id)
        return job is not None and job.status in _JOB_ALIVE

    def _put(self, segment: SegmentRecord) -> None:
        self._segments[segment.job_id][segment.seq] = segment

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
                        claimed = dataclasses.replace(
                            segment,
                            status=SegmentStatus.RUNNING,
                            lease_owner=worker_id,
                            lease_expires_at=self._clock() + timedelta(seconds=lease_seconds),
                            attempts=segment.attempts + 1,
                            frames_done=0,
                        )
                        self._put(claimed)
                        return claimed
            return None

    def heartbeat_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, lease_seconds: float
    ) -> bool:
        """Renew the lease on a segment; False when not held or its job stopped."""
        with self._lock:
            segment = self._held(job_id, seq, worker_id)
            if segment is None or not self._alive(job_id):
                return False
            lease = self._clock() + timedelta(seconds=lease_seconds)
            self._put(dataclasses.replace(segment, lease_expires_at=lease))
            return True

    def holds_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Whether the segment is held by worker_id and its job not stopped (a read)."""
        with self._lock:
            return self._held(job_id, seq, worker_id) is not None and self._alive(job_id)

    def set_segment_progress(
        self, job_id: uuid.UUID, seq: int, worker_id: str, frames_done: int, lease_seconds: float
    ) -> bool:
        """Record frames done and renew the lease; the job's progress follows (running,
        or pending again after its coordinator was lost)."""
        with self._lock:
            segment = self._held(job_id, seq, worker_id)
            if segment is None or not self._alive(job_id):
                return False
            now = self._clock()
            self._put(
                dataclasses.replace(
                    segment,
                    frames_done=frames_done,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                )
            )
            job = self._jobs[job_id]  # alive: pending or running
            progress = job_progress(self._segments[job_id])
            self._jobs[job_id] = dataclasses.replace(job, progress=progress, updated_at=now)
        self._changes.publish(job_id, job.status)
        return True

    def _end_segment(self, job_id: uuid.UUID, seq: int, worker_id: str, **changes: object) -> bool:
        with self._lock:
            segment = self._held(job_id, seq, worker_id)
            if segment is None:
                return False
            self._put(dataclasses.replace(segment, lease_expires_at=None, **changes))  # type: ignore[arg-type]
            return True

    def finish_segment(self, job_id: uuid.UUID, seq: int, worker_id: str) -> bool:
        """Mark a held segment done; False when not held or its job stopped."""
        with self._lock:
            segment = self._held(job_id, seq, worker_id)
            if segment is None or not self._alive(job_id):
                return False
            self._put(
                dataclasses.replace(
                    segment,
                    status=SegmentStatus.DONE,
                    frames_done=segment.frames,
                    lease_expires_at=None,
                )
            )
            return True

    def fail_segment(self, job_id: uuid.UUID, seq: int, worker_id: str, message: str) -> bool:
        """Mark a held segment failed with a message; False when not held."""
        return self._end_segment(
            job_id, seq, worker_id, status=SegmentStatus.FAILED, error_message=message
        )

    def release_segment(
        self, job_id: uuid.UUID, seq: int, worker_id: str, *, count_attempt: bool = False
    ) -> bool:
        """Hand a held segment back to pending; the attempt counts only if count_attempt."""
        with self._lock:
            segment = self._held(job_id, seq, worker_id)
            if segment is None:
                return False
            self._put(
                dataclasses.replace(
                    segment,
                    status=SegmentStatus.PENDING,
                    lease_owner=None,
                    lease_expires_at=None,
                    frames_done=0,
                    attempts=segment.attempts if count_attempt else segment.attempts - 1,
                )
            )
            return True

    def recover_expired_segments(self, max_attempts: int) -> SegmentRecovery:
        """Requeue running segments whose lease expired, or fail those out of attempts."""
        requeued: list[tuple[uuid.UUID, int]] = []
        failed: list[tuple[uuid.UUID, int]] = []
        with self._lock:
            now = self._clock()
            for segments in self._segments.values():
                for segment in segments:
                    if segment.status is not SegmentStatus.RUNNING:
                        continue
                    if segment.lease_expires_at is None or segment.lease_expires_at >= now:
                        continue
                    if segment.attempts >= max_attempts:
                        ended = dataclasses.replace(
                            segment,
                            status=SegmentStatus.FAILED,
                            error_message=lost_worker_message(segment.attempts, max_attempts),
                        )
                        failed.append((segment.job_id, segment.seq))
                    else:
                        ended = dataclasses.replace(
                            segment, status=SegmentStatus.PENDING, frames_done=0
                        )
                        requeued.append((segment.job_id, segment.seq))
                    self._put(dataclasses.replace(ended, lease_owner=None, lease_expires_at=None))
        return SegmentRecovery(requeued, failed)
