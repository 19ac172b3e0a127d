"""Work on split jobs: analysing one segment, and coordinating a split job to its merge.

A worker that claims a job asks its child to plan the analysis; a video whose selected
frames reach the split size comes back as spans cut at keyframes (SegmentsPlanned)
instead of results. The claiming worker (the coordinator, holding the job's lease)
writes the segments, then analyses pending segments of its job like any idle worker
does; when none is left it waits for the others. Once every segment is done it
concatenates their results in frame order (byte-identical to an unsplit run, since each
line is encoded alone), computes the timeline once and completes the job.

A segment is leased like a job: a LeaseKeeper renews it and writes its frames done
(the job's progress follows, over all segments); a lost one is returned to pending by
the sweep and analysed again, alone. A cancel shows to every segment holder as its
segment no longer held. A coordinator that dies leaves the job's lease to expire: the
job goes back to the queue and its next claimer finds the segments (done ones stay
done) instead of splitting again.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from forgesyte.jobs.models import JobStatus, SegmentStatus
from forgesyte.jobs.segments import SegmentRecord, SegmentSpan
from forgesyte.jobs.store import JobRecord, JobStore
from forgesyte.results.merging import merge_segment_results
from forgesyte.results.storing import StagedUpload
from forgesyte.storage.base import StorageError, segment_results_key
from forgesyte.workers.lease import LeaseKeeper
from forgesyte.workers.protocol import (
    AnalysisDone,
    AnalysisFailed,
    AnalysisInterrupted,
    FailureReason,
    SegmentsPlanned,
)

if TYPE_CHECKING:
    from forgesyte.workers.worker import Worker

SEGMENT_WAIT_S = 0.25  # seconds between looks at a split job's segments while others work

log = logging.getLogger(__name__)


class SegmentLease:
    """The two lease writes of a LeaseKeeper, made on one segment instead of a job.

    Progress comes as a percent of the segment's frames and is stored as frames done.
    """

    def __init__(self, store: JobStore, segment: SegmentRecord) -> None:
        self.store = store
        self.seq = segment.seq
        self.frames = segment.frames

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew the segment's lease; False when it is no longer held."""
        return self.store.heartbeat_segment(job_id, self.seq, worker_id, lease_seconds)

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record the segment's frames done (from a percent) and renew its lease."""
        frames_done = int(self.frames * progress / 100.0)
        return self.store.set_segment_progress(
            job_id, self.seq, worker_id, frames_done, lease_seconds
        )


