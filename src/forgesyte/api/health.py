"""What /healthz answers: whether the database and storage answer, and the job counts.

/healthz needs no key, so anyone may flood it: its checks run at most once per
HEALTH_CACHE_S per process, and every other call in between gets the same bytes; while a
round of checks is under way, callers get the previous answer rather than wait for it. A
check that has not answered within PROBE_TIMEOUT_S counts as down, and is not started
again while its thread still waits on the dependency.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio import to_thread

from forgesyte import __version__
from forgesyte.faults import Dependency
from forgesyte.jobs.store import JobMonitoring
from forgesyte.storage.base import Storage

HEALTH_CACHE_S = 1.0  # seconds an answer is given again before the checks run again
PROBE_TIMEOUT_S = 2.0  # seconds a check may take before its dependency counts as down
# a key no object is stored under: asking whether it exists is a cheap round trip (S3:
# one HEAD answered 404), and an answer either way means storage answers
PROBE_KEY = "health/00000000-0000-0000-0000-000000000000.probe"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthAnswer:
    """One health answer, ready to send: its status (200, or 503 when a dependency is
    down) and its JSON body."""

    status_code: int
    body: bytes
    checked_at: float  # time.monotonic() of its checks


class HealthProbe:
    """Checks the database (counting the jobs by state) and storage, at most once per
    HEALTH_CACHE_S; `answer` gives the latest answer, checking again when it is stale."""

    def __init__(
        self, store: JobMonitoring, storage: Storage, child_memory_mb: int | None = None
    ) -> None:
        self.store = store
        self.storage = storage
        self.child_memory_mb = child_memory_mb
        self._latest: HealthAnswer | None = None
        self._lock = anyio.Lock()  # one round of checks at a time; the others wait for it
        self._waiting: set[Dependency] = set()  # checks whose thread has not returned
        self._waiting_lock = threading.Lock()
        self._down: set[Dependency] = set()

    async def answer(self) -> HealthAnswer:
        """The latest answer: at most HEALTH_CACHE_S old, or the one before while the checks
        that replace it run (at most PROBE_TIMEOUT_S more)."""
        latest = self._latest
        if latest is not None and time.monotonic() - latest.checked_at < HEALTH_CACHE_S:
            return latest
        if latest is not None and self._lock.locked():
            return latest  # another call is checking: no wait for its answer
        async with self._lock:
            latest = self._latest  # checked by another caller while this one waited
            if latest is not None and time.monotonic() - latest.checked_at < HEALTH_CACHE_S:
                return latest
            self._latest = await self._check_all()
            return self._latest

    async def _check_all(self) -> HealthAnswer:
        checked_at = time.monotonic()
        results: dict[Dependency, tuple[bool, Any]] = {}

        async def check(dependency: Dependency, call: Callable[[], Any]) -> None:
            results[dependency] = await self._check(dependency, call)

        async with anyio.create_task_group() as checks:
            checks.start_soon(check, Dependency.DATABASE, self.store.count_by_status)
            checks.start_soon(check, Dependency.STORAGE, lambda: self.storage.exists(PROBE_KEY))
        database_ok, counts = results[Dependency.DATABASE]
        storage_ok, _ = results[Dependency.STORAGE]
        status = "ok" if database_ok and storage_ok else "unavailable"
        if database_ok and not storage_ok:
            status = "degraded"  # reads of job states still work; submits and results do not
        body = {
            "status": status,
            "version": __version__,
            "checks": {
                Dependency.DATABASE.value: "ok" if database_ok else "down",
                Dependency.STORAGE.value: "ok" if storage_ok else "down",
            },
            "jobs": counts if database_ok else None,
            "child_memory_mb": self.child_memory_mb,
        }
        return HealthAnswer(
            200 if status == "ok" else 503,
            json.dumps(body, separators=(",", ":")).encode(),
            checked_at,
        )

    async def _check(self, dependency: Dependency, call: Callable[[], Any]) -> tuple[bool, Any]:
        """(whether the dependency answered within PROBE_TIMEOUT_S, what call returned)."""
        with self._waiting_lock:
            if dependency in self._waiting:  # the last check is still waiting on it
                return self._noted(dependency, False, "still no answer")
            self._waiting.add(dependency)

        def run() -> Any:
            try:
                return call()
            finally:
                with self._waiting_lock:
                    self._waiting.discard(dependency)

        with anyio.move_on_after(PROBE_TIMEOUT_S):
            try:
                return self._noted(
                    dependency, True, await to_thread.run_sync(run, abandon_on_cancel=True)
                )
            except Exception as exc:
                return self._noted(dependency, False, type(exc).__name__)
        return self._noted(dependency, False, f"no answer within {PROBE_TIMEOUT_S:.0f} s")

    def _noted(self, dependency: Dependency, ok: bool, outcome: Any) -> tuple[bool, Any]:
        """The check's result, logged when the dependency changes between up and down."""
        if not ok and dependency not in self._down:
            self._down.add(dependency)
            log.warning("health check: %s is down (%s)", dependency, outcome)
        elif ok and dependency in self._down:
            self._down.discard(dependency)
            log.info("health check: %s answers again", dependency)
        return ok, outcome
