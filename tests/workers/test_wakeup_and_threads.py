"""Idle workers woken by an in-process enqueue; thread limits for analysis children."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from forgesyte.jobs.changes import JobWakeup
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import NewJob
from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.ocr import OcrRead, engine_params, plugin
from forgesyte.storage.base import video_key
from forgesyte.storage.local import LocalStorage
from forgesyte.workers.executor import AnalysisExecutor, limit_child_threads
from forgesyte.workers.shared_cores import SharedCores, thread_counts, threads_for
from forgesyte.workers.worker import Worker
from tests.support.videos import write_counter_video
from tests.workers.conftest import TESTKIT_PIPELINES, worker_config


def test_wakeup_returns_at_once_for_a_notification_it_has_not_seen() -> None:
    wakeup = JobWakeup()
    seen = wakeup.generation()
    wakeup.notify()  # between the claim and the wait: must not be lost
    started = time.monotonic()
    assert wakeup.wait(seen, 5.0)
    assert time.monotonic() - started < 1.0
    assert not wakeup.wait(wakeup.generation(), 0.05)


class _WatchedWakeup(JobWakeup):
    """A JobWakeup that tells when a worker has started waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, seen: int, timeout_s: float) -> bool:
        """Note the wait, then wait."""
        self.waiting.set()
        return super().wait(seen, timeout_s)


def _noop_job(job_id: uuid.UUID) -> NewJob:
    """A testkit_noop job of every frame, its video under the job's key."""
    return NewJob(
        job_id=job_id,
        pipeline_id="testkit_noop",
        options={"frame_stride": 1, "max_frames": None},
        input_path=video_key(job_id),
    )


def test_an_enqueue_wakes_an_idle_worker_long_before_its_poll(
    memory_store: InMemoryJobStore, local_storage: LocalStorage, tmp_path: Path
) -> None:
    store = memory_store
    wakeup = _WatchedWakeup()
    store.add_change_listener(wakeup.on_change)
    stop = threading.Event()
    executor = AnalysisExecutor(pipelines_dir=str(TESTKIT_PIPELINES), preload=(), timeout_s=60.0)
    config = worker_config(poll_interval_s=60.0)
    worker = Worker(store, local_storage, executor, config, stop, wakeup=wakeup)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # the worker found the queue empty and waits (up to 60 s)
        assert wakeup.waiting.wait(120), "the worker never waited for a job"
        video = write_counter_video(tmp_path / "one.mp4", 1)
        job_id = uuid.uuid4()
        local_storage.put_bytes(video_key(job_id), video.read_bytes())
        store.create(_noop_job(job_id))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            record = store.get(job_id)
            assert record is not None
            if record.status is JobStatus.COMPLETED:
                break
            time.sleep(0.02)
        assert record.status is JobStatus.COMPLETED
    finally:
        stop.set()
        wakeup.notify()
        thread.join(timeout=30)
    assert not thread.is_alive()


class _CountedStore(InMemoryJobStore):
    """Counts the idle looks for work (has_pending_work)."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def has_pending_work(self) -> bool:
        """Count, then answer."""
        self.looks += 1
        return super().has_pending_work()


def test_idle_workers_of_a_process_look_once_per_interval_between_them(
    local_storage: LocalStorage, tmp_path: Path
) -> None:
    store = _CountedStore()
    wakeup = _WatchedWakeup()  # not a listener: jobs created here come as from elsewhere
    stop = threading.Event()
    interval_s = 0.2
    workers = [
        Worker(
            store,
            local_storage,
            AnalysisExecutor(pipelines_dir=str(TESTKIT_PIPELINES), preload=(), timeout_s=60.0),
            worker_config(poll_interval_s=interval_s),
            stop,
            wakeup=wakeup,
        )
        for _ in range(3)
    ]
    threads = [threading.Thread(target=worker.run) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        assert wakeup.waiting.wait(120), "no worker ever waited for a job"
        time.sleep(0.5)  # every child is up; the workers only poll now
        before, idle_s = store.looks, 2.0
        time.sleep(idle_s)
        looks = store.looks - before
        # three workers looking each would make 30 looks; one per interval makes 10
        # (fewer when the machine is loaded: the looks still go on)
        assert 4 <= looks <= 13, looks
        job_id = uuid.uuid4()  # a job no notification announces: found by the next look
        store.create(_noop_job(job_id))
        created = time.monotonic()
        while (record := store.get(job_id)) is not None and record.status is JobStatus.PENDING:
            # one interval and a look; the margin is for a loaded machine
            assert time.monotonic() - created < 5 * interval_s, "not claimed by the next look"
            time.sleep(0.01)
    finally:
        stop.set()
        wakeup.notify()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)


def test_a_child_alone_takes_the_idle_cores_and_all_busy_share_them() -> None:
    assert [threads_for(2, 2, busy) for busy in (1, 2)] == [2, 1]
    assert thread_counts(2, 2) == (1, 2)
    assert thread_counts(2, 1) == (2,)  # one worker: always the whole machine
    # beyond LONE_CHILD_MAX_THREADS a child alone gets no more, but never less than its share
    assert [threads_for(16, 16, busy) for busy in (1, 3, 5, 16)] == [4, 4, 3, 1]
    assert threads_for(16, 2, 1) == threads_for(16, 2, 2) == 8
    assert thread_counts(2, 8) == (1, 2)  # more workers than cores
    assert threads_for(2, 2, 0) == 2  # a child loading its models counts itself alone


def test_shared_cores_count_busy_children_and_workers_holding_work() -> None:
    cores = SharedCores(2, 2)
    share = cores.child_threads
    assert share is not None and share.counts == (1, 2) and cores.share == 1
    assert cores.free_workers == 2
    with cores.holding("a"), cores.working():
        assert share.threads_now() == 2 and cores.free_workers == 1
        with cores.holding("a"):  # the coordinator analysing its own segment
            assert cores.free_workers == 1
        with cores.holding("b"), cores.working():
            assert share.threads_now() == 1 and cores.free_workers == 0
        assert share.threads_now() == 2 and cores.free_workers == 1
    assert cores.free_workers == 2
    fixed = SharedCores(2, 2, fixed_threads=3)
    assert fixed.child_threads is None and fixed.share == 3


def test_child_thread_limits_go_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
    for name in names:
        monkeypatch.setenv(name, "")  # recorded, so the test's changes are undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the operator's choice is kept
    limit_child_threads(1)
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["OPENCV_FOR_THREADS_NUM"] == "1"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"
    with pytest.raises(ValueError):
        limit_child_threads(0)


def test_ocr_threads_come_from_the_plugin_config() -> None:
    assert plugin().tools["read"].threads is None  # type: ignore[attr-defined]
    configured = plugin(PluginConfig(analysis_threads=2)).tools["read"]
    assert configured.threads == 2  # type: ignore[attr-defined]
    assert not any(key.startswith("EngineConfig") for key in engine_params(None))
    params = engine_params(1)
    assert params["EngineConfig.onnxruntime.intra_op_num_threads"] == 1
    assert params["EngineConfig.onnxruntime.inter_op_num_threads"] == 1


def test_ocr_load_opens_every_model_before_the_first_frame() -> None:
    tool = OcrRead(threads=1)
    tool.load()
    engine = tool._engine
    assert engine.text_det is not None
    assert engine.text_cls is None  # the angle classifier is off unless asked for
    assert engine.text_rec is not None