class SegmentWork:
    """A worker's part in split jobs; it uses the worker's store, storage, child and config."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    @property
    def store(self) -> JobStore:
        """The worker's job store."""
        return self.worker.store

    def claim_and_run(self, job_id: uuid.UUID | None = None) -> bool:
        """Claim a pending segment (of job_id only, if given) and analyse it; False if none."""
        segment = self.store.claim_segment(
            self.worker.worker_id, self.worker.config.lease_seconds, job_id
        )
        if segment is None:
            return False
        job = self.store.get(segment.job_id)
        if job is None:  # pragma: no cover - a running job is never deleted
            self.store.release_segment(segment.job_id, segment.seq, self.worker.worker_id)
            return True
        self.run_segment(job, segment)
        return True

    def run_segment(self, job: JobRecord, segment: SegmentRecord) -> bool:
        """Analyse one claimed segment and store its results; True when it is done."""
        worker = self.worker
        log.info(
            "job %s: segment %d (frames %d-%d) claimed by %s (attempt %d)",
            job.job_id,
            segment.seq,
            segment.first_frame,
            segment.end_frame - 1,
            worker.worker_id,
            segment.attempts,
        )
        with (
            LeaseKeeper(
                SegmentLease(self.store, segment),
                job.job_id,
                worker.worker_id,
                lease_seconds=worker.config.lease_seconds,
                progress_interval_s=worker.config.progress_interval_s,
                # a cancel of the job shows as the segment no longer held
                holds=lambda: self.store.holds_segment(job.job_id, segment.seq, worker.worker_id),
                check_interval_s=worker.hold_check_interval_s,
            ) as lease,
            tempfile.TemporaryDirectory(prefix="forgesyte-segment-") as scratch_dir,
        ):
            return self._run_leased(job, segment, lease, scratch_dir)

    def _run_leased(
        self, job: JobRecord, segment: SegmentRecord, lease: LeaseKeeper, scratch_dir: str
    ) -> bool:
        worker = self.worker
        held = (job.job_id, segment.seq, worker.worker_id)
        try:
            outcome = worker._analyse(
                job, lease, scratch_dir, frame_span=(segment.first_frame, segment.end_frame)
            )
        except FileNotFoundError:
            lease.stop()
            self.store.fail_segment(*held, "the uploaded video is missing from storage")
            return False
        except StorageError as exc:
            lease.stop()
            self.store.fail_segment(
                *held, f"the uploaded video could not be read from storage: {exc.reason}"
            )
            return False
        if isinstance(outcome, AnalysisInterrupted | SegmentsPlanned):
            lease.stop()
            self.store.release_segment(*held)
            return False
        if isinstance(outcome, AnalysisFailed):
            lease.stop()
            if outcome.detail:
                log.error("job %s: segment %d: %s", job.job_id, segment.seq, outcome.detail)
            if (
                outcome.reason is FailureReason.CHILD_START
                and segment.attempts < worker.config.max_attempts
            ):
                self.store.release_segment(*held, count_attempt=True)
            else:
                self.store.fail_segment(*held, outcome.message)
            return False
        return self._store_segment(job, segment, lease, outcome)

    def _store_segment(
        self, job: JobRecord, segment: SegmentRecord, lease: LeaseKeeper, done: AnalysisDone
    ) -> bool:
        key = segment_results_key(job.job_id, segment.seq)
        held = (job.job_id, segment.seq, self.worker.worker_id)
        with StagedUpload(self.worker.storage) as upload:
            try:
                upload.upload(Path(done.results_path), key)
                if lease.lost:
                    return False
                upload.commit()  # the key is the segment's: a retry writes the same bytes
            except StorageError as exc:
                lease.stop()
                self.store.fail_segment(*held, f"the results could not be stored: {exc.reason}")
                return False
        lease.stop()
        finished = self.store.finish_segment(*held)
        if finished:
            log.info("job %s: segment %d done", job.job_id, segment.seq)
        else:
            self._discard_if_ended(job.job_id)  # cancelled meanwhile: keep nothing
        return finished

    # -- the coordinator --------------------------------------------------------------

    def coordinate(self, job: JobRecord, lease: LeaseKeeper, planned: SegmentsPlanned) -> bool:
        """Run a split job held by this worker to its end; False if handed back or lost."""
        worker = self.worker
        spans = [SegmentSpan(*span) for span in planned.spans]
        if worker.store.add_segments(job.job_id, worker.worker_id, spans):
            log.info("job %s: split into %d segments", job.job_id, len(spans))
            if worker.wakeup is not None:
                worker.wakeup.notify()  # idle workers of this process: there is work
        while True:
            if lease.lost:
                log.warning("job %s: lost its lease while split; stopping", job.job_id)
                self._discard_if_ended(job.job_id)
                return False
            if worker._grace_expired():
                lease.stop()
                if self.store.release(job.job_id, worker.worker_id):
                    log.info("job %s: handed back to pending (segments kept)", job.job_id)
                return False
            worker._recover_expired()  # a lost segment of this job goes back to pending
            if self.claim_and_run(job.job_id):
                continue
            segments = self.store.segments(job.job_id)
            failed = [s for s in segments if s.status is SegmentStatus.FAILED]
            if failed:
                ended = worker._fail(job, lease, failed[0].error_message or "a segment failed")
                self._discard_if_ended(job.job_id)
                return ended
            if segments and all(s.status is SegmentStatus.DONE for s in segments):
                return self._merge(job, lease, planned, segments)
            lease.wait_lost(SEGMENT_WAIT_S)

    def _discard_if_ended(self, job_id: uuid.UUID) -> None:
        """Delete the segment objects of a job that was cancelled or failed (best effort;
        deleting the job removes any a late segment writes after this)."""
        current = self.store.get(job_id)
        if current is None or current.status not in (JobStatus.CANCELLED, JobStatus.FAILED):
            return  # taken over by another coordinator: its segments are still wanted
        for segment in self.store.segments(job_id):
            with contextlib.suppress(StorageError):
                self.worker.storage.delete(segment_results_key(job_id, segment.seq))

    def _merge(
        self,
        job: JobRecord,
        lease: LeaseKeeper,
        planned: SegmentsPlanned,
        segments: list[SegmentRecord],
    ) -> bool:
        """Concatenate the segments' results in order, build the timeline, complete the job."""
        storage = self.worker.storage
        keys = [segment_results_key(job.job_id, s.seq) for s in segments]
        with tempfile.TemporaryDirectory(prefix="forgesyte-merge-") as scratch:
            try:
                merged = merge_segment_results((storage.open(key) for key in keys), Path(scratch))
            except StorageError as exc:
                return self.worker._fail(
                    job, lease, f"the results of a segment could not be read: {exc.reason}"
                )
            done = AnalysisDone(
                str(merged.results_path), str(merged.timeline_path), planned.video, merged.frames
            )
            completed = self.worker._store_results(job, lease, done)
        if completed:
            for key in keys:
                with contextlib.suppress(StorageError):
                    storage.delete(key)
        return completed
