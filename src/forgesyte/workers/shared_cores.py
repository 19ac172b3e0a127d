"""The machine's cores, shared by one process's workers: a job alone gets the idle ones.

The pool keeps how many of its workers' analysis children are working right now, in one
integer of shared memory that every child reads before each model call (`ChildThreads`,
the `ThreadShare` its plugins hold): no message, no round trip. A child alone takes all
the cores (at most LONE_CHILD_MAX_THREADS threads); when a second starts, the first
drops back to its share at its next model call, and takes the cores again when the other
ends. The pool also counts the workers that hold a job or a segment, so that a job the
video layer cannot cut at keyframes (too short) is cut at any frame for the others
(`JobRunner`).

This module loads nothing heavy: a child unpickles `ChildThreads` from it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

LONE_CHILD_MAX_THREADS = 4
"""The most threads a child may take beyond its share when other workers are idle. ONNX
Runtime's second thread makes OCR 1.25-1.33 x faster (bench rows o and p), further ones
less, and each thread count a child may use is a session per model (about 35 MiB for OCR):
beyond a few cores, splitting a job between the idle workers is what uses them."""


def thread_counts(cores: int, workers: int) -> tuple[int, ...]:
    """The threads a child gets with 1, 2, ... workers busy (see `threads_for`), as a set."""
    return tuple(sorted({threads_for(cores, workers, busy) for busy in range(1, workers + 1)}))


def threads_for(cores: int, workers: int, busy: int) -> int:
    """A busy child's threads while `busy` of the `workers` children work: the cores shared
    equally among the busy ones, never less than its share when all work (cores // workers,
    at least 1), nor more than that or LONE_CHILD_MAX_THREADS, whichever is more."""
    share = max(1, cores // max(1, workers))
    most = max(share, min(cores, LONE_CHILD_MAX_THREADS))
    return max(share, min(most, cores // max(1, busy)))


@dataclass(frozen=True)
class ChildThreads:
    """What a child reads: its threads now, from the busy count in shared memory.

    Pickled into the child when it is spawned (shared memory passes only then).
    """

    cores: int
    workers: int
    busy: Any  # a c_int in shared memory (multiprocessing's RawValue), written by the pool

    @property
    def counts(self) -> tuple[int, ...]:
        """Every thread count threads_now() may answer, ascending."""
        return thread_counts(self.cores, self.workers)

    def threads_now(self) -> int:
        """This child's threads now (it counts itself among the busy while it works)."""
        return threads_for(self.cores, self.workers, int(self.busy.value))


@dataclass(frozen=True)
class FixedThreads:
    """A child's threads when the operator fixed them (FORGESYTE_ANALYSIS_THREADS)."""

    threads: int

    @property
    def counts(self) -> tuple[int, ...]:
        """Only the fixed count."""
        return (self.threads,)

    def threads_now(self) -> int:
        """Always the fixed count."""
        return self.threads


class SharedCores:
    """A process's workers and the cores they share: how many children work, how many
    workers hold a job or a segment.

    cores: the machine's (os.cpu_count()); fixed_threads: the operator's thread count per
    child (FORGESYTE_ANALYSIS_THREADS), which turns sharing off.
    """

    def __init__(self, cores: int, workers: int, fixed_threads: int | None = None) -> None:
        self.cores = max(1, cores)
        self.workers = max(1, workers)
        self.fixed_threads = fixed_threads
        self._busy = multiprocessing.get_context("spawn").RawValue("i", 0)
        self._holding: set[str] = set()  # the ids of the workers holding work
        self._lock = threading.Lock()

    @property
    def share(self) -> int:
        """A child's threads while every worker's child works (the fixed count, if set)."""
        if self.fixed_threads is not None:
            return self.fixed_threads
        return threads_for(self.cores, self.workers, self.workers)

    @property
    def child_threads(self) -> ChildThreads | None:
        """The thread share the children's plugins follow; None when the count is fixed."""
        if self.fixed_threads is not None:
            return None
        return ChildThreads(self.cores, self.workers, self._busy)

    @property
    def free_workers(self) -> int:
        """How many workers hold nothing now (idle, or about to look for work)."""
        with self._lock:
            return self.workers - len(self._holding)

    def _add_busy(self, change: int) -> None:
        with self._lock:
            self._busy.value += change

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """While a worker's child works on a request: counted busy."""
        self._add_busy(1)
        try:
            yield
        finally:
            self._add_busy(-1)

    @contextlib.contextmanager
    def holding(self, worker_id: str) -> Iterator[None]:
        """While a worker runs a job or a segment it claimed: not free for a split job's
        parts (a split job's coordinator takes only its own job's). Nested blocks of one
        worker (the coordinator analysing a segment of its job) count once."""
        with self._lock:
            added = worker_id not in self._holding
            self._holding.add(worker_id)
        try:
            yield
        finally:
            if added:
                with self._lock:
                    self._holding.discard(worker_id)
