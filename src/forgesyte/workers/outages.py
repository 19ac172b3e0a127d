"""Waiting out an unreachable storage or database in a worker, rather than failing jobs.

A step of a job (reading its video, storing its results, recording its end) that meets a
transient fault (`forgesyte.faults.transient_fault`: a refused or dropped connection, a
timeout, a 5xx, throttling) is tried again after a pause that doubles, with jitter, up to
MAX_DELAY_S; a permanent fault passes through at once. Two bounds end a wait:

- the step's own (`step_limit_s`), only before the analysis (reading the video): past it
  the job is handed back to pending without spending an attempt, as procrastinate and RQ
  hand back a job when the worker, not the job, is at fault; another worker, maybe one
  that can reach the storage, may take it;
- the outage tolerance (FORGESYTE_OUTAGE_TOLERANCE_S): a job fails for a fault only once
  it has met the fault for longer, measured by the worker loop's `OutageClock` from its
  first failure to its first success; a job handed back and claimed again by the same
  loop (the oldest pending job: it usually is) does not start the count again. Each job
  has its own count, so an outage longer than the tolerance fails the jobs one at a time
  as each has waited that long, never the whole queue at once.

Results already analysed are never thrown away for an outage: storing them waits in
place, under the job's lease, until the storage answers or the tolerance is spent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from forgesyte.faults import Dependency, transient_fault

T = TypeVar("T")

FIRST_DELAY_S = 0.25  # seconds before the first retry of a step that met a passing fault
MAX_DELAY_S = 4.0  # seconds: the longest pause between two tries
STEP_LIMIT_S = 20.0  # seconds a worker waits to read a video before handing the job back
REPORT_EVERY_S = 30.0  # seconds between two "still waiting" log lines of one step
# seconds without a failure after which a loop's clock forgets a fault: far more than any
# pause between two tries, or between a job handed back and claimed again
FORGET_AFTER_S = 60.0

Say = Callable[..., None]  # (level, text, *args): a log line about the job

log = logging.getLogger(__name__)


class WaitEnded(Exception):
    """A wait for a dependency ended before the step succeeded; the last fault is `cause`."""

    def __init__(self, dependency: Dependency, lasted_s: float, cause: BaseException) -> None:
        super().__init__(f"{dependency} unreachable for {lasted_s:.0f} s: {cause}")
        self.dependency = dependency
        self.lasted_s = lasted_s
        self.cause = cause

    @property
    def reason(self) -> str:
        """What the last fault was, fit for a job's error message (no key, URL or path)."""
        return str(getattr(self.cause, "reason", type(self.cause).__name__))


class Outlasted(WaitEnded):
    """The fault has lasted longer than the outage tolerance: the step is given up."""


class StepOverdue(WaitEnded):
    """The step waited its own limit: the job is to be handed back."""


class WaitStopped(WaitEnded):
    """The job's holder stopped waiting (its lease was lost, the worker is stopping)."""


def backoff_delays(first_s: float = FIRST_DELAY_S, max_s: float = MAX_DELAY_S) -> Iterator[float]:
    """Pauses that double from first_s up to max_s, each drawn from [half, all] of its
    size: workers that met one fault together do not come back in step."""
    delay = first_s
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(delay * 2, max_s)


@dataclass
class OutageClock:
    """When each job met the current fault of each dependency, as one worker loop saw it.

    A count ends at the job's first success with that dependency, or once nothing has
    failed for FORGET_AFTER_S (the job went to another worker, or the fault passed).
    """

    _faults: dict[tuple[Hashable, Dependency], tuple[float, float]] = field(default_factory=dict)

    def failing(self, job: Hashable, dependency: Dependency, now: float) -> float:
        """Note a failure; how long the job has met the dependency failing (0 at first)."""
        for key, (_, last) in list(self._faults.items()):
            if now - last > FORGET_AFTER_S:
                del self._faults[key]
        began, _ = self._faults.get((job, dependency), (now, now))
        self._faults[(job, dependency)] = (began, now)
        return now - began

    def answered(self, job: Hashable, dependency: Dependency, now: float) -> float | None:
        """Note a success; how long the fault it ends had lasted, None if there was none."""
        fault = self._faults.pop((job, dependency), None)
        return None if fault is None else now - fault[0]


