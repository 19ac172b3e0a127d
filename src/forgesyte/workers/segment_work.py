"""Work on split jobs: analysing one segment, and coordinating a split job to its merge.

A worker that claims a job asks its child to plan the analysis; a video whose selected
frames reach the split size comes back as spans cut at keyframes (SegmentsPlanned)
instead of results, and so does a shorter one cut at any frame for the workers of its
process that hold nothing (`JobRunner`'s split_parts). The claiming worker (the
coordinator, holding the job's lease) writes the segments, then analyses pending segments
of its job like any idle worker does; when none is left it waits for the others. Once
every segment is done it concatenates their results in frame order (byte-identical to an
unsplit run, since each line is encoded alone), computes the timeline once and completes
the job.

A job that asked for its shots (detect_shots) has them found once, on the whole video
(shots need every frame, across the segments' edges): by the coordinator's own child,
first, while other workers take the segments (`AnalysisRequest.shots_only`).

A segment is leased like a job: a LeaseKeeper renews it and writes its frames done
(the job's progress follows, over all segments); a lost one is returned to pending by
the sweep and analysed again, alone. A cancel shows to every segment holder as its
segment no longer held. A coordinator that dies leaves the job's lease to expire: the
job goes back to the queue and its next claimer finds the segments (done ones stay
done) instead of splitting again.

Storage or the database away is waited out as for whole jobs (the runner's `wait_out` and
`record`): a segment's results wait in place to be stored, the coordinator keeps its lease
while it waits to look at its segments or to read their results for the merge.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import uuid
from pathlib import Path

from forgesyte.faults import Dependency
from forgesyte.jobs.changes import JobWakeup
from forgesyte.jobs.models import JobStatus, SegmentStatus
from forgesyte.jobs.options import JobOptions
from forgesyte.jobs.segments import SegmentRecord, SegmentSpan
from forgesyte.results.merging import merge_segment_results
from forgesyte.storage.base import StorageError, segment_results_key
from forgesyte.video.shots import Shot
from forgesyte.workers.job_run import Held, JobRunner
from forgesyte.workers.lease import LeaseKeeper
from forgesyte.workers.outages import Outlasted, WaitEnded
from forgesyte.workers.protocol import AnalysisDone, SegmentsPlanned

SEGMENT_WAIT_S = 0.25  # seconds between looks at a split job's segments while others work

log = logging.getLogger(__name__)


class SegmentWork:
    """A worker's part in split jobs, beside its whole jobs: both run through its runner.

    wakeup (this process's idle workers) is told when a job is split: there is work.
    """

    def __init__(self, runner: JobRunner, wakeup: JobWakeup | None = None) -> None:
        self.runner = runner
        self.wakeup = wakeup

    def claim_and_run(self, job_id: uuid.UUID | None = None) -> bool:
        """Claim a pending segment (of job_id only, if given) and analyse it; False if none."""
        runner = self.runner
        store, worker_id = runner.store, runner.worker_id
        segment = store.claim_segment(worker_id, runner.config.lease_seconds, job_id)
        if segment is None:
            return False
        job = store.get(segment.job_id)
        if job is None:  # pragma: no cover - a running job is never deleted
            store.release_segment(segment.job_id, segment.seq, worker_id)
            return True
        self._run(Held(store, job, worker_id, segment), segment)
        return True

    def _run(self, held: Held, segment: SegmentRecord) -> None:
        """Analyse one claimed segment and store its results (or fail or hand it back)."""
        log.info(
            "job %s: segment %d (frames %d-%d) claimed by %s (attempt %d)",
            held.job.job_id,
            segment.seq,
            segment.first_frame,
            segment.end_frame - 1,
            held.worker_id,
            segment.attempts,
        )
        with (
            self.runner.holding(),
            self.runner.lease(held) as lease,
            tempfile.TemporaryDirectory(prefix="forgesyte-segment-") as scratch_dir,
        ):
            outcome = self.runner.analyse(held, lease, scratch_dir)
            if isinstance(outcome, AnalysisDone):
                self._store_segment(held, segment.seq, lease, outcome)
            else:  # a plan too: a segment is never split again
                self.runner.settle(held, lease, outcome)

    def _store_segment(self, held: Held, seq: int, lease: LeaseKeeper, done: AnalysisDone) -> None:
        job_id = held.job.job_id
        # the key is the segment's: a retry writes the same bytes
        key = segment_results_key(job_id, seq)
        if isinstance(self.runner.store_results(held, lease, {key: done.results_path}), bool):
            return
        lease.stop()
        finished = self.runner.record(
            held,
            "recording it done",
            lambda: held.store.finish_segment(job_id, seq, held.worker_id),
        )
        if finished:
            log.info("job %s: segment %d done", job_id, seq)
        elif finished is False:  # cancelled meanwhile, or done by the write whose answer
            self._discard_if_ended(held)  # was lost: keep nothing only if it ended

    # -- the coordinator --------------------------------------------------------------

    def coordinate(self, held: Held, lease: LeaseKeeper, planned: SegmentsPlanned) -> bool:
        """Run a split job held by this worker to its end; False if handed back or lost."""
        runner, job = self.runner, held.job
        spans = [SegmentSpan(*span) for span in planned.spans]  # none: split already
        added = runner.record(
            held,
            "writing its segments",
            lambda: held.store.add_segments(job.job_id, held.worker_id, spans),
        )
        if added:
            log.info("job %s: split into %d segments", job.job_id, len(spans))
            if self.wakeup is not None:
                self.wakeup.notify()  # idle workers of this process: there is work
        shots: list[Shot] = []
        if JobOptions.from_stored(job.options).detect_shots:
            found = self._find_shots(held, lease)
            if isinstance(found, bool):
                return found
            shots = found
        while True:
            if lease.lost:
                log.warning("job %s: lost its lease while split; stopping", job.job_id)
                self._discard_if_ended(held)
                return False
            if runner.grace_expired():
                runner.hand_back(held, lease)  # its segments are kept
                return False
            try:
                segments = runner.wait_out(
                    held,
                    lease,
                    lambda: self._run_or_look(job.job_id),
                    uses=Dependency.DATABASE,
                    what="following its segments",
                )
            except WaitEnded:  # the database stayed away: its lease runs out
                lease.stop()
                return False
            if segments is None:  # it analysed one of them
                continue
            failed = [s for s in segments if s.status is SegmentStatus.FAILED]
            if failed:
                ended = runner.fail(held, lease, failed[0].error_message or "a segment failed")
                self._discard_if_ended(held)
                return ended
            if segments and all(s.status is SegmentStatus.DONE for s in segments):
                return self._merge(held, lease, planned, segments, shots)
            lease.wait_lost(SEGMENT_WAIT_S)

    def _find_shots(self, held: Held, lease: LeaseKeeper) -> list[Shot] | bool:
        """The whole video's shots, found by this worker's child; when the shot pass
        ends otherwise, what its store write answered (True: the job failed; False: it
        was handed back or lost)."""
        with tempfile.TemporaryDirectory(prefix="forgesyte-shots-") as scratch_dir:
            outcome = self.runner.analyse(held, lease, scratch_dir, shots_only=True)
            if not isinstance(outcome, AnalysisDone):
                ended = self.runner.settle(held, lease, outcome)
                self._discard_if_ended(held)
                return ended
            timeline = json.loads(Path(outcome.timeline_path).read_bytes())
        log.info("job %s: %d shots found", held.job.job_id, len(timeline["shots"]))
        return [Shot(**shot) for shot in timeline["shots"]]

    def _run_or_look(self, job_id: uuid.UUID) -> list[SegmentRecord] | None:
        """Analyse a pending segment of the job (then None), or else its segments as they
        stand; a lost segment of it goes back to pending first."""
        self.runner.recover_expired()
        if self.claim_and_run(job_id):
            return None
        return self.runner.store.segments(job_id)

    def _discard_if_ended(self, held: Held) -> None:
        """Delete the segment objects of a job that was cancelled or failed (best effort;
        deleting the job removes any a late segment writes after this)."""
        store, job_id = self.runner.store, held.job.job_id
        current = self.runner.record(held, "reading its state", lambda: store.get(job_id))
        if current is None or current.status not in (JobStatus.CANCELLED, JobStatus.FAILED):
            return  # taken over by another coordinator: its segments are still wanted
        segments = self.runner.record(held, "reading its segments", lambda: store.segments(job_id))
        for segment in segments or []:
            with contextlib.suppress(StorageError):
                self.runner.storage.delete(segment_results_key(job_id, segment.seq))

    def _merge(
        self,
        held: Held,
        lease: LeaseKeeper,
        planned: SegmentsPlanned,
        segments: list[SegmentRecord],
        shots: list[Shot],
    ) -> bool:
        """Concatenate the segments' results in order, build the timeline (with the
        shots), complete the job."""
        runner = self.runner
        storage, job_id = runner.storage, held.job.job_id
        keys = [segment_results_key(job_id, s.seq) for s in segments]
        frame_wh = (int(planned.video["width"]), int(planned.video["height"]))
        unread = "the results of a segment could not be read"
        with tempfile.TemporaryDirectory(prefix="forgesyte-merge-") as scratch:
            try:
                merged = runner.wait_out(
                    held,
                    lease,
                    lambda: merge_segment_results(
                        (storage.open(k) for k in keys), Path(scratch), frame_wh, shots
                    ),
                    uses=Dependency.STORAGE,
                    what="reading its segments' results",
                )
            except StorageError as exc:
                return runner.fail(held, lease, f"{unread}: {exc.reason}")
            except Outlasted as ended:
                return runner.fail(
                    held, lease, f"{unread}: {ended.reason}; {runner.outlasted(ended)}"
                )
            except WaitEnded:  # its lease was lost, or the shutdown grace is over
                if not lease.lost:
                    runner.hand_back(held, lease)
                return False
            done = AnalysisDone(
                str(merged.results_path), str(merged.timeline_path), planned.video, merged.frames
            )
            completed = runner.complete(held, lease, done)
        if completed:
            for key in keys:
                with contextlib.suppress(StorageError):
                    storage.delete(key)
        return completed
