"""The worker loop: poll, claim, run, repeat until asked to stop.

Idle workers re-try their claim every `poll_interval_s`. Inside `forgesyte serve` the API
and the workers share a process, so the API's job store (a `NotifyingJobStore`) also wakes
idle workers the moment it enqueues a job, instead of leaving the job for the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord, JobStore, NewJob
from forgesyte.results.storing import StagedUpload
from forgesyte.storage.base import Storage, StorageError, results_key, timeline_key
from forgesyte.workers.analysis_child import AnalysisDone, AnalysisRequest
from forgesyte.workers.executor import AnalysisExecutor, AnalysisOutcome, ChildStartError

STORAGE_READ_RETRIES = 3
STORAGE_RETRY_DELAY_S = 0.5  # seconds, doubled on each retry
RECOVERY_INTERVAL_S = 2.0  # seconds between sweeps of expired leases

log = logging.getLogger(__name__)


class JobWakeup:
    """Wakes this process's idle workers: a job was enqueued here, or they should stop.

    A counter, not a flag: a worker notes `generation()` before it tries to claim and then
    waits for a change, so a job enqueued between its claim and its wait is never missed.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def generation(self) -> int:
        """The number of notifications so far."""
        with self._condition:
            return self._generation

    def notify(self) -> None:
        """Wake every waiting worker."""
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout_s: float) -> bool:
        """Wait until a notification after generation `seen`, or timeout_s; True if notified."""
        with self._condition:
            return self._condition.wait_for(lambda: self._generation != seen, timeout_s)


class NotifyingJobStore(JobStore):
    """A JobStore that wakes the workers of this process as soon as it has enqueued a job.

    Workers in other processes (`forgesyte worker`) still find the job by polling.
    """

    def __init__(self, engine: Engine, wakeup: JobWakeup | None = None) -> None:
        super().__init__(engine)
        self.wakeup = wakeup or JobWakeup()

    def create(self, new: NewJob) -> JobRecord:
        """Insert the pending job (committed), then wake the idle workers."""
        record = super().create(new)
        self.wakeup.notify()
        return record


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's timings and limits."""

    lease_seconds: float = 30.0
    max_attempts: int = 3
    poll_interval_s: float = 0.2
    progress_interval_s: float = 0.25
    shutdown_grace_s: float = 20.0