@dataclass
class OutageWaits:
    """Runs a worker's steps through passing faults, bounded as the module says."""

    tolerance_s: float
    step_limit_s: float = STEP_LIMIT_S
    clock: OutageClock = field(default_factory=OutageClock)

    def run(
        self,
        operation: Callable[[], T],
        *,
        job: Hashable,
        uses: Dependency,
        what: str,
        say: Say,
        keep_waiting: Callable[[], bool],
        pause: Callable[[float], object] = time.sleep,
        hand_back: bool = False,
    ) -> T:
        """operation(), tried again through transient faults; its answer.

        job: whose step it is (each job's wait is counted apart); uses: the dependency
        operation needs (a success ends the job's count); what: the step,
        for log lines ("reading its video"); keep_waiting: False ends the wait
        (WaitStopped); pause: sleeps between tries (a job's lease's wait, woken when the
        lease is lost); hand_back: the step may be handed back after step_limit_s
        (StepOverdue). A permanent fault is raised as it is; Outlasted past the tolerance.
        """
        delays = backoff_delays()
        step_began: float | None = None
        reported = 0.0
        while True:
            try:
                answer = operation()
            except Exception as exc:
                dependency = transient_fault(exc)
                if dependency is None:
                    raise
                now = time.monotonic()
                lasted = self.clock.failing(job, dependency, now)
                if step_began is None:
                    step_began = reported = now
                    say(logging.WARNING, "%s unreachable while %s (%s); waiting it out",
                        dependency, what, _kind(exc))  # fmt: skip
                elif now - reported >= REPORT_EVERY_S:
                    reported = now
                    say(logging.WARNING, "%s still unreachable after %.0f s while %s",
                        dependency, lasted, what)  # fmt: skip
                if lasted > self.tolerance_s:
                    raise Outlasted(dependency, lasted, exc) from exc
                if hand_back and now - step_began > self.step_limit_s:
                    raise StepOverdue(dependency, lasted, exc) from exc
                if not keep_waiting():
                    raise WaitStopped(dependency, lasted, exc) from exc
                pause(next(delays))
                continue
            lasted_s = self.clock.answered(job, uses, time.monotonic())
            if step_began is not None and lasted_s is not None:
                say(logging.INFO, "%s answered again after %.1f s", uses, lasted_s)
            return answer


def _kind(exc: BaseException) -> str:
    """A fault in a few words: a storage error's reason, else its type."""
    return str(getattr(exc, "reason", None) or type(exc).__name__)


@dataclass
class IdlePauses:
    """An idle worker loop's pauses while what it polls for work is away: growing, with
    jitter, and logged when the fault is first met, every REPORT_EVERY_S, and at its end."""

    worker_id: str
    _since: float | None = None
    _reported: float = 0.0
    _delays: Iterator[float] = field(default_factory=backoff_delays)

    def failed(self, dependency: Dependency, exc: BaseException) -> float:
        """Note a look for work that met a passing fault; the pause before the next look."""
        now = time.monotonic()
        if self._since is None:
            self._since = self._reported = now
            log.warning("%s: %s unreachable while looking for work (%s); trying again",
                        self.worker_id, dependency, _kind(exc))  # fmt: skip
        elif now - self._reported >= REPORT_EVERY_S:
            self._reported = now
            log.warning("%s: %s still unreachable after %.0f s",
                        self.worker_id, dependency, now - self._since)  # fmt: skip
        return next(self._delays)

    def answered(self) -> None:
        """Note a look for work that went through: the pauses start small again."""
        if self._since is not None:
            log.info("%s: looking for work again after %.1f s", self.worker_id,
                     time.monotonic() - self._since)  # fmt: skip
            self._since = None
            self._delays = backoff_delays()
