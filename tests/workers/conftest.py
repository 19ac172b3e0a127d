"""Workers with real analysis child processes, on the in-memory job store and local storage.

These tests are about the worker loop, not the database or the storage: ``store`` is the
in-memory store and ``storage_backend`` a local folder here (the store contract tests run
the same semantics on DuckDB and PostgreSQL, the storage tests local and S3). A test about
a database or a storage under the worker binds it: ``@pytest.mark.parametrize("store",
["postgresql"], indirect=True)``, ``@pytest.mark.parametrize("storage_backend", ["s3"],
indirect=True)``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forgesyte.jobs.store import JobStore, NewJob
from forgesyte.settings import Settings
from forgesyte.storage.base import video_key
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.shared_cores import SharedCores
from forgesyte.workers.worker import Worker, WorkerConfig
from tests.support.storages import StorageBackend, make_storage_backend
from tests.support.stores import make_store

TESTKIT_PIPELINES = Path(__file__).resolve().parents[1] / "plugin_dist" / "pipelines"

Enqueue = Callable[..., uuid.UUID]


def worker_config(**settings: Any) -> WorkerConfig:
    """A WorkerConfig from Settings with these fields set (the rest: Settings' defaults)."""
    return WorkerConfig.from_settings(Settings(**settings))


MakeWorker = Callable[..., Worker]


@pytest.fixture(params=["memory"])
def store(request: pytest.FixtureRequest) -> JobStore:
    """The job store under the worker: in memory unless the test binds a database."""
    return make_store(request.param, request)


@pytest.fixture(params=["local"])
def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    """The storage under the worker: a local folder unless the test binds S3."""
    return make_storage_backend(request.param, request, tmp_path)


@pytest.fixture
def enqueue(store: JobStore, storage_backend: StorageBackend) -> Enqueue:
    """Store a video and create its pending job, as the API would."""

    def add(video: Path, pipeline_id: str = "ocr_only", **options: object) -> uuid.UUID:
        job_id = uuid.uuid4()
        storage_backend.storage.put_bytes(video_key(job_id), video.read_bytes())
        store.create(
            NewJob(
                job_id=job_id,
                pipeline_id=pipeline_id,
                options={"frame_stride": 1, "max_frames": None, **options},
                input_path=video_key(job_id),
            )
        )
        return job_id

    return add


@pytest.fixture
def make_worker(store: JobStore, storage_backend: StorageBackend) -> Iterator[MakeWorker]:
    """Build workers whose children know the testkit pipelines; stopped at teardown. Workers
    given one `SharedCores` share it as a pool's do."""
    workers: list[Worker] = []

    def make(
        *,
        preload: tuple[str, ...] = (),
        timeout_s: float = 60.0,
        memory_cap_mb: int | None = None,
        config: WorkerConfig | None = None,
        stop_event: threading.Event | None = None,
        cores: SharedCores | None = None,
    ) -> Worker:
        executor = AnalysisExecutor(
            pipelines_dir=str(TESTKIT_PIPELINES),
            preload=preload,
            timeout_s=timeout_s,
            memory_cap_mb=memory_cap_mb,
            cores=cores,
        )
        worker = Worker(
            store,
            storage_backend.storage,
            executor,
            config or worker_config(lease_seconds=10, progress_interval_s=0.25),
            stop_event or threading.Event(),
            cores=cores,
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.runner.executor.stop()
