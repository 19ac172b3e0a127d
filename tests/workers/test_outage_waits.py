"""A worker waits out storage and the database being away, with a real analysis child.

The faults come from wrappers of the real store and the real local storage that fail for a
while as an unreachable dependency does (a transient error, as storage/ and db/ classify
them; tests/storage and tests/db check that classification against the real libraries,
tests/faults/test_outages.py the whole deployment against real network faults).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord, JobStore
from forgesyte.storage.base import StorageWriter, results_key
from forgesyte.storage.errors import unavailable
from forgesyte.workers.protocol import AnalysisRequest
from forgesyte.workers.worker import Worker
from tests.support.storages import StorageBackend, StorageWrapper
from tests.support.videos import write_counter_video
from tests.workers.conftest import Enqueue, MakeWorker, worker_config

DOWN = OSError(errno.EIO, "Input/output error")  # transient, as storage/errors.py says
REFUSED = OSError(errno.EACCES, "Permission denied")  # permanent


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_counter_video(tmp_path_factory.mktemp("v") / "counter.mp4", 6, fps=10.0)


class Outage:
    """A dependency away for `seconds` from the first call after `start(seconds)` (so an
    analysis child's start does not eat into it); a call made then raises `error()`."""

    def __init__(self, error: Callable[[], Exception]) -> None:
        self.error = error
        self.seconds = 0.0
        self.until: float | None = None
        self.calls = 0
        self.failed = 0

    def start(self, seconds: float) -> None:
        self.seconds, self.until = seconds, None

    def check(self) -> None:
        self.calls += 1
        if self.until is None:
            self.until = time.monotonic() + self.seconds
        if time.monotonic() < self.until:
            self.failed += 1
            raise self.error()


class FlakyStorage(StorageWrapper):
    """Local storage whose reads (`reads`) and writes (`writes`) fail while out."""

    def __init__(self, backend: StorageBackend, error: OSError = DOWN) -> None:
        super().__init__(backend.storage)
        self.reads = Outage(lambda: unavailable("cannot read from storage", error))
        self.writes = Outage(lambda: unavailable("cannot write to storage", error))

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        self.reads.check()
        return self._storage.local_copy(key)  # type: ignore[attr-defined,no-any-return]

    def open_writer(self, key: str) -> StorageWriter:
        self.writes.check()
        return self._storage.open_writer(key)  # type: ignore[attr-defined,no-any-return]


class FlakyStore:
    """The job store, whose completions (`database`) and looks for work (`idle`) fail while
    the database is out; `lose_answer`
    makes the next completion be written but its answer lost, as a dropped connection
    after the commit does."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        refused = psycopg.OperationalError("connection failed: Connection refused")
        self.database = Outage(lambda: OperationalError("UPDATE jobs", {}, refused))
        self.idle = Outage(lambda: OperationalError("SELECT", {}, refused))  # an idle loop's look
        self.lose_answer = False
        self.completions = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def has_pending_work(self) -> bool:
        self.idle.check()
        answer: bool = self._store.has_pending_work()
        return answer

    def complete(self, *args: Any) -> bool:
        self.database.check()
        done: bool = self._store.complete(*args)
        self.completions += int(done)  # writes that took effect
        if self.lose_answer:
            self.lose_answer = False
            raise self.database.error()
        return done


@dataclass
class Scene:
    """A job on a flaky storage (and, through `flaky_store`, a flaky store) and its worker."""

    store: FlakyStore
    storage: FlakyStorage
    backend: StorageBackend
    make_worker: MakeWorker
    job_id: uuid.UUID

    def worker(self, **settings: Any) -> Worker:
        """A worker on the flaky store and storage (lease 10 s unless settings say)."""
        worker = self.make_worker(config=worker_config(**{"lease_seconds": 10, **settings}))
        worker.runner.storage = self.storage
        worker.runner.store = self.store  # type: ignore[assignment]
        return worker

    def record(self) -> JobRecord:
        """The job as it stands."""
        record = self.store.get(self.job_id)
        assert record is not None
        return record


@pytest.fixture(params=[DOWN])
def scene(
    request: pytest.FixtureRequest,
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    video: Path,
) -> Scene:
    """A pending testkit_grey job, its storage failing with the param's error when out."""
    storage = FlakyStorage(storage_backend, request.param)
    job_id = enqueue(video, "testkit_grey")
    return Scene(FlakyStore(store), storage, storage_backend, make_worker, job_id)


def _counting_analyses(worker: Worker) -> list[int]:
    """Counts the analysis requests the worker's child gets (not its media step's)."""
    analyses: list[int] = []
    executor = worker.runner.executor
    run = executor.run

    def counted(request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, AnalysisRequest):
            analyses.append(1)
        return run(request, *args, **kwargs)

    executor.run = counted  # type: ignore[method-assign]
    return analyses


def test_a_video_unreadable_for_a_while_is_waited_for(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    scene.storage.reads.start(1.5)
    with caplog.at_level(logging.INFO, logger="forgesyte.workers.job_run"):
        assert scene.worker().run(burst=True) == 1
    record = scene.record()
    assert record.status is JobStatus.COMPLETED, record
    assert record.attempts == 1 and scene.storage.reads.failed >= 2
    assert "storage unreachable while reading its video" in caplog.text
    assert "storage answered again after" in caplog.text


def test_past_the_step_limit_the_job_is_handed_back_without_spending_an_attempt(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    worker = scene.worker(max_attempts=1)
    worker.runner.outages.step_limit_s = 0.5
    scene.storage.reads.start(3.0)
    with caplog.at_level(logging.INFO):
        assert worker.run(burst=True) == 1
    record = scene.record()
    assert record.status is JobStatus.COMPLETED, record
    handed_back = caplog.text.count(f"job {scene.job_id}: handed back to pending")
    assert handed_back >= 2  # claimed again each time, and never out of attempts (1)
    assert record.attempts == 1


def test_a_fault_longer_than_the_tolerance_fails_the_job_saying_so(scene: Scene) -> None:
    scene.storage.reads.start(60)
    started = time.monotonic()
    assert scene.worker(outage_tolerance_s=1.0).run(burst=True) == 1
    assert time.monotonic() - started < 10
    record = scene.record()
    assert record.status is JobStatus.FAILED
    assert record.error_message == (
        "the uploaded video could not be read from storage: cannot read from storage: "
        "Input/output error; storage was unreachable for over 1 s"
    )


@pytest.mark.parametrize("scene", [REFUSED], indirect=True)
def test_a_permanent_storage_error_fails_the_job_at_once(scene: Scene) -> None:
    scene.storage.reads.start(60)
    assert scene.worker().run(burst=True) == 1
    record = scene.record()
    assert record.status is JobStatus.FAILED
    assert record.error_message == (
        "the uploaded video could not be read from storage: "
        "cannot read from storage: Permission denied"
    )
    assert scene.storage.reads.calls == 1


def test_results_wait_in_place_under_the_kept_lease_and_are_not_analysed_again(
    scene: Scene,
) -> None:
    worker = scene.worker(lease_seconds=1.0)  # the outage outlasts the lease
    analyses = _counting_analyses(worker)
    scene.storage.writes.start(3.0)
    # another worker's sweep, all the while: a lapsed lease would put the job back
    stop = threading.Event()
    swept: list[int] = []

    def sweep() -> None:
        while not stop.wait(0.2):
            swept.append(len(scene.store.recover_expired(max_attempts=3).requeued))

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        assert worker.run(burst=True) == 1
    finally:
        stop.set()
        sweeper.join()
    record = scene.record()
    assert record.status is JobStatus.COMPLETED, record
    assert scene.storage.writes.failed >= 2 and analyses == [1]
    assert sum(swept) == 0 and record.attempts == 1
    assert scene.backend.read(results_key(scene.job_id)).count(b"\n") == 6


def test_results_unstored_past_the_tolerance_fail_the_job_saying_so(scene: Scene) -> None:
    scene.storage.writes.start(60)
    assert scene.worker(outage_tolerance_s=1.0).run(burst=True) == 1
    record = scene.record()
    assert record.status is JobStatus.FAILED
    assert record.error_message == (
        "the results could not be stored: cannot write to storage: Input/output error; "
        "storage was unreachable for over 1 s"
    )
    assert scene.backend.contents() == [f"videos/{scene.job_id}.mp4"]


@pytest.mark.parametrize("fault", ["away for 1.5 s", "its answer lost after the commit"])
def test_a_completion_is_recorded_through_a_database_fault(
    scene: Scene, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    if fault.startswith("away"):
        scene.store.database.start(1.5)
    else:
        scene.store.lose_answer = True  # the row tells the worker it completed the job
    with caplog.at_level(logging.INFO):
        assert scene.worker().run(burst=True) == 1
    assert scene.record().status is JobStatus.COMPLETED
    assert scene.store.completions == 1
    assert "database unreachable while recording its completion" in caplog.text
    assert f"job {scene.job_id}: completed" in caplog.text
    assert "results discarded" not in caplog.text
    assert scene.backend.read(results_key(scene.job_id))  # kept
    if fault.startswith("away"):
        assert scene.store.database.failed >= 2


def test_an_idle_worker_waits_for_the_database_and_keeps_its_analysis_child(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    worker = scene.worker()
    executor = worker.runner.executor
    children: set[int | None] = set()
    has_pending_work = scene.store.has_pending_work

    def looking() -> bool:
        children.add(executor.child_pid)  # the child each look is made with
        return has_pending_work()

    scene.store.has_pending_work = looking  # type: ignore[method-assign]
    scene.store.idle.start(2.0)
    with caplog.at_level(logging.INFO, logger="forgesyte.workers.outages"):
        assert worker.run(burst=True) == 1
    assert scene.record().status is JobStatus.COMPLETED
    assert len(children) == 1 and None not in children  # one child all along
    assert scene.store.idle.failed >= 2
    assert caplog.text.count("database unreachable while looking for work") == 1
    assert "looking for work again after" in caplog.text
