"""A child's threads follow how many of its process's children work, frame by frame.

The testkit_threads pipeline records the OpenCV threads each frame ran with (set by the
child from its thread share, read from the pool's shared memory, as its ONNX tools do
call by call) and sleeps 0.2 s a frame.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobStore
from forgesyte.storage.base import results_key
from forgesyte.workers.shared_cores import SharedCores
from tests.support.storages import StorageBackend
from tests.support.videos import write_counter_video
from tests.workers.conftest import Enqueue, MakeWorker, worker_config

NOT_SPLIT = worker_config(segment_frames=0, lease_seconds=10, progress_interval_s=0.1)


def frame_threads(backend: StorageBackend, job_id: uuid.UUID) -> list[int]:
    """The OpenCV threads each analysed frame of a testkit_threads job ran with."""
    lines = backend.read(results_key(job_id)).decode().splitlines()
    return [json.loads(line)["result"]["threads"] for line in lines]


def test_a_child_alone_takes_both_cores_and_one_beside_another(
    make_worker: MakeWorker, enqueue: Enqueue, storage_backend: StorageBackend, tmp_path: Path
) -> None:
    video = write_counter_video(tmp_path / "five.mp4", 5)
    cores = SharedCores(cores=2, workers=2)
    worker = make_worker(cores=cores, config=NOT_SPLIT)
    beside = enqueue(video, "testkit_threads")
    with cores.working():  # the other worker's child works all along
        assert worker.run(burst=True) == 1
    alone = enqueue(video, "testkit_threads")
    assert worker.run(burst=True) == 1
    # the worker counts its own child busy: beside another, 2 // 2 threads
    assert frame_threads(storage_backend, beside) == [1] * 5
    assert frame_threads(storage_backend, alone) == [2] * 5


def test_a_child_drops_back_at_its_next_frame_when_another_starts(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    tmp_path: Path,
) -> None:
    video = write_counter_video(tmp_path / "twenty.mp4", 20)  # 20 x 0.2 s
    cores = SharedCores(cores=2, workers=2)
    worker = make_worker(cores=cores, config=NOT_SPLIT)
    job_id = enqueue(video, "testkit_threads")
    thread = threading.Thread(target=worker.run, kwargs={"burst": True})
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (record := store.get(job_id)) is not None and record.progress < 20:
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.02)
        with cores.working():  # another job starts
            thread.join(timeout=60)
    finally:
        thread.join(timeout=60)
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.COMPLETED
    threads = frame_threads(storage_backend, job_id)
    assert threads[0] == 2 and threads[-1] == 1, threads
    assert threads == sorted(threads, reverse=True), "it dropped back once, for good"
