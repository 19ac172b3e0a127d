"""Running one analysis of a held job or segment, and writing its outcome to the store.

`JobRunner` is what a worker's whole jobs (`Worker`) and its part in split jobs
(`SegmentWork`) share, as peers: it keeps the lease of what it runs, runs the analysis
child on a local copy of the video (kept between runs on the same video), and turns every
outcome into the store write it calls for. A job or a segment is a `Held` here, which
knows its own store writes (fail, hand back), so the outcome handling is written once.

Storage or the database away is waited out, not turned into a failed job (outages.py):
reading the video is handed back after a while, storing results waits in place under the
kept lease, and the store writes that end a job or a segment (`record`) are tried until
the database answers. A job fails for a fault only once it has lasted longer than the
outage tolerance.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from forgesyte.faults import Dependency
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.queue import JobQueue
from forgesyte.jobs.records import JobRecord
from forgesyte.jobs.segments import SegmentRecord
from forgesyte.results.storing import StagedUpload
from forgesyte.search.values import IndexEntries
from forgesyte.settings import Settings
from forgesyte.storage.base import (
    Storage,
    StorageError,
    frame_tracks_key,
    playable_key,
    results_key,
    thumbnails_key,
    timeline_key,
)
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.lease import LeaseKeeper
from forgesyte.workers.outages import OutageWaits, Outlasted, StepOverdue, WaitEnded
from forgesyte.workers.protocol import (
    AnalysisDone,
    AnalysisFailed,
    AnalysisInterrupted,
    AnalysisOutcome,
    AnalysisRequest,
    FailureReason,
    MediaDone,
    MediaRequest,
    SegmentsPlanned,
)
from forgesyte.workers.shared_cores import SharedCores

T = TypeVar("T")

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
    outage_tolerance_s: float
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
    that, then is handed back. cores: the cores and workers of its process, whose free
    workers a job too short to cut at keyframes is cut for (None: no such cut).
    """

    store: JobQueue
    storage: Storage
    executor: AnalysisExecutor
    config: WorkerConfig
    stop_event: threading.Event
    worker_id: str
    cores: SharedCores | None = None
    _stop_requested_at: float | None = field(default=None, init=False)
    _last_recovery: float = field(default=0.0, init=False)
    _kept_video: KeptVideo | None = field(default=None, init=False)
    outages: OutageWaits = field(init=False)

    def __post_init__(self) -> None:
        self.outages = OutageWaits(self.config.outage_tolerance_s)

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

    def analyse(
        self, held: Held, lease: LeaseKeeper, scratch_dir: str, *, shots_only: bool = False
    ) -> AnalysisOutcome:
        """Run the child on a local copy of the video; it writes its results in scratch_dir.

        shots_only: find the whole video's shots, analyse nothing (a split job's
        coordinator). Storage away is waited out; a video still unread after the step
        limit is handed back (AnalysisInterrupted: its attempt not counted). A video
        storage cannot give (missing, a permanent fault, a fault past the outage
        tolerance) is an AnalysisFailed like the child's.
        """
        try:
            video = self.wait_out(
                held,
                lease,
                lambda: self.local_video(held.job),
                uses=Dependency.STORAGE,
                what="reading its video",
                hand_back=True,
            )
            request = self.wait_out(
                held,
                lease,
                lambda: self._request(held, str(video), scratch_dir, shots_only),
                uses=Dependency.DATABASE,
                what="reading its segments",
            )
        except FileNotFoundError:  # storage's ObjectNotFound is one: it stays missing
            message = "the uploaded video is missing from storage"
            return AnalysisFailed(FailureReason.STORAGE, message)
        except StorageError as exc:  # a permanent fault
            message = f"the uploaded video could not be read from storage: {exc.reason}"
            detail = f"reading its video from storage failed: {exc}"
            return AnalysisFailed(FailureReason.STORAGE, message, detail)
        except Outlasted as ended:
            if ended.dependency is not Dependency.STORAGE:
                return AnalysisInterrupted()  # the database is away: nothing can be written
            message = f"the uploaded video could not be read from storage: {ended.reason}"
            return AnalysisFailed(FailureReason.STORAGE, f"{message}; {self.outlasted(ended)}")
        except StepOverdue as ended:
            _log(held, logging.WARNING, "%s unreachable for %.0f s; handing it back",
                 ended.dependency, ended.lasted_s)  # fmt: skip
            return AnalysisInterrupted()
        except WaitEnded:  # its lease was lost, or the shutdown grace is over
            return AnalysisInterrupted()
        return self._run_child(request, lease, held)

    def wait_out(
        self,
        held: Held,
        lease: LeaseKeeper | None,
        operation: Callable[[], T],
        *,
        uses: Dependency,
        what: str,
        hand_back: bool = False,
    ) -> T:
        """operation() through passing faults of storage or the database (`OutageWaits.run`),
        while held's lease is kept (None: its keeper has stopped) and the shutdown grace
        lasts. Raises WaitEnded when it stops waiting, or a permanent fault."""

        def keep_waiting() -> bool:
            return not (lease is not None and lease.lost) and not self.grace_expired()

        return self.outages.run(
            operation,
            job=held.job.job_id,
            uses=uses,
            what=what,
            say=functools.partial(_log, held),
            keep_waiting=keep_waiting,
            pause=time.sleep if lease is None else lease.wait_lost,
            hand_back=hand_back,
        )

    def record(self, held: Held, what: str, operation: Callable[[], T]) -> T | None:
        """A store call at the end of held (its end, a hand-back, a read to tell what
        happened) through database faults: its answer, or None when the database stayed
        away past the outage tolerance or the shutdown grace. Held's lease then runs out
        and the sweep hands it to another worker, as for a lost worker."""
        try:
            return self.wait_out(held, None, operation, uses=Dependency.DATABASE, what=what)
        except WaitEnded as ended:
            _log(held, logging.ERROR, "gave up %s: %s; its lease will run out", what, ended)
            return None

    def outlasted(self, ended: Outlasted) -> str:
        """Why a fault failed a job, for its error message."""
        tolerance_s = self.config.outage_tolerance_s
        return f"{ended.dependency} was unreachable for over {tolerance_s:g} s"

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
            self.record(held, "handing it back", lambda: held.release(count_attempt=True))
            self.stop_event.wait(self.config.poll_interval_s)
            return False
        self.hand_back(held, lease)
        return False

    def hand_back(self, held: Held, lease: LeaseKeeper) -> None:
        """Stop the lease and hand held back to pending, its attempt not counted."""
        lease.stop()
        if self.record(held, "handing it back", held.release):
            _log(held, logging.INFO, "handed back to pending")

    def fail(self, held: Held, lease: LeaseKeeper, message: str) -> bool:
        """Stop the lease and mark held failed; False when it was no longer held."""
        lease.stop()
        _log(held, logging.ERROR, "failed: %s", message)
        return bool(self.record(held, "recording its failure", lambda: held.fail(message)))

    def store_results(
        self, held: Held, lease: LeaseKeeper, files: Mapping[str, str]
    ) -> list[str] | bool:
        """Upload local files (storage key -> path) and commit them together: the keys.

        Nothing is readable before the commit, and nothing is committed once the lease is
        lost (then False). Storage away: the upload is tried again from the same local
        files, under the kept lease (never analysed again), until storage answers, the
        outage tolerance is spent (held fails) or the shutdown grace is over (held is
        handed back). A permanent storage error fails held: the answer of that write.
        """

        def upload_all() -> list[str] | None:
            with StagedUpload(self.storage) as upload:
                for key, path in files.items():
                    upload.upload(Path(path), key)
                return None if lease.lost else upload.commit()

        try:
            committed = self.wait_out(
                held, lease, upload_all, uses=Dependency.STORAGE, what="storing its results"
            )
        except StorageError as exc:
            _log(held, logging.ERROR, "storing its results failed: %s", exc)
            return self.fail(held, lease, f"the results could not be stored: {exc.reason}")
        except Outlasted as ended:
            message = f"the results could not be stored: {ended.reason}"
            return self.fail(held, lease, f"{message}; {self.outlasted(ended)}")
        except WaitEnded:  # the lease was lost, or the shutdown grace is over
            committed = None
        if committed is not None:
            return committed
        if lease.lost:
            _log(held, logging.WARNING, "lost its lease before storing results")
        else:
            self.hand_back(held, lease)
        return False

    def make_media(
        self, held: Held, lease: LeaseKeeper, done: AnalysisDone
    ) -> MediaDone | AnalysisInterrupted | None:
        """Have the child make the job's media beside its results files (workers/media.py).

        None when it could not (a crash, the time or memory limit, a video storage cannot
        give): the results stand without it, and the log says why. AnalysisInterrupted when
        the worker stopped it (shutdown, lost lease), as an analysis is interrupted.
        """
        scratch = str(Path(done.results_path).parent)
        try:
            video = str(self.local_video(held.job))
        except StorageError as exc:
            _log(held, logging.WARNING, "its media were not made: %s", exc)
            return None
        request = MediaRequest(video, done.results_path, done.timeline_path, scratch)
        outcome = self.executor.run(
            request, on_progress=lambda _done, _planned: None, on_tick=self._go_on(held, lease)
        )
        if isinstance(outcome, AnalysisInterrupted | MediaDone):
            if isinstance(outcome, MediaDone) and outcome.note:
                _log(held, logging.WARNING, "%s", outcome.note)
            return outcome
        if isinstance(outcome, AnalysisFailed):
            if outcome.detail:
                _log(held, logging.ERROR, "%s", outcome.detail)
            message = outcome.message
        else:  # pragma: no cover - protocol guard: a media request has no other answer
            message = f"unexpected answer {type(outcome).__name__}"
        _log(held, logging.WARNING, "its media were not made (%s); completing without", message)
        return None

    def complete(self, held: Held, lease: LeaseKeeper, done: AnalysisDone) -> bool:
        """Make a whole job's media, store them with its results and timeline, then complete
        it; False if it was lost or handed back.

        The objects are removed again if the job was taken away before it completed. A
        completion whose answer the database lost (the connection dropped after the
        commit) is told by the job's row: completed, by this worker.
        """
        job_id = held.job.job_id
        media = self.make_media(held, lease, done)
        if isinstance(media, AnalysisInterrupted):
            return self.settle(held, lease, media)
        key = results_key(job_id)
        files = {key: done.results_path, timeline_key(job_id): done.timeline_path}
        summary = done.summary()
        if media is not None:
            files[frame_tracks_key(job_id)] = media.tracks_path
            files[thumbnails_key(job_id)] = media.thumbnails_path
            if media.copy_path is not None:
                files[playable_key(job_id)] = media.copy_path
            summary.update(media.summary())
        committed = self.store_results(held, lease, files)
        if isinstance(committed, bool):
            return committed
        lease.stop()
        index = search_entries(held, done.timeline_path)
        completed = self.record(
            held,
            "recording its completion",
            lambda: self.store.complete(job_id, self.worker_id, key, summary, index),
        )
        if completed is None:  # stored, not recorded: its next holder stores the same bytes
            return False
        if not completed:
            try:
                current = self.wait_out(
                    held,
                    None,
                    lambda: self.store.get(job_id),
                    uses=Dependency.DATABASE,
                    what="reading its state",
                )
            except WaitEnded:
                return False  # what became of it is unknown: keep what was stored
            if not _completed_by(current, self.worker_id):
                log.warning("job %s: lost its lease before completing; results discarded", job_id)
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

    def _request(
        self, held: Held, video_path: str, scratch_dir: str, shots_only: bool = False
    ) -> AnalysisRequest:
        """What the child is asked to do: analyse held's frames of the video at video_path
        (or, shots_only, find the whole video's shots)."""
        job = held.job
        whole = held.frame_span is None and not shots_only
        segment_frames = self.config.segment_frames if whole else None
        # split already, by a coordinator that was lost: go on with its segments
        known_split = whole and bool(self.store.segments(job.job_id))
        return AnalysisRequest(
            job.pipeline_id,
            video_path,
            dict(job.options),
            scratch_dir,
            # a whole job may come back as segments; a segment is never split again
            segment_frames=segment_frames,
            split_parts=self._free_workers() + 1 if segment_frames and not known_split else 1,
            known_split=known_split,
            frame_span=held.frame_span,
            shots_only=shots_only,
        )

    def _free_workers(self) -> int:
        """The workers of this process free to take parts of a job cut at any frame: those
        holding nothing, unless other work waits for them (then none)."""
        free = self.cores.free_workers if self.cores is not None else 0
        return free if free and not self.store.has_pending_work() else 0

    def holding(self) -> contextlib.AbstractContextManager[None]:
        """Count this worker as holding work while in the block (see `SharedCores`)."""
        if self.cores is None:
            return contextlib.nullcontext()
        return self.cores.holding(self.worker_id)

    def _run_child(
        self, request: AnalysisRequest, lease: LeaseKeeper, held: Held
    ) -> AnalysisOutcome:
        keep_going = self._go_on(held, lease)
        if not keep_going():
            return AnalysisInterrupted()
        outcome = self.executor.run(request, on_progress=lease.report_progress, on_tick=keep_going)
        if isinstance(outcome, MediaDone):  # pragma: no cover - protocol guard
            return AnalysisFailed(FailureReason.INTERNAL, "the child answered with media")
        return outcome

    def _go_on(self, held: Held, lease: LeaseKeeper) -> Callable[[], bool]:
        """The executor's on_tick for held: False once its lease is lost or the grace after
        a stop is over."""

        def keep_going() -> bool:
            if lease.lost:
                _log(held, logging.WARNING, "lease lost; stopping its analysis")
                return False
            return not self.grace_expired()

        return keep_going


def _completed_by(job: JobRecord | None, worker_id: str) -> bool:
    """Whether the job's row says it was completed by this worker (its completion was
    written, though its answer was lost)."""
    return job is not None and job.status is JobStatus.COMPLETED and job.worker_id == worker_id


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