class Worker:
    """Claims jobs from the store and runs each in its executor's child process.

    stop_event asks the worker to stop claiming; the running job may finish within
    shutdown_grace_s of that, else it is handed back to pending. An idle worker waits
    poll_interval_s between claims, or less when `wakeup` (by default the store's own, for a
    NotifyingJobStore) says a job was enqueued.
    """

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        executor: AnalysisExecutor,
        config: WorkerConfig,
        stop_event: threading.Event,
        worker_id: str | None = None,
        wakeup: JobWakeup | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.executor = executor
        self.config = config
        self.stop_event = stop_event
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._stop_requested_at: float | None = None
        self._last_recovery = 0.0
        if wakeup is None and isinstance(store, NotifyingJobStore):
            wakeup = store.wakeup
        self.wakeup = wakeup

    def run(self, *, burst: bool = False) -> int:
        """Process jobs until stopped (or, in burst mode, until the queue is empty).

        Returns the number of jobs this worker finished (completed or failed).
        """
        finished = 0
        try:
            self.executor.start()
            while not self.stop_event.is_set():
                self._recover_expired()
                seen = self.wakeup.generation() if self.wakeup is not None else 0
                job = self.store.claim_next(self.worker_id, self.config.lease_seconds)
                if job is None:
                    if burst:
                        break
                    self._idle(seen)
                    continue
                if self.process(job):
                    finished += 1
        finally:
            self.executor.stop()
        return finished

    def _idle(self, seen: int) -> None:
        """Wait for the next claim: a poll interval, cut short by a wake-up or a stop."""
        if self.wakeup is None:
            self.stop_event.wait(self.config.poll_interval_s)
        else:
            self.wakeup.wait(seen, self.config.poll_interval_s)

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

    def process(self, job: JobRecord) -> bool:
        """Run one claimed job to its end; False if it was handed back or taken away."""
        log.info("job %s: claimed by %s (attempt %d)", job.job_id, self.worker_id, job.attempts)
        with tempfile.TemporaryDirectory(prefix="forgesyte-results-") as scratch_dir:
            return self._process_in(job, scratch_dir)

    def _process_in(self, job: JobRecord, scratch_dir: str) -> bool:
        try:
            outcome = self._analyse(job, scratch_dir)
        except StorageError as exc:
            return self._fail(job, f"the uploaded video could not be read from storage: {exc}")
        except FileNotFoundError:
            return self._fail(job, "the uploaded video is missing from storage")
        except ChildStartError as exc:
            # infrastructure, not the video: hand the job back for a later try, counted
            if job.attempts >= self.config.max_attempts:
                return self._fail(
                    job, f"the analysis process could not start ({exc}) in {job.attempts} attempts"
                )
            log.error("job %s: %s; handing it back", job.job_id, exc)
            self.store.release(job.job_id, self.worker_id, count_attempt=True)
            self.stop_event.wait(self.config.poll_interval_s)
            return False
        if outcome.interrupted:
            if self.store.release(job.job_id, self.worker_id):
                log.info("job %s: handed back to pending", job.job_id)
            return False
        if outcome.done is None:
            return self._fail(job, outcome.error or "the analysis failed")
        return self._store_results(job, outcome.done)

    def _store_results(self, job: JobRecord, done: AnalysisDone) -> bool:
        """Upload the child's results and timeline files, commit them, then complete the job.

        Nothing is readable before the job completes: the objects become visible only on
        commit, and are removed again if the lease was lost meanwhile.
        """
        key = results_key(job.job_id)
        with StagedUpload(self.storage) as upload:
            try:
                upload.upload(Path(done.results_path), key)
                upload.upload(Path(done.timeline_path), timeline_key(job.job_id))
                if not self.store.heartbeat(job.job_id, self.worker_id, self.config.lease_seconds):
                    log.warning("job %s: lost its lease before storing results", job.job_id)
                    return False
                committed = upload.commit()
            except StorageError as exc:
                return self._fail(job, f"the results could not be stored: {exc}")
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

    def _fail(self, job: JobRecord, message: str) -> bool:
        log.error("job %s: failed: %s", job.job_id, message)
        return self.store.fail(job.job_id, self.worker_id, message)

    def _analyse(self, job: JobRecord, scratch_dir: str) -> AnalysisOutcome:
        """Run the child on a local copy of the video; it writes its results in scratch_dir."""
        delay = STORAGE_RETRY_DELAY_S
        for attempt in range(STORAGE_READ_RETRIES):
            try:
                with self.storage.local_copy(job.input_path) as video_path:
                    return self._run_child(job, str(video_path), scratch_dir)
            except StorageError:
                if attempt == STORAGE_READ_RETRIES - 1:
                    raise
                log.warning("job %s: storage read failed; retrying", job.job_id)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_child(self, job: JobRecord, video_path: str, scratch_dir: str) -> AnalysisOutcome:
        request = AnalysisRequest(job.pipeline_id, video_path, dict(job.options), scratch_dir)
        lease_renew_interval = self.config.lease_seconds / 3
        last_write = time.monotonic()
        pending_progress: float | None = None
        held = True

        def write_progress(progress: float | None) -> None:
            nonlocal last_write, held
            last_write = time.monotonic()
            if progress is None:
                held = self.store.heartbeat(job.job_id, self.worker_id, self.config.lease_seconds)
            else:
                held = self.store.set_progress(
                    job.job_id, self.worker_id, progress, self.config.lease_seconds
                )

        def on_progress(analysed: int, planned: int) -> None:
            nonlocal pending_progress
            pending_progress = min(99.0, 100.0 * analysed / max(planned, 1))
            if time.monotonic() - last_write >= self.config.progress_interval_s:
                write_progress(pending_progress)
                pending_progress = None

        def on_tick() -> bool:
            nonlocal pending_progress
            since = time.monotonic() - last_write
            if pending_progress is not None and since >= self.config.progress_interval_s:
                write_progress(pending_progress)
                pending_progress = None
            elif since >= lease_renew_interval:
                write_progress(None)
            if not held:
                log.warning("job %s: lease lost; stopping its analysis", job.job_id)
                return False
            return not self._grace_expired()

        return self.executor.run(request, on_progress=on_progress, on_tick=on_tick)

    def _grace_expired(self) -> bool:
        if not self.stop_event.is_set():
            return False
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        return time.monotonic() - self._stop_requested_at > self.config.shutdown_grace_s
