"""The worker loop: poll, claim, run, repeat until asked to stop.

Idle workers re-try their claim every `poll_interval_s`. Inside `forgesyte serve` the API
and the workers share a process and a job store, whose change listeners include a
`JobWakeup`: idle workers wake the moment a job is enqueued, instead of at the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

from forgesyte.jobs.changes import JobWakeup
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord, JobStore
from forgesyte.results.storing import StagedUpload
from forgesyte.settings import Settings
from forgesyte.storage.base import Storage, StorageError, results_key, timeline_key
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.lease import LeaseKeeper
from forgesyte.workers.protocol import (
    AnalysisDone,
    AnalysisFailed,
    AnalysisInterrupted,
    AnalysisOutcome,
    AnalysisRequest,
    FailureReason,
    SegmentsPlanned,
)
from forgesyte.workers.segment_work import SegmentWork

STORAGE_READ_RETRIES = 3
STORAGE_RETRY_DELAY_S = 0.5  # seconds, doubled on each retry
RECOVERY_INTERVAL_S = 2.0  # seconds between sweeps of expired leases
HOLD_CHECK_INTERVAL_S = 1.0  # seconds between checks that a running job was not cancelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's timings and limits: the Settings fields of the same names."""

    lease_seconds: float
    max_attempts: int
    poll_interval_s: float
    progress_interval_s: float
    shutdown_grace_s: float
    segment_frames: int | None = None  # split jobs of at least ~1.5x this many frames

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """The worker's part of the settings (their defaults live in Settings only)."""
        values = {each.name: getattr(settings, each.name) for each in fields(cls)}
        values["segment_frames"] = settings.segment_frames or None  # 0: never split
        return cls(**values)


@dataclass(frozen=True)
class KeptVideo:
    """A local copy of a job's video that a worker keeps between uses (`Worker.local_video`)."""

    key: str
    path: Path
    held: contextlib.ExitStack  # closing it gives the copy back to storage


