"""The worker loop with a real analysis child: results, failures, isolation, shutdown."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobStore
from forgesyte.storage.base import Storage
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.protocol import AnalysisFailed, ChildReady, FailureReason
from tests.conftest import HALF_TIME_TEXT, SCORE_TEXT
from tests.support.storages import StorageBackend, StorageWrapper
from tests.support.videos import (
    garbage_after_ftyp_mp4,
    header_only_mp4,
    truncated_mp4,
    write_counter_video,
)
from tests.workers.conftest import Enqueue, MakeWorker, worker_config


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_counter_video(tmp_path_factory.mktemp("v") / "counter.mp4", 60, fps=30.0)


def job(store: JobStore, job_id: uuid.UUID) -> object:
    record = store.get(job_id)
    assert record is not None
    return record


# OCR costs ~10 s a run: once, on PostgreSQL and S3 (the e2e tests read text on DuckDB, local)
@pytest.mark.parametrize("storage_backend", ["s3"], indirect=True)
@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_ocr_job_completes_with_the_right_text_at_the_right_frames(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    score_video: Path,
) -> None:
    job_id = enqueue(score_video, "ocr_only", frame_stride=10)
    assert make_worker(preload=("ocr_only",)).run(burst=True) == 1
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.COMPLETED
    assert record.progress == 100.0 and record.output_path == f"results/{job_id}.jsonl"
    entries = [json.loads(line) for line in storage_backend.read(record.output_path).splitlines()]
    assert [entry["frame_index"] for entry in entries] == [0, 10]
    assert [entry["timestamp_s"] for entry in entries] == [0.0, 1.0]
    texts = [[line["text"] for line in e["result"]["ocr"]] for e in entries]
    assert texts == [[SCORE_TEXT], [HALF_TIME_TEXT]]
    line = entries[0]["result"]["ocr"][0]
    assert 0.5 < line["confidence"] <= 1.0 and len(line["box"]) == 4
    assert record.result_summary is not None and record.result_summary["frames_analysed"] == 2
    assert record.result_summary["video"]["width"] == 320


def test_results_are_byte_identical_for_the_same_input(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
) -> None:
    first = enqueue(counter_video, "testkit_grey", frame_stride=3)
    second = enqueue(counter_video, "testkit_grey", frame_stride=3)
    assert make_worker().run(burst=True) == 2
    results = [storage_backend.read(f"results/{job_id}.jsonl") for job_id in (first, second)]
    timelines = [storage_backend.read(f"timelines/{job_id}.json") for job_id in (first, second)]
    assert results[0] == results[1] and timelines[0] == timelines[1]
    assert len(results[0].splitlines()) == 20


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda src, dst: header_only_mp4(dst), id="header-only"),
        pytest.param(lambda src, dst: truncated_mp4(src, dst, 0.6), id="truncated"),
        pytest.param(lambda src, dst: garbage_after_ftyp_mp4(dst), id="garbage-after-ftyp"),
    ],
)
def test_corrupt_video_fails_its_job_and_the_next_one_completes(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    counter_video: Path,
    tmp_path: Path,
    make: object,
) -> None:
    broken = make(counter_video, tmp_path / "broken.mp4")  # type: ignore[operator]
    bad = enqueue(broken, "testkit_grey")
    good = enqueue(counter_video, "testkit_grey", max_frames=2)
    assert make_worker().run(burst=True) == 2
    failed, done = store.get(bad), store.get(good)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error_message is not None
    assert failed.error_message.startswith("video could not be decoded")
    assert done is not None and done.status is JobStatus.COMPLETED


@pytest.mark.parametrize(
    ("pipeline_id", "limits", "message"),
    [
        pytest.param("testkit_segfault", {}, "SIGSEGV", id="crash"),
        pytest.param("testkit_sleep", {"timeout_s": 1.0}, "timed out after 1 s", id="timeout"),
        pytest.param(
            "testkit_hog_memory", {"memory_cap_mb": 600}, "memory cap of 600 MiB", id="memory"
        ),
    ],
)
def test_a_runaway_child_fails_its_job_and_the_worker_goes_on(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    counter_video: Path,
    pipeline_id: str,
    limits: dict[str, float],
    message: str,
) -> None:
    runaway = enqueue(counter_video, pipeline_id)
    good = enqueue(counter_video, "testkit_grey", max_frames=2)
    assert make_worker(**limits).run(burst=True) == 2
    stopped, done = store.get(runaway), store.get(good)
    assert stopped is not None and stopped.status is JobStatus.FAILED
    assert stopped.error_message is not None and message in stopped.error_message
    assert done is not None and done.status is JobStatus.COMPLETED


@pytest.mark.parametrize(
    ("pipeline_id", "message"),
    [
        pytest.param("vanished_pipeline", "unknown pipeline 'vanished_pipeline'", id="unknown"),
        # a KeyError (a LookupError) inside a plugin is that plugin's error, not "unknown"
        pytest.param(
            "testkit_missing_key",
            "plugin testkit.missing_key failed (KeyError); the server log has the details",
            id="plugin-error",
        ),
    ],
)
def test_a_job_the_child_cannot_analyse_fails_with_the_reason(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    counter_video: Path,
    pipeline_id: str,
    message: str,
) -> None:
    job_id = enqueue(counter_video, pipeline_id)
    make_worker().run(burst=True)
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error_message == message


@pytest.mark.parametrize("storage_backend", ["local", "s3"], indirect=True)
def test_missing_video_in_storage_fails_the_job(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
) -> None:
    job_id = enqueue(counter_video, "testkit_grey")
    storage_backend.storage.delete(f"videos/{job_id}.mp4")
    make_worker().run(burst=True)
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error_message == "the uploaded video is missing from storage"


class CountingStore(SqlJobStore):
    """The real store, counting progress writes."""

    progress_writes: list[float]

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        self.progress_writes.append(progress)
        return super().set_progress(job_id, worker_id, progress, lease_seconds)


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)  # counts SQL progress writes
def test_progress_is_throttled_and_rises(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, counter_video: Path
) -> None:
    job_id = enqueue(counter_video, "testkit_sleep", max_frames=12)  # 12 x 0.2 s
    worker = make_worker()
    counting = CountingStore(store.engine)
    counting.progress_writes = []
    worker.runner.store = counting
    started = time.monotonic()
    worker.run(burst=True)
    elapsed = time.monotonic() - started
    writes = counting.progress_writes
    assert len(writes) >= 3, "progress is reported while the job runs"
    assert len(writes) <= elapsed / 0.25 + 2, "at most one write per progress interval"
    assert writes == sorted(writes) and writes[-1] < 100.0
    record = store.get(job_id)
    assert record is not None and record.progress == 100.0


def test_shutdown_hands_a_long_job_back_to_pending(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, counter_video: Path
) -> None:
    job_id = enqueue(counter_video, "testkit_sleep")  # 60 frames x 0.2 s: 12 s
    stop = threading.Event()
    worker = make_worker(
        stop_event=stop, config=worker_config(lease_seconds=10, shutdown_grace_s=0.5)
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 30
    while (record := store.get(job_id)) is not None and record.status is JobStatus.PENDING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.PENDING
    assert record.attempts == 0 and record.worker_id is None


def test_a_job_whose_lease_was_taken_is_abandoned(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, counter_video: Path
) -> None:
    job_id = enqueue(counter_video, "testkit_sleep")
    worker = make_worker(config=worker_config(lease_seconds=0.6))
    thread = threading.Thread(target=worker.run, kwargs={"burst": True})
    thread.start()
    deadline = time.monotonic() + 30
    while (record := store.get(job_id)) is not None and record.status is JobStatus.PENDING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # another worker's recovery sees an expired lease only if heartbeats stop; force it:
    store.fail(job_id, worker.worker_id, "taken away by an operator")
    thread.join(timeout=15)
    assert not thread.is_alive()
    record = store.get(job_id)
    assert record is not None and record.error_message == "taken away by an operator"


class NeverStarts(AnalysisExecutor):
    """An executor whose analysis process cannot be started (a broken install, no memory)."""

    def start(self) -> ChildReady | AnalysisFailed:
        return AnalysisFailed(
            FailureReason.CHILD_START,
            "the analysis process died while starting (killed by SIGKILL)",
        )


def test_a_child_that_cannot_start_hands_the_job_back_then_fails_it(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, counter_video: Path
) -> None:
    job_id = enqueue(counter_video, "testkit_grey")
    worker = make_worker(config=worker_config(max_attempts=2, poll_interval_s=0.01))
    worker.runner.executor = NeverStarts(timeout_s=60.0)
    for attempt in (1, 2):
        claimed = store.claim_next(worker.worker_id, 30)
        assert claimed is not None and claimed.attempts == attempt
        worker.process(claimed)
        record = store.get(job_id)
        assert record is not None
    assert record.status is JobStatus.FAILED
    assert record.error_message is not None
    assert "could not start" in record.error_message and "2 attempts" in record.error_message


class SlowDownload(StorageWrapper):
    """Storage whose downloads take `periods` lease periods, while other workers sweep.

    While a download waits, it does what every other worker does: sweeps the expired leases
    (five times a period), so a lease that is not renewed meanwhile is taken away.
    """

    def __init__(self, storage: Storage, store: JobStore, lease_seconds: float, periods: int):
        super().__init__(storage)
        self._store = store
        self._lease_seconds = lease_seconds
        self._periods = periods
        self.requeued: list[uuid.UUID] = []
        self.downloads = 0

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Hand over the file after `periods` lease periods of sweeping."""
        self.downloads += 1
        done = threading.Event()
        deadline = time.monotonic() + self._periods * self._lease_seconds
        while not done.wait(min(self._lease_seconds / 5, max(0.0, deadline - time.monotonic()))):
            self.requeued += self._store.recover_expired(max_attempts=3).requeued
            if time.monotonic() >= deadline:
                done.set()
        with self._storage.local_copy(key) as path:
            yield path


@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
def test_a_download_longer_than_three_leases_keeps_the_lease(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
) -> None:
    """The lease keeper renews from the claim on: a slow download is not a lost worker."""
    lease_seconds = 1.0
    job_id = enqueue(counter_video, "testkit_grey", max_frames=2)
    worker = make_worker(config=worker_config(lease_seconds=lease_seconds))
    slow = SlowDownload(storage_backend.storage, store, lease_seconds, periods=3)
    worker.runner.storage = slow  # type: ignore[assignment]
    started = time.monotonic()
    assert worker.run(burst=True) == 1
    assert time.monotonic() - started >= 3 * lease_seconds
    assert slow.downloads == 1 and slow.requeued == []
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.COMPLETED
    assert record.attempts == 1
