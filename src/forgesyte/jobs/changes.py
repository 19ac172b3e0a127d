"""Being told that a job changed: the one mechanism every job store uses.

A store publishes a `JobChange` after each change it commits; listeners in the same process
(the status cache, the idle workers' `JobWakeup`) react at once. Other processes learn of
changes by reading the store.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from forgesyte.jobs.models import JobStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobChange:
    """A job a store just changed, and the state it is in now."""

    job_id: uuid.UUID
    status: JobStatus


JobListener = Callable[[JobChange], None]


class JobChangeFeed:
    """The listeners of one store, called after each change the store has committed.

    A listener that raises is logged and skipped: the change is already made, and the
    other listeners must still hear of it.
    """

    def __init__(self) -> None:
        self._listeners: list[JobListener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: JobListener) -> None:
        """Call listener(change) after every later change."""
        with self._lock:
            self._listeners.append(listener)

    def publish(self, job_id: uuid.UUID, status: JobStatus) -> None:
        """Tell every listener that job_id is now in `status`."""
        change = JobChange(job_id, status)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:
                log.exception("job %s: a change listener failed", job_id)


class JobWakeup:
    """Wakes this process's idle workers: a job became pending here, or they should stop.

    Subscribe `on_change` to the store. A counter, not a flag: a worker notes
    `generation()` before it tries to claim and then waits for a change, so a job
    enqueued between its claim and its wait is never missed.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._found_nothing: tuple[int, float] | None = None  # (generation, monotonic time)

    def generation(self) -> int:
        """The number of notifications so far."""
        with self._condition:
            return self._generation

    def notify(self) -> None:
        """Wake every waiting worker."""
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def on_change(self, change: JobChange) -> None:
        """A store listener: wake the workers when a job became claimable."""
        if change.status is JobStatus.PENDING:
            self.notify()

    def found_nothing(self, seen: int) -> None:
        """A worker of this process looked, at generation `seen`, and found no work."""
        with self._condition:
            if seen == self._generation:
                self._found_nothing = (seen, time.monotonic())

    def since_nothing_found(self, seen: int) -> float | None:
        """Seconds since a worker of this process found no work with nothing notified
        since (generation `seen`); None when no such look stands."""
        with self._condition:
            if self._found_nothing is None or self._found_nothing[0] != seen:
                return None
            return time.monotonic() - self._found_nothing[1]

    def wait(self, seen: int, timeout_s: float) -> bool:
        """Wait until a notification after generation `seen`, or timeout_s; True if notified."""
        with self._condition:
            return self._condition.wait_for(lambda: self._generation != seen, timeout_s)