@dataclass(eq=False)
class Worker:
    """Claims jobs from the store and runs each in its executor's child process.

    stop_event asks the worker to stop claiming; the running job may finish within
    shutdown_grace_s of that, else it is handed back to pending. An idle worker waits
    poll_interval_s between claims, or less when `wakeup` (a listener of the store) says a
    job was enqueued; the workers sharing a `wakeup` look for work once per
    poll_interval_s between them.
    """

    store: JobStore
    storage: Storage
    executor: AnalysisExecutor
    config: WorkerConfig
    stop_event: threading.Event
    worker_id: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")
    wakeup: JobWakeup | None = None
    hold_check_interval_s: float = field(default=HOLD_CHECK_INTERVAL_S, init=False)
    _stop_requested_at: float | None = field(default=None, init=False)
    _last_recovery: float = field(default=0.0, init=False)
    _kept_video: KeptVideo | None = field(default=None, init=False)
    segment_work: SegmentWork = field(init=False)

    def __post_init__(self) -> None:
        self.segment_work = SegmentWork(self)

    def run(self, *, burst: bool = False) -> int:
        """Process jobs until stopped (or, in burst mode, until the queue is empty).

        Returns the number of jobs this worker finished (completed or failed).
        """
        finished = 0
        try:
            started = self.executor.start()  # warm: models load before the first claim
            if isinstance(started, AnalysisFailed):
                log.warning(
                    "%s: %s; trying again for the next job", self.worker_id, started.message
                )
            while not self.stop_event.is_set():
                self._recover_expired()
                seen = self.wakeup.generation() if self.wakeup is not None else 0
                looked_lately = self._looked_lately(seen)
                if looked_lately is not None:  # another worker here just looked: no work
                    if burst:
                        break
                    self._idle(seen, looked_lately)
                    continue
                # one read per idle poll; the claims are writes, several times its cost
                job = None
                if self.store.has_pending_work():
                    if self.segment_work.claim_and_run():  # a split job's segments first
                        continue
                    job = self.store.claim_next(self.worker_id, self.config.lease_seconds)
                if job is None:
                    if self.wakeup is not None:
                        self.wakeup.found_nothing(seen)
                    if burst:
                        break
                    self._idle(seen, self.config.poll_interval_s)
                    continue
                if self.process(job):
                    finished += 1
        finally:
            self.release_video()
            self.executor.stop()
        return finished

    def _looked_lately(self, seen: int) -> float | None:
        """Seconds until this process's next look for work, when a worker of it found
        none less than a poll interval ago (and nothing was notified since); else None.

        So the idle workers of one process look once per poll interval between them,
        not once each, and a job from another process still waits at most one interval.
        """
        if self.wakeup is None:
            return None
        since = self.wakeup.since_nothing_found(seen)
        if since is None or since >= self.config.poll_interval_s:
            return None
        return self.config.poll_interval_s - since

    def _idle(self, seen: int, timeout_s: float) -> None:
        """Wait for the next claim: timeout_s, cut short by a wake-up or a stop."""
        self.release_video()  # idle: keep no copy of a video
        if self.wakeup is None:
            self.stop_event.wait(timeout_s)
        else:
            self.wakeup.wait(seen, timeout_s)

    def _recover_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_recovery < RECOVERY_INTERVAL_S:
            return
        self._last_recovery = now
        report = self.store.recover_expired(self.config.max_attempts)
        for job_id in report.requeued:
            log.warning("job %s: its worker was lost; back to pending", job_id)
        for job_id in report.failed:
            log.error("job %s: its worker was lost too many times; failed", job_id)
        segments = self.store.recover_expired_segments(self.config.max_attempts)
        for job_id, seq in segments.requeued:
            log.warning("job %s: segment %d lost its worker; back to pending", job_id, seq)
        for job_id, seq in segments.failed:
            log.error("job %s: segment %d lost its worker too many times; failed", job_id, seq)

    def process(self, job: JobRecord) -> bool:
        """Run one claimed job to its end; False if it was handed back or taken away.

        A LeaseKeeper holds the job's lease from here until the job's final store call,
        whatever the worker is doing meanwhile.
        """
        log.info("job %s: claimed by %s (attempt %d)", job.job_id, self.worker_id, job.attempts)
        with (
            LeaseKeeper(
                self.store,
                job.job_id,
                self.worker_id,
                lease_seconds=self.config.lease_seconds,
                progress_interval_s=self.config.progress_interval_s,
                # a cancel shows as the job no longer held: seen within a second
                holds=lambda: self.store.holds(job.job_id, self.worker_id),
                check_interval_s=HOLD_CHECK_INTERVAL_S,
            ) as lease,
            tempfile.TemporaryDirectory(prefix="forgesyte-results-") as scratch_dir,
        ):
            return self._process_leased(job, lease, scratch_dir)

    def _process_leased(self, job: JobRecord, lease: LeaseKeeper, scratch_dir: str) -> bool:
        try:
            outcome = self._analyse(job, lease, scratch_dir)
        except FileNotFoundError:  # storage's ObjectNotFound is one; before StorageError
            return self._fail(job, lease, "the uploaded video is missing from storage")
        except StorageError as exc:
            log.error("job %s: reading its video from storage failed: %s", job.job_id, exc)
            return self._fail(
                job, lease, f"the uploaded video could not be read from storage: {exc.reason}"
            )
        if isinstance(outcome, AnalysisInterrupted):
            lease.stop()
            if self.store.release(job.job_id, self.worker_id):
                log.info("job %s: handed back to pending", job.job_id)
            return False
        if isinstance(outcome, SegmentsPlanned):
            return self.segment_work.coordinate(job, lease, outcome)
        if isinstance(outcome, AnalysisFailed):
            if outcome.detail:
                log.error("job %s: %s", job.job_id, outcome.detail)
            if outcome.reason is FailureReason.CHILD_START:
                return self._child_did_not_start(job, lease, outcome.message)
            return self._fail(job, lease, outcome.message)
        return self._store_results(job, lease, outcome)

    def _store_results(self, job: JobRecord, lease: LeaseKeeper, done: AnalysisDone) -> bool:
        """Upload the child's results and timeline files, commit them, then complete the job.

        Nothing is readable before the job completes: the objects become visible only on
        commit, and are removed again if the job was taken away meanwhile.
        """
        key = results_key(job.job_id)
        with StagedUpload(self.storage) as upload:
            try:
                upload.upload(Path(done.results_path), key)
                upload.upload(Path(done.timeline_path), timeline_key(job.job_id))
                if lease.lost:
                    log.warning("job %s: lost its lease before storing results", job.job_id)
                    return False
                committed = upload.commit()
            except StorageError as exc:
                log.error("job %s: storing its results failed: %s", job.job_id, exc)
                return self._fail(job, lease, f"the results could not be stored: {exc.reason}")
        lease.stop()
        if not self.store.complete(job.job_id, self.worker_id, key, done.summary()):
            log.warning("job %s: lost its lease before completing; results discarded", job.job_id)
            current = self.store.get(job.job_id)
            if current is None or current.status is not JobStatus.COMPLETED:
                for stored in committed:
                    with contextlib.suppress(StorageError):
                        self.storage.delete(stored)
            return False
        log.info("job %s: completed", job.job_id)
        return True

    def _child_did_not_start(self, job: JobRecord, lease: LeaseKeeper, message: str) -> bool:
        """Infrastructure, not the video: hand the job back, counted; fail it at the limit."""
        if job.attempts >= self.config.max_attempts:
            return self._fail(
                job,
                lease,
                f"the analysis process could not start in {job.attempts} attempts: {message}",
            )
        log.error("job %s: %s; handing it back", job.job_id, message)
        lease.stop()
        self.store.release(job.job_id, self.worker_id, count_attempt=True)
        self.stop_event.wait(self.config.poll_interval_s)
        return False

    def _fail(self, job: JobRecord, lease: LeaseKeeper, message: str) -> bool:
        lease.stop()
        log.error("job %s: failed: %s", job.job_id, message)
        return self.store.fail(job.job_id, self.worker_id, message)

    def _analyse(
        self,
        job: JobRecord,
        lease: LeaseKeeper,
        scratch_dir: str,
        *,
        frame_span: tuple[int, int] | None = None,
    ) -> AnalysisOutcome:
        """Run the child on a local copy of the video; it writes its results in scratch_dir.

        With frame_span, only that segment of the job's frames is analysed.
        """
        delay = STORAGE_RETRY_DELAY_S
        for attempt in range(STORAGE_READ_RETRIES):
            try:
                video_path = self.local_video(job)
                return self._run_child(
                    job, str(video_path), lease, scratch_dir, frame_span=frame_span
                )
            except FileNotFoundError:
                raise  # a missing video stays missing: no retry
            except StorageError:
                if attempt == STORAGE_READ_RETRIES - 1:
                    raise
                log.warning("job %s: storage read failed; retrying", job.job_id)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def local_video(self, job: JobRecord) -> Path:
        """A local copy of the job's video, kept until this worker needs another video,
        goes idle or stops (`release_video`).

        So a worker that runs a split job's segments one after another (the coordinator
        and its segments, or several segments) downloads the video from S3 once, not
        once per segment; local storage hands out its own file.
        """
        kept = self._kept_video
        if kept is not None and kept.key == job.input_path:
            return kept.path
        self.release_video()  # one copy per worker at a time
        with contextlib.ExitStack() as held:
            path = held.enter_context(self.storage.local_copy(job.input_path))
            self._kept_video = KeptVideo(job.input_path, path, held.pop_all())
        return path

    def release_video(self) -> None:
        """Give back the kept copy of a video, if any."""
        kept, self._kept_video = self._kept_video, None
        if kept is not None:
            kept.held.close()

    def _run_child(
        self,
        job: JobRecord,
        video_path: str,
        lease: LeaseKeeper,
        scratch_dir: str,
        *,
        frame_span: tuple[int, int] | None = None,
    ) -> AnalysisOutcome:
        segment_frames = self.config.segment_frames if frame_span is None else None
        if frame_span is None and (existing := self.store.segments(job.job_id)):
            # split already, by a coordinator that was lost: go on with its segments (a
            # plan at their smallest size splits for sure; only its video metadata is used)
            segment_frames = min(segment.frames for segment in existing)
        request = AnalysisRequest(
            job.pipeline_id,
            video_path,
            dict(job.options),
            scratch_dir,
            # a whole job may come back as segments; a segment is never split again
            segment_frames=segment_frames,
            frame_span=frame_span,
        )

        def keep_going() -> bool:
            if lease.lost:
                log.warning("job %s: lease lost; stopping its analysis", job.job_id)
                return False
            return not self._grace_expired()

        if not keep_going():
            return AnalysisInterrupted()
        return self.executor.run(request, on_progress=lease.report_progress, on_tick=keep_going)

    def _grace_expired(self) -> bool:
        if not self.stop_event.is_set():
            return False
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        return time.monotonic() - self._stop_requested_at > self.config.shutdown_grace_s
