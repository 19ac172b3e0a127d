"""A process's worker threads, each with its own analysis child, and their stop."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from forgesyte.settings import Settings
from forgesyte.workers.executor import limit_child_threads
from forgesyte.workers.shared_cores import SharedCores, thread_counts
from forgesyte.workers.worker import Worker

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0  # seconds before a crashed worker loop starts again


class WorkerSource(Protocol):
    """What the pool needs of the process's wiring (`forgesyte.runtime.Runtime`)."""

    settings: Settings

    def make_worker(
        self, stop_event: threading.Event, index: int = 0, *, cores: SharedCores | None = None
    ) -> Worker:
        """A worker with its own analysis child, sharing the process's cores with the others."""
        ...

    def start_background(self, stop_event: threading.Event) -> list[threading.Thread]:
        """Start the process's background threads, running until stop_event is set."""
        ...


class WorkerPool:
    """Worker threads, each with its own analysis child, sharing one stop event and the
    machine's cores (`SharedCores`).

    Before any child starts, the threads an analysis child may use are settled: the
    analysis_threads setting for every child, else a share that follows how many children
    work (all the cores, up to a few, for a child alone; cores // workers when all work).
    The share when all work goes into the environment the children inherit (the native
    libraries' own pools), so that workers running side by side do not oversubscribe the
    cores.
    """

    def __init__(self, source: WorkerSource, count: int) -> None:
        fixed = source.settings.analysis_threads
        self.cores = SharedCores(os.cpu_count() or 1, count, fixed)
        limit_child_threads(self.cores.share)
        counts = (fixed,) if fixed else thread_counts(self.cores.cores, self.cores.workers)
        if count and len(counts) == 1:
            log.info("each analysis child may use %d thread(s)", counts[0])
        elif count:
            log.info(
                "each analysis child may use %d to %d threads: all it may while the other "
                "workers' children are idle, %d while all work",
                counts[0],
                counts[-1],
                counts[0],
            )
        self.stop_event = threading.Event()
        self.source = source
        self.background: list[threading.Thread] = []
        self.workers = [
            source.make_worker(self.stop_event, index, cores=self.cores) for index in range(count)
        ]
        self.threads = [
            threading.Thread(target=self._run, args=(worker,), name=f"worker-{index}", daemon=True)
            for index, worker in enumerate(self.workers)
        ]

    def _run(self, worker: Worker) -> None:
        while not self.stop_event.is_set():
            try:
                worker.run()
            except Exception:
                log.exception("worker %s crashed; restarting it", worker.worker_id)
                self.stop_event.wait(RESTART_DELAY_S)

    def start(self) -> None:
        """Start the worker threads and the process's background threads."""
        for thread in self.threads:
            thread.start()
        self.background = self.source.start_background(self.stop_event)

    def stop(self, timeout_s: float) -> None:
        """Stop claiming, wake idle workers, and wait up to timeout_s for every thread."""
        self.stop_event.set()
        for worker in self.workers:
            if worker.wakeup is not None:
                worker.wakeup.notify()  # idle workers see the stop now, not at their next poll
        deadline = time.monotonic() + timeout_s
        for thread in self.threads + self.background:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
