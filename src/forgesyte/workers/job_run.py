"""Running one analysis of a held job or segment, and writing its outcome to the store.

`JobRunner` is what a worker's whole jobs (`Worker`) and its part in split jobs
(`SegmentWork`) share, as peers: it keeps the lease of what it runs, runs the analysis
child on a local copy of the video (kept between runs on the same video), and turns every
outcome into the store write it calls for. A job or a segment is a `Held` here, which
knows its own store writes (fail, hand back), so the outcome handling is written once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.queue import JobQueue
from forgesyte.jobs.records import JobRecord
from forgesyte.jobs.segments import SegmentRecord
from forgesyte.results.storing import StagedUpload
from forgesyte.search.values import IndexEntries
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
class Held:
    """What a worker holds: a whole job, or one segment of a split job (`segment`).

    It knows its own store writes, so a job's and a segment's outcomes are handled by the
    same code; its lease keeper renews it through `heartbeat` and `set_progress` (a
    segment stores its progress, a percent of its frames, as frames done).
    """

    store: JobQueue
    job: JobRecord
    worker_id: str
    segment: SegmentRecord | None = None

    @property
    def label(self) -> str:
        """How log lines name it: 'job <id>' or 'job <id>: segment <seq>'."""
        part = "" if self.segment is None else f": segment {self.segment.seq}"
        return f"job {self.job.job_id}{part}"

    @property
    def attempts(self) -> int:
        """Its attempts so far, this one included."""
        return self.job.attempts if self.segment is None else self.segment.attempts

    @property
    def frame_span(self) -> tuple[int, int] | None:
        """The selected frames to analyse (first, end); None for the whole job."""
        return None if self.segment is None else (self.segment.first_frame, self.segment.end_frame)

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew its lease; False when it is no longer held."""
        if self.segment is None:
            return self.store.heartbeat(job_id, worker_id, lease_seconds)
        return self.store.heartbeat_segment(job_id, self.segment.seq, worker_id, lease_seconds)

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record its progress (percent) and renew its lease; False when not held."""
        if self.segment is None:
            return self.store.set_progress(job_id, worker_id, progress, lease_seconds)
        frames_done = int(self.segment.frames * progress / 100.0)
        return self.store.set_segment_progress(
            job_id, self.segment.seq, worker_id, frames_done, lease_seconds
        )

    def holds(self) -> bool:
        """Whether this worker still holds it (and, a segment, its job is not stopped)."""
        if self.segment is None:
            return self.store.holds(self.job.job_id, self.worker_id)
        return self.store.holds_segment(self.job.job_id, self.segment.seq, self.worker_id)

    def fail(self, message: str) -> bool:
        """Mark it failed (a segment's job then fails); False when it was not held."""
        if self.segment is None:
            return self.store.fail(self.job.job_id, self.worker_id, message)
        return self.store.fail_segment(self.job.job_id, self.segment.seq, self.worker_id, message)

    def release(self, *, count_attempt: bool = False) -> bool:
        """Hand it back to pending; False when it was not held."""
        if self.segment is None:
            return self.store.release(self.job.job_id, self.worker_id, count_attempt=count_attempt)
        return self.store.release_segment(
            self.job.job_id, self.segment.seq, self.worker_id, count_attempt=count_attempt
        )


@dataclass(frozen=True)
class KeptVideo:
    """A local copy of a job's video that a runner keeps between uses (`local_video`)."""

    key: str
    path: Path
    held: contextlib.ExitStack  # closing it gives the copy back to storage


@dataclass(eq=False)
class JobRunner:
    """One worker's analyses: its store, storage, analysis child, timings and identity.

    stop_event asks the worker to stop; what it runs may go on for shutdown_grace_s after
    that, then is handed back.
    """

    store: JobQueue
    storage: Storage
    executor: AnalysisExecutor
    config: WorkerConfig
    stop_event: threading.Event
    worker_id: str
    _stop_requested_at: float | None = field(default=None, init=False)
    _last_recovery: float = field(default=0.0, init=False)
    _kept_video: KeptVideo | None = field(default=None, init=False)

    def lease(self, held: Held) -> LeaseKeeper:
        """A keeper of held's lease, from now until its final store write (start it)."""
        return LeaseKeeper(
            held,
            held.job.job_id,
            self.worker_id,
            lease_seconds=self.config.lease_seconds,
            progress_interval_s=self.config.progress_interval_s,
            # a cancel shows as no longer held: seen within a second
            holds=held.holds,
            check_interval_s=HOLD_CHECK_INTERVAL_S,
        )

    def analyse(self, held: Held, lease: LeaseKeeper, scratch_dir: str) -> AnalysisOutcome:
        """Run the child on a local copy of the video; it writes its results in scratch_dir.

        A video storage cannot give (after retries) is an AnalysisFailed like the child's.
        """
        delay = STORAGE_RETRY_DELAY_S
        for attempt in range(STORAGE_READ_RETRIES):
            try:
                return self._run_child(held, str(self.local_video(held.job)), lease, scratch_dir)
            except FileNotFoundError:  # storage's ObjectNotFound is one: it stays missing
                message = "the uploaded video is missing from storage"
                return AnalysisFailed(FailureReason.STORAGE, message)
            except StorageError as exc:
                if attempt == STORAGE_READ_RETRIES - 1:
                    message = f"the uploaded video could not be read from storage: {exc.reason}"
                    detail = f"reading its video from storage failed: {exc}"
                    return AnalysisFailed(FailureReason.STORAGE, message, detail)
                _log(held, logging.WARNING, "storage read failed; retrying")
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def settle(
        self,
        held: Held,
        lease: LeaseKeeper,
        outcome: AnalysisFailed | AnalysisInterrupted | SegmentsPlanned,
    ) -> bool:
        """Write what an analysis without results calls for; True when it ended (failed).

        A failure fails it, but a child that could not start is infrastructure, not the
        video: it is handed back with the attempt counted, and fails at max_attempts. An
        interrupted analysis (or a plan that was not asked for) is handed back.
        """
        if isinstance(outcome, AnalysisFailed):
            if outcome.detail:
                _log(held, logging.ERROR, "%s", outcome.detail)
            if outcome.reason is not FailureReason.CHILD_START:
                return self.fail(held, lease, outcome.message)
            if held.attempts >= self.config.max_attempts:
                message = f"the analysis process could not start in {held.attempts} attempts"
                return self.fail(held, lease, f"{message}: {outcome.message}")
            _log(held, logging.ERROR, "%s; handing it back", outcome.message)
            lease.stop()
            held.release(count_attempt=True)
            self.stop_event.wait(self.config.poll_interval_s)
            return False
        lease.stop()
        if held.release():
            _log(held, logging.INFO, "handed back to pending")
        return False

    def fail(self, held: Held, lease: LeaseKeeper, message: str) -> bool:
        """Stop the lease and mark held failed; False when it was no longer held."""
        lease.stop()
        _log(held, logging.ERROR, "failed: %s", message)
        return held.fail(message)

    def store_results(
        self, held: Held, lease: LeaseKeeper, files: Mapping[str, str]
    ) -> list[str] | bool:
        """Upload local files (storage key -> path) and commit them together: the keys.

        Nothing is readable before the commit, and nothing is committed once the lease is
        lost (then False). A storage error fails held: the answer of that write.
        """
        with StagedUpload(self.storage) as upload:
            try:
                for key, path in files.items():
                    upload.upload(Path(path), key)
                if lease.lost:
                    _log(held, logging.WARNING, "lost its lease before storing results")
                    return False
                return upload.commit()
            except StorageError as exc:
                _log(held, logging.ERROR, "storing its results failed: %s", exc)
                return self.fail(held, lease, f"the results could not be stored: {exc.reason}")

    def complete(self, held: Held, lease: LeaseKeeper, done: AnalysisDone) -> bool:
        """Store a whole job's results and timeline, then complete it; False if it was lost.

        The objects are removed again if the job was taken away before it completed.
        """
        job_id = held.job.job_id
        key = results_key(job_id)
        files = {key: done.results_path, timeline_key(job_id): done.timeline_path}
        committed = self.store_results(held, lease, files)
        if isinstance(committed, bool):
            return committed
        lease.stop()
        index = search_entries(held, done.timeline_path)
        if not self.store.complete(job_id, self.worker_id, key, done.summary(), index):
            log.warning("job %s: lost its lease before completing; results discarded", job_id)
            current = self.store.get(job_id)
            if current is None or current.status is not JobStatus.COMPLETED:
                for stored in committed:
                    with contextlib.suppress(StorageError):
                        self.storage.delete(stored)
            return False
        log.info("job %s: completed", job_id)
        return True

    def grace_expired(self) -> bool:
        """Whether a stop was asked for more than shutdown_grace_s ago."""
        if not self.stop_event.is_set():
            return False
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        return time.monotonic() - self._stop_requested_at > self.config.shutdown_grace_s

    def recover_expired(self) -> None:
        """Return expired leases (jobs and segments) to the queue, at most every
        RECOVERY_INTERVAL_S: every worker sweeps between its analyses."""
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
        self, held: Held, video_path: str, lease: LeaseKeeper, scratch_dir: str
    ) -> AnalysisOutcome:
        job = held.job
        segment_frames = self.config.segment_frames if held.frame_span is None else None
        if held.frame_span is None and (existing := self.store.segments(job.job_id)):
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
            frame_span=held.frame_span,
        )

        def keep_going() -> bool:
            if lease.lost:
                _log(held, logging.WARNING, "lease lost; stopping its analysis")
                return False
            return not self.grace_expired()

        if not keep_going():
            return AnalysisInterrupted()
        return self.executor.run(request, on_progress=lease.report_progress, on_tick=keep_going)


def search_entries(held: Held, timeline_path: str) -> IndexEntries | None:
    """What the search index keeps of the job's timeline (the local file just stored), to
    write with its completion; None when it cannot be read (the backfill indexes it)."""
    try:
        return IndexEntries.from_timeline(json.loads(Path(timeline_path).read_bytes()))
    except (OSError, ValueError) as exc:
        _log(held, logging.WARNING, "its timeline could not be read for search: %s", exc)
        return None


def _log(held: Held, level: int, text: str, *args: object) -> None:
    """Log a line about held, which names it first, with its job's id as the line's job_id."""
    log.log(level, f"%s: {text}", held.label, *args, extra={"job_id": held.job.job_id})
