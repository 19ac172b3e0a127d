"""The worker loop: poll, claim, run, repeat until asked to stop.

Idle workers re-try their claim every `poll_interval_s`. Inside `forgesyte serve` the API
and the workers share a process and a job store, whose change listeners include a
`JobWakeup`: idle workers wake the moment a job is enqueued, instead of at the next poll.
A claimed job runs through the worker's `JobRunner`; a split one's segments through its
`SegmentWork`, which uses the same runner. While the database does not answer, an idle
worker keeps its analysis child and looks again after growing pauses (`IdlePauses`).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import uuid

from forgesyte.faults import transient_fault
from forgesyte.jobs.changes import JobWakeup
from forgesyte.jobs.queue import JobQueue
from forgesyte.jobs.records import JobRecord
from forgesyte.storage.base import Storage
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.job_run import Held, JobRunner, WorkerConfig
from forgesyte.workers.outages import IdlePauses
from forgesyte.workers.protocol import AnalysisDone, AnalysisFailed, SegmentsPlanned
from forgesyte.workers.segment_work import SegmentWork
from forgesyte.workers.shared_cores import SharedCores

log = logging.getLogger(__name__)


class Worker:
    """Claims jobs from the store and runs each in its executor's child process.

    stop_event asks the worker to stop claiming; the running job may finish within
    shutdown_grace_s of that, else it is handed back to pending. An idle worker waits
    poll_interval_s between claims, or less when `wakeup` (a listener of the store) says a
    job was enqueued; the workers sharing a `wakeup` look for work once per
    poll_interval_s between them. What it runs with (store, storage, child, config, the
    cores its process shares) is its runner's.
    """

    __slots__ = (
        "_away",
        "runner",
        "segment_work",
        "wakeup",
    )  # so `worker.store = ...` fails loudly

    def __init__(
        self,
        store: JobQueue,
        storage: Storage,
        executor: AnalysisExecutor,
        config: WorkerConfig,
        stop_event: threading.Event,
        *,
        worker_id: str | None = None,
        wakeup: JobWakeup | None = None,
        cores: SharedCores | None = None,
    ) -> None:
        self.runner = JobRunner(
            store,
            storage,
            executor,
            config,
            stop_event,
            worker_id or f"worker-{uuid.uuid4().hex[:12]}",
            cores,
        )
        self.wakeup = wakeup
        self.segment_work = SegmentWork(self.runner, wakeup)
        self._away = IdlePauses(self.runner.worker_id)

    @property
    def worker_id(self) -> str:
        """The id the store records on what this worker holds."""
        return self.runner.worker_id

    def run(self, *, burst: bool = False) -> int:
        """Process jobs until stopped (or, in burst mode, until the queue is empty).

        Returns the number of jobs this worker finished (completed or failed).
        """
        runner = self.runner
        finished = 0
        try:
            started = runner.executor.start()  # warm: models load before the first claim
            if isinstance(started, AnalysisFailed):
                log.warning(
                    "%s: %s; trying again for the next job", self.worker_id, started.message
                )
            while not runner.stop_event.is_set():
                try:
                    turn = self._turn(burst)
                except Exception as exc:  # the database (or storage) away: wait, keep the child
                    dependency = transient_fault(exc)
                    if dependency is None:
                        raise
                    runner.release_video()
                    runner.stop_event.wait(self._away.failed(dependency, exc))
                    continue
                if turn is None:
                    break
                finished += turn
        finally:
            runner.release_video()
            runner.executor.stop()
        return finished

    def _turn(self, burst: bool) -> int | None:
        """One turn of the loop: sweep, then claim and run a segment or a job, or idle.
        The jobs it finished (0 or 1); None when a burst found nothing to do."""
        runner = self.runner
        runner.recover_expired()
        seen = self.wakeup.generation() if self.wakeup is not None else 0
        looked_lately = self._looked_lately(seen)
        if looked_lately is not None:  # another worker here just looked: no work
            if burst:
                return None
            self._idle(seen, looked_lately)
            return 0
        # one read per idle poll; the claims are writes, several times its cost
        pending = runner.store.has_pending_work()
        self._away.answered()
        if pending:
            if self.segment_work.claim_and_run():  # a split job's segments first
                return 0
            job = runner.store.claim_next(self.worker_id, runner.config.lease_seconds)
            if job is not None:
                return int(self.process(job))
        if self.wakeup is not None:
            self.wakeup.found_nothing(seen)
        if burst:
            return None
        self._idle(seen, runner.config.poll_interval_s)
        return 0

    def _looked_lately(self, seen: int) -> float | None:
        """Seconds until this process's next look for work, when a worker of it found
        none less than a poll interval ago (and nothing was notified since); else None.

        So the idle workers of one process look once per poll interval between them,
        not once each, and a job from another process still waits at most one interval.
        """
        if self.wakeup is None:
            return None
        since = self.wakeup.since_nothing_found(seen)
        poll_interval_s = self.runner.config.poll_interval_s
        if since is None or since >= poll_interval_s:
            return None
        return poll_interval_s - since

    def _idle(self, seen: int, timeout_s: float) -> None:
        """Wait for the next claim: timeout_s, cut short by a wake-up or a stop."""
        self.runner.release_video()  # idle: keep no copy of a video
        if self.wakeup is None:
            self.runner.stop_event.wait(timeout_s)
        else:
            self.wakeup.wait(seen, timeout_s)

    def process(self, job: JobRecord) -> bool:
        """Run one claimed job to its end; False if it was handed back or taken away.

        A LeaseKeeper holds the job's lease from here until the job's final store call,
        whatever the worker is doing meanwhile.
        """
        log.info("job %s: claimed by %s (attempt %d)", job.job_id, self.worker_id, job.attempts)
        runner = self.runner
        held = Held(runner.store, job, self.worker_id)
        with (
            runner.holding(),  # not free for the parts of a job split meanwhile
            runner.lease(held) as lease,
            tempfile.TemporaryDirectory(prefix="forgesyte-results-") as scratch_dir,
        ):
            outcome = runner.analyse(held, lease, scratch_dir)
            if isinstance(outcome, AnalysisDone):
                return runner.complete(held, lease, outcome)
            if isinstance(outcome, SegmentsPlanned):
                return self.segment_work.coordinate(held, lease, outcome)
            return runner.settle(held, lease, outcome)
