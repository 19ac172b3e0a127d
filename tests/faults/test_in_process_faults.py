"""Faults that a real server cannot be made to show on demand: flaky storage, a failing database.

The worker and the API run in-process here, on a real DuckDB file, real local storage and
a real analysis child; only the failing call is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from starlette.requests import Request

from forgesyte.api import upload
from forgesyte.api.app import create_app
from forgesyte.api.context import AppContext
from forgesyte.db.tables import Job
from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobRecord, JobStore, NewJob
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.runtime import sweep_storage
from forgesyte.settings import Settings
from forgesyte.storage.base import StorageUnavailable, video_key
from forgesyte.storage.local import LocalStorage
from forgesyte.submission.errors import UploadStalled
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.worker import Worker, WorkerConfig
from tests.faults.helpers import BOUNDARY, assert_no_leak, file_part_prologue
from tests.support.server import TESTKIT_PIPELINES


class FlakyStorage(LocalStorage):
    """Local storage whose reads of chosen keys fail (transiently, as storage that does not
    answer) a given number of times."""

    def __init__(self, root: Path, failures: dict[str, int]) -> None:
        super().__init__(root)
        self.failures = failures
        self.reads: dict[str, int] = {}

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Fail while the key has failures left, then hand over the file."""
        self.reads[key] = self.reads.get(key, 0) + 1
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            raise StorageUnavailable("cannot read from storage: Input/output error")
        with super().local_copy(key) as path:
            yield path


def _enqueue(store: JobStore, storage: LocalStorage, video: Path) -> uuid.UUID:
    job_id = uuid.uuid4()
    storage.put_bytes(video_key(job_id), video.read_bytes())
    store.create(
        NewJob(
            job_id=job_id,
            pipeline_id="testkit_grey",
            options={"frame_stride": 1, "max_frames": None},
            input_path=video_key(job_id),
        )
    )
    return job_id


def test_storage_read_errors_are_waited_out_then_fail_the_job_clearly(
    store: JobStore, tmp_path: Path, small_video: Path
) -> None:
    storage = FlakyStorage(tmp_path / "storage", {})
    broken = _enqueue(store, storage, small_video)
    flaky = _enqueue(store, storage, small_video)
    storage.failures = {video_key(broken): 10_000, video_key(flaky): 3}
    executor = AnalysisExecutor(pipelines_dir=str(TESTKIT_PIPELINES), preload=(), timeout_s=60.0)
    worker = Worker(
        store,
        storage,
        executor,
        WorkerConfig.from_settings(Settings(lease_seconds=10, outage_tolerance_s=1.5)),
        threading.Event(),
    )
    assert worker.run(burst=True) == 2

    failed = store.get(broken)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error_message == (
        "the uploaded video could not be read from storage: "
        "cannot read from storage: Input/output error; storage was unreachable for over 1.5 s"
    )
    assert storage.reads[video_key(broken)] > 3
    recovered = store.get(flaky)
    assert recovered is not None and recovered.status is JobStatus.COMPLETED, recovered
    assert storage.reads[video_key(flaky)] == 4


class FailingStore(SqlJobStore):
    """The real store, with one method failing as a lost database connection would."""

    failing: str = ""

    def _fail(self) -> None:
        raise OperationalError("SELECT", {}, Exception("connection to the database was lost"))

    def get_by_idempotency_key(self, key: str) -> JobRecord | None:
        """Fail when told to."""
        if self.failing == "get_by_idempotency_key":
            self._fail()
        return super().get_by_idempotency_key(key)

    def create(self, new: NewJob) -> JobRecord:
        """Fail when told to."""
        if self.failing == "create":
            self._fail()
        return super().create(new)


