"""Keeping a claimed job's lease alive from the claim until the job ends, on a timer thread."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from forgesyte.jobs.models import PROGRESS_CAP

RENEWAL_RETRY_S = 1.0  # seconds before a renewal the store did not answer is tried again

log = logging.getLogger(__name__)


class LeasedJobs(Protocol):
    """The two job-store operations a lease keeper needs (each renews the lease)."""

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        """Renew the lease; False when this worker no longer holds the job."""
        ...

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        """Record progress (percent) and renew the lease; False when the job is not held."""
        ...


class LeaseKeeper:
    """Owns one job's lease: renews it every lease_seconds / 3 and writes progress.

    Its own thread does every write, so the lease stays renewed whatever the worker does
    meanwhile (a slow storage download, a child restart, the analysis itself). Progress
    reported with `report_progress` is written at most once per progress_interval_s (a
    progress write renews the lease too). When the store says the job is no longer held
    (failed by an operator, taken over after an expiry) `lost` becomes true and the thread
    ends; the worker then stops its analysis. A renewal the store did not answer (the
    database away) is logged and tried again every RENEWAL_RETRY_S rather than at the
    next renewal, so the lease is renewed within a second of the database's return: only
    an outage longer than what is left of the lease lets it expire.

    With `holds` (a cheap read: is the job still running and held by this worker?) it also
    checks every check_interval_s between writes, so a job cancelled by an operator is
    seen as lost within about that long rather than at the next renewal.

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        store: LeasedJobs,
        job_id: uuid.UUID,
        worker_id: str,
        *,
        lease_seconds: float,
        progress_interval_s: float,
        holds: Callable[[], bool] | None = None,
        check_interval_s: float = 1.0,
    ) -> None:
        if lease_seconds <= 0 or progress_interval_s <= 0 or check_interval_s <= 0:
            raise ValueError(
                "lease_seconds, progress_interval_s and check_interval_s must be positive"
            )
        self.store = store
        self.job_id = job_id
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.renew_interval_s = lease_seconds / 3
        self.progress_interval_s = progress_interval_s
        self._condition = threading.Condition()
        self._stopping = False
        self._last_write = time.monotonic()  # the claim itself set the lease
        self._holds = holds
        self.check_interval_s = check_interval_s
        self._last_check = self._last_write
        self._pending: float | None = None
        self._lost = threading.Event()
        self._thread = threading.Thread(
            target=self._keep, name=f"lease-{str(job_id)[:8]}", daemon=True
        )

    @property
    def lost(self) -> bool:
        """Whether the store said this worker no longer holds the job."""
        return self._lost.is_set()

    def wait_lost(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for the lease to be lost; True if it was."""
        return self._lost.wait(timeout_s)

    def start(self) -> LeaseKeeper:
        """Start renewing (from now until `stop`)."""
        self._thread.start()
        return self

    def report_progress(self, analysed: int, planned: int) -> None:
        """Note that `analysed` of `planned` frames are done; written when the throttle allows."""
        percent = min(PROGRESS_CAP, 100.0 * analysed / max(planned, 1))
        with self._condition:
            first = self._pending is None
            self._pending = percent
            if first:  # the thread may be waiting for the next renewal: bring its write forward
                self._condition.notify()

    def stop(self) -> None:
        """Stop renewing and wait for a write under way; the lease then runs out on its own.

        Call it before the job's final store operation (complete, fail, hand back), so no
        renewal races with it. Idempotent.
        """
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> LeaseKeeper:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_write_at(self) -> float:
        due = self._last_write + self.renew_interval_s
        if self._pending is not None:
            due = min(due, self._last_write + self.progress_interval_s)
        return due

    def _next_check_at(self) -> float:
        if self._holds is None:
            return float("inf")
        return max(self._last_check, self._last_write) + self.check_interval_s

    def _keep(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    wait_s = min(self._next_write_at(), self._next_check_at()) - now
                    if wait_s <= 0:
                        break
                    self._condition.wait(wait_s)
                writing = self._next_write_at() <= now
                progress: float | None = None
                if writing:
                    progress, self._pending = self._pending, None
                    self._last_write = now
                self._last_check = now
            held = self._write(progress) if writing else self._check()
            if held is None and writing:  # no answer: the next try comes soon
                with self._condition:
                    self._last_write = now - self.renew_interval_s + RENEWAL_RETRY_S
            elif held is False:
                log.warning("job %s: lease lost", self.job_id)
                self._lost.set()
                return

    def _check(self) -> bool | None:
        """The cheap read between writes; False only when the job is no longer held, None
        when the store did not answer."""
        assert self._holds is not None
        try:
            return self._holds()
        except Exception as exc:  # a database hiccup: the next check tries again
            log.warning("job %s: could not check its lease: %s", self.job_id, _one_line(exc))
            return None

    def _write(self, progress: float | None) -> bool | None:
        """One renewal (with progress when there is some); False only when the job is lost,
        None when the store did not answer."""
        try:
            if progress is None:
                return self.store.heartbeat(self.job_id, self.worker_id, self.lease_seconds)
            return self.store.set_progress(
                self.job_id, self.worker_id, progress, self.lease_seconds
            )
        except Exception as exc:  # a database hiccup: tried again in RENEWAL_RETRY_S
            log.warning("job %s: could not renew its lease: %s", self.job_id, _one_line(exc))
            return None


def _one_line(exc: BaseException) -> str:
    """An error in one line: a database error's text runs over several (SQL, a link)."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
