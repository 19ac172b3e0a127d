"""The submit service on its own, with no HTTP: plain values in, a job or a refusal out.

Real local storage and the in-memory job store; `fill` writes bytes into the service's
storage writer the way api/upload.py does.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from forgesyte.api.context import AppContext
from forgesyte.api.errors import STATUSES, status_of
from forgesyte.jobs.store import JobStore, NewJob
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.base import StorageWriter
from forgesyte.storage.local import LocalStorage
from forgesyte.submission import service as service_module
from forgesyte.submission.errors import (
    CouldNotRecord,
    InvalidSubmission,
    NotEnoughSpace,
    RetryLater,
    SubmissionRefused,
)
from forgesyte.submission.service import SubmitRequest, SubmitService, Upload
from tests.support.stores import make_store

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(1000)  # what the service stores, byte for byte
T = TypeVar("T")


def run(action: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on an event loop of its own thread (tests/web may hold this one's)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(anyio.run, action).result()


class Filling:
    """A fill that writes VIDEO in a few chunks and reports the form fields it 'received'."""

    def __init__(self, fields: dict[str, str], chunks: int = 3) -> None:
        self.fields = fields
        self.step = -(-len(VIDEO) // chunks)
        self.calls = 0

    async def __call__(self, writer: StorageWriter) -> Upload:
        self.calls += 1
        for start in range(0, len(VIDEO), self.step):
            writer.write(VIDEO[start : start + self.step])
        return Upload(fields=self.fields, size=len(VIDEO))


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.fixture
def store(request: pytest.FixtureRequest) -> JobStore:
    return make_store("memory", request)


@pytest.fixture
def make_service(store: JobStore, tmp_path: Path) -> Callable[..., SubmitService]:
    """The service as the API wires it (AppContext), with given settings, store, storage."""
    registry = discover_plugins()
    catalog = load_catalog(registry)

    def make(
        storage: LocalStorage | None = None, job_store: Any = None, **overrides: Any
    ) -> SubmitService:
        return AppContext(
            settings=Settings(data_dir=tmp_path, **overrides),
            store=job_store or store,
            storage=storage or LocalStorage(tmp_path / "storage"),
            registry=registry,
            catalog=catalog,
        ).submissions

    return make


def test_a_submit_stores_the_video_and_records_its_job_with_the_query_winning(
    make_service: Callable[..., SubmitService], store: JobStore, tmp_path: Path
) -> None:
    service = make_service()
    request = SubmitRequest({"max_frames": "5"}, idempotency_key="once")
    fill = Filling({"frame_stride": "2", "max_frames": "9"})
    job_id = run(lambda: service.submit(request, fill))

    job = store.get(job_id)
    assert job is not None and job.pipeline_id == "ocr_only"
    assert (job.options["frame_stride"], job.options["max_frames"]) == (2, 5)
    assert service.storage.open(job.input_path).read() == VIDEO
    # the same key and analysis again: the same job, and the second video is not kept
    again = run(lambda: service.submit(request, Filling({"frame_stride": "2"})))
    assert again == job_id
    assert stored_files(tmp_path / "storage") == [tmp_path / "storage" / job.input_path]


class UnreachableStore:
    """A job store whose database has gone: recording a job raises what a driver would."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def create(self, new: NewJob) -> None:
        raise ConnectionResetError("the database server closed the connection")


def test_whatever_the_store_raises_while_recording_is_could_not_record_and_keeps_nothing(
    make_service: Callable[..., SubmitService], store: JobStore, tmp_path: Path
) -> None:
    service = make_service(job_store=UnreachableStore(store))
    with pytest.raises(CouldNotRecord, match="could not be recorded; nothing was kept"):
        run(lambda: service.submit(SubmitRequest({}), Filling({})))
    assert stored_files(tmp_path / "storage") == []
    assert sum(store.count_by_status().values()) == 0


class FullDisk(LocalStorage):
    def free_bytes(self) -> int:
        return 1024


def test_too_little_free_space_is_refused_before_the_upload(
    make_service: Callable[..., SubmitService], tmp_path: Path
) -> None:
    fill = Filling({})
    service = make_service(storage=FullDisk(tmp_path / "storage"))
    with pytest.raises(NotEnoughSpace):
        run(lambda: service.submit(SubmitRequest({}), fill))
    assert fill.calls == 0


def test_a_submit_past_the_upload_slots_is_told_to_retry_later(
    make_service: Callable[..., SubmitService], tmp_path: Path
) -> None:
    service = make_service(max_concurrent_uploads=1)
    fill = Filling({})
    with service.upload_slot(), pytest.raises(RetryLater) as refused:
        run(lambda: service.submit(SubmitRequest({}), fill))
    assert refused.value.retry_after_s > 0
    assert str(refused.value).startswith("1 uploads are already under way")
    assert fill.calls == 0 and stored_files(tmp_path / "storage") == []
    assert isinstance(run(lambda: service.submit(SubmitRequest({}), fill)), uuid.UUID)  # freed


@pytest.mark.parametrize(
    ("query", "form", "detail"),
    [
        ({"pipeline_id": "no_such"}, {}, "unknown pipeline 'no_such'"),
        ({}, {"frame_stride": "0"}, "frame_stride"),
        ({}, {"callback_url": "http://127.0.0.1/hook"}, "FORGESYTE_WEBHOOK_SECRET"),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_kept(
    make_service: Callable[..., SubmitService],
    store: JobStore,
    tmp_path: Path,
    query: dict[str, str],
    form: dict[str, str],
    detail: str,
) -> None:
    service = make_service()
    with pytest.raises(InvalidSubmission, match=detail):
        run(lambda: service.submit(SubmitRequest(query), Filling(form)))
    assert stored_files(tmp_path / "storage") == []
    assert sum(store.count_by_status().values()) == 0


def test_a_bad_idempotency_key_is_refused_when_the_request_is_made() -> None:
    with pytest.raises(InvalidSubmission, match="1 to 256 characters"):
        SubmitRequest({}, idempotency_key="k" * 257)


def _subclasses(kind: type[Exception]) -> Iterator[type[Exception]]:
    for sub in kind.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_refusal_has_its_status_in_the_one_table() -> None:
    refusals = list(_subclasses(SubmissionRefused))
    assert len(refusals) >= 8
    for refusal in refusals:
        error = refusal("x", 1) if refusal is RetryLater else refusal("x")
        assert status_of(error) in set(STATUSES.values()) - {500}, refusal
    assert status_of(ValueError("not a refusal")) == 500


def test_the_submission_package_imports_no_web_framework_and_no_sql() -> None:
    package = Path(service_module.__file__).parent
    imported: set[str] = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "forgesyte" in imported  # the walk saw the imports
    assert not imported & {"fastapi", "starlette", "sqlalchemy", "python_multipart"}, imported