@pytest.mark.parametrize("failing", ["get_by_idempotency_key", "create"])
def test_a_database_error_during_submit_gives_503_and_keeps_nothing(
    store: JobStore, tmp_path: Path, small_video: Path, failing: str
) -> None:
    earlier_jobs = 0
    if failing == "get_by_idempotency_key":
        # the key is looked up once it is found taken: a job holds it already
        earlier_jobs = 1
        store.create(
            NewJob(
                job_id=uuid.uuid4(),
                pipeline_id="ocr_only",
                options={},
                input_path=video_key(uuid.uuid4()),
                idempotency_key="retry-me",
            )
        )
    failing_store = FailingStore(store.engine)
    failing_store.failing = failing
    registry = discover_plugins()
    context = AppContext(
        settings=Settings(data_dir=tmp_path),
        store=failing_store,
        storage=LocalStorage(tmp_path / "storage"),
        registry=registry,
        catalog=load_catalog(registry),
    )
    with TestClient(create_app(context), raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/video/submit",
            headers={"Idempotency-Key": "retry-me"},
            files={"file": ("clip.mp4", small_video.read_bytes(), "video/mp4")},
        )
    assert response.status_code == 503, response.text
    assert_no_leak(response.text, tmp_path)
    storage_root = tmp_path / "storage"
    leftovers = [p for p in storage_root.rglob("*") if p.is_file()] if storage_root.exists() else []
    assert leftovers == []
    assert sum(store.count_by_status().values()) == earlier_jobs


def _file(path: Path, content: bytes, age_s: float = 0.0) -> Path:
    path.write_bytes(content)
    moment = time.time() - age_s
    os.utime(path, (moment, moment))
    return path


def test_the_start_up_sweep_removes_only_what_a_crash_left(
    store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    assert sweep_storage(store, storage) == []  # no storage folder yet
    hour = 3600.0
    job_id = uuid.uuid4()
    storage.put_bytes(video_key(job_id), b"video")
    store.create(NewJob(job_id, "testkit_grey", {}, video_key(job_id)))
    with store.session() as session, session.begin():
        session.execute(update(Job).values(created_at=utcnow() - timedelta(hours=2)))
    videos, results = tmp_path / "storage" / "videos", tmp_path / "storage" / "results"
    results.mkdir()
    has_row = _file(videos / f"{job_id}.mp4", b"video", 3 * hour)
    # stored, then the process died before inserting its row
    crash_orphan = _file(videos / f"{uuid.uuid4()}.mp4", b"orphan", hour)
    before_the_database = _file(videos / f"{uuid.uuid4()}.mp4", b"another database's?", 3 * hour)
    row_coming = _file(videos / f"{uuid.uuid4()}.mp4", b"its row is being inserted")
    stale_upload = _file(videos / f".{uuid.uuid4()}.mp4.abc123", b"half an upload", hour)
    stale_results = _file(results / f".{uuid.uuid4()}.json.def456", b"{", hour)
    live_upload = _file(videos / f".{uuid.uuid4()}.mp4.ghi789", b"still streaming")
    foreign = _file(videos / "README.txt", b"not ours", hour)

    with caplog.at_level(logging.INFO, logger="forgesyte.runtime"):
        removed = sweep_storage(store, storage)
    assert sorted(removed) == sorted(
        [
            f"videos/{crash_orphan.name}",
            f"videos/{stale_upload.name}",
            f"results/{stale_results.name}",
        ]
    )
    for path in (crash_orphan, stale_upload, stale_results):
        assert not path.exists()
    for path in (has_row, before_the_database, row_coming, live_upload, foreign):
        assert path.exists()
    assert "older than every job" in caplog.text

    # a videos "folder" that is a file does not stop the server from starting
    blocked = LocalStorage(tmp_path / "blocked")
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "videos").write_text("not a folder")
    assert sweep_storage(store, blocked) == []


def test_a_stalled_upload_is_dropped_after_the_idle_timeout(
    tmp_path: Path, small_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that stops sending but keeps the connection open holds nothing for long."""
    monkeypatch.setattr(upload, "IDLE_TIMEOUT_S", 0.3)
    storage = LocalStorage(tmp_path / "storage")
    writer = storage.open_writer(video_key(uuid.uuid4()))
    body = file_part_prologue() + small_video.read_bytes()[:1000]
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": True}
        await asyncio.sleep(3600)  # the client is still connected, and silent
        raise AssertionError("unreachable")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/video/submit",
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(len(body) + 5000).encode()),
        ],
    }
    started = time.monotonic()
    # a thread of its own: the session's Playwright driver (tests/web) may have left a
    # running event loop on this one, where asyncio.run refuses to start
    with ThreadPoolExecutor(1) as thread, pytest.raises(UploadStalled, match="stalled"):
        thread.submit(
            asyncio.run, upload.receive_upload(Request(scope, receive), writer, 1 << 20)
        ).result()
    assert time.monotonic() - started < 5
    assert [p for p in (tmp_path / "storage").rglob("*") if p.is_file()] == []
