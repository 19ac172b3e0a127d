"""The API while storage or the database is away: 503 with Retry-After, never a 500 or a
hang; reads of job states from the database alone; /healthz naming what is down, cheap.

In-process apps on the in-memory store and local storage, each behind a switch that makes
it fail as an unreachable dependency does (the errors are real ones: a refused PostgreSQL
connection, an I/O error); tests/faults/test_outages.py cuts real connections.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from forgesyte.api import deadline, health
from forgesyte.api.app import create_app
from forgesyte.api.context import AppContext
from forgesyte.api.errors import OUTAGE_RETRY_AFTER_S
from forgesyte.db.engine import create_db_engine
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.store import NewJob
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.base import video_key
from forgesyte.storage.errors import unavailable
from forgesyte.storage.local import LocalStorage
from tests.support.services import free_port
from tests.support.videos import write_counter_video


class Switched:
    """An object whose every call fails with `error()` while `down`, or is slowed by
    `delay_s`; otherwise handed to the object it wraps. `calls` counts them by name."""

    def __init__(self, inner: Any, error: Callable[[], Exception]) -> None:
        self._inner = inner
        self._error = error
        self.down = False
        self.delay_s = 0.0
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or name in ("add_change_listener", "changes"):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            time.sleep(self.delay_s)
            if self.down:
                raise self._error()
            return attribute(*args, **kwargs)

        return call


@pytest.fixture(scope="module")
def refused() -> Exception:
    """A real error of a PostgreSQL that does not answer: a refused connection."""
    engine = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(Exception) as raised, engine.connect():
            pass
    finally:
        engine.dispose()
    return raised.value


class Deployment:
    """An in-process API whose database and storage a test can take away."""

    def __init__(self, tmp_path: Path, refused: Exception) -> None:
        self.memory = InMemoryJobStore()
        self.database = Switched(self.memory, lambda: refused)
        local = LocalStorage(tmp_path / "storage")
        self.local = local
        self.storage = Switched(
            local, lambda: unavailable("cannot read from storage", OSError(errno.EIO, "I/O"))
        )
        registry = discover_plugins()
        self.context = AppContext(
            settings=Settings(data_dir=tmp_path),
            store=self.database,  # type: ignore[arg-type]
            storage=self.storage,  # type: ignore[arg-type]
            registry=registry,
            catalog=load_catalog(registry),
        )
        self.app = create_app(self.context)
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def job(self) -> str:
        """A completed job (with stored results), recorded straight in the store."""
        job_id = uuid.uuid4()
        self.memory.create(NewJob(job_id, "testkit_noop", {}, video_key(job_id)))
        return str(job_id)


@pytest.fixture
def deployment(tmp_path: Path, refused: Exception) -> Iterator[Deployment]:
    made = Deployment(tmp_path, refused)
    yield made
    made.client.close()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("v") / "v.mp4"
    return write_counter_video(path, 3, size_wh=(64, 48)).read_bytes()


def _is_503_with_retry_after(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(OUTAGE_RETRY_AFTER_S)
    assert set(response.json()) == {"detail"}


# -- storage away ---------------------------------------------------------------------


def test_with_storage_away_job_states_are_read_from_the_database(
    deployment: Deployment, video: bytes
) -> None:
    job_id = deployment.job()
    deployment.storage.down = True
    client = deployment.client
    assert client.get(f"/v1/video/status/{job_id}").status_code == 200
    listed = client.get("/v1/video/jobs")
    assert listed.status_code == 200 and [j["job_id"] for j in listed.json()["jobs"]] == [job_id]
    submitted = client.post(
        "/v1/video/submit",
        params={"pipeline_id": "ocr_only"},
        files={"file": ("v.mp4", video, "video/mp4")},
    )
    _is_503_with_retry_after(submitted)
    assert sum(deployment.memory.count_by_status().values()) == 1  # no row
    assert not (deployment.local.root / "videos").exists()  # no object, whole or part


def test_a_transient_storage_fault_in_a_route_is_a_503(deployment: Deployment) -> None:
    job_id = uuid.UUID(deployment.job())
    deployment.memory.claim_next("w", 30)
    deployment.memory.complete(job_id, "w", f"results/{job_id}.jsonl", {"frames_analysed": 0})
    deployment.storage.down = True
    _is_503_with_retry_after(deployment.client.get(f"/v1/video/results/{job_id}"))
    _is_503_with_retry_after(deployment.client.delete(f"/v1/video/jobs/{job_id}"))
    assert deployment.memory.get(job_id) is not None  # the row stays: the delete can be repeated


# -- the database away -------------------------------------------------------------------


def test_with_the_database_away_reads_are_503_with_retry_after(deployment: Deployment) -> None:
    job_id = deployment.job()
    deployment.database.down = True
    client = deployment.client
    for path in (f"/v1/video/status/{job_id}", "/v1/video/jobs", f"/v1/video/results/{job_id}"):
        _is_503_with_retry_after(client.get(path))
    assert client.get(f"/v1/video/status/{job_id}").json() == {
        "detail": "the database is not answering; try again shortly"
    }


def test_a_permanent_database_error_is_still_a_500(deployment: Deployment) -> None:
    deployment.database._error = lambda: RuntimeError("a bug, not an outage")
    deployment.database.down = True
    answer = deployment.client.get(f"/v1/video/status/{uuid.uuid4()}")
    assert answer.status_code == 500 and answer.json() == {"detail": "internal server error"}


# -- the deadline --------------------------------------------------------------------------


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(deadline, "REQUEST_DEADLINE_S", 0.5)
    return 0.5


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """The app behind a real uvicorn server on loopback, on a thread (TestClient waits for
    the whole ASGI call, where a server sends an answer as soon as it is complete)."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_an_answer_that_does_not_start_within_the_deadline_is_a_503(
    tmp_path: Path, refused: Exception, short_deadline: float
) -> None:
    made = Deployment(tmp_path, refused)
    job_id = made.job()
    made.database.delay_s = 2.0  # a database that takes its time, as a blackholed one does
    with served(made.app) as url, httpx.Client(base_url=url) as client:
        started = time.monotonic()
        answer = client.get(f"/v1/video/status/{job_id}")
        took = time.monotonic() - started
        _is_503_with_retry_after(answer)
        assert answer.json()["detail"] == "the server could not answer within 0.5 s; try again"
        assert short_deadline <= took < 1.5, took
        made.database.delay_s = 0.0
        time.sleep(2.0)  # the route that was too late ends; its answer goes nowhere
        assert client.get(f"/v1/video/status/{job_id}").status_code == 200  # same connection
    made.client.close()


def test_a_body_streamed_after_the_answer_started_is_not_cut(
    tmp_path: Path, refused: Exception, short_deadline: float
) -> None:
    made = Deployment(tmp_path, refused)

    async def slow_lines() -> Any:
        for index in range(4):
            yield f"line {index}\n".encode()
            time.sleep(0.25)  # a second in all: twice the deadline

    made.app.get("/slow")(lambda: StreamingResponse(slow_lines(), media_type="text/plain"))
    answer = made.client.get("/slow")
    assert answer.status_code == 200 and answer.text.count("line") == 4
    made.client.close()


def test_a_submit_s_deadline_is_its_upload_s(deployment: Deployment) -> None:
    middleware = next(
        m for m in deployment.app.user_middleware if m.cls is deadline.RequestDeadline
    )
    settings = deployment.context.settings
    assert middleware.kwargs["longer"] == {
        "/v1/video/submit": settings.upload_timeout_s + deadline.REQUEST_DEADLINE_S
    }


# -- /healthz ------------------------------------------------------------------------------


def test_healthz_names_the_dependency_that_is_down(deployment: Deployment) -> None:
    client = deployment.client
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["status"] == "ok"
    assert healthy.json()["checks"] == {"database": "ok", "storage": "ok"}
    assert healthy.json()["jobs"]["pending"] == 0

    deployment.storage.down = True
    time.sleep(health.HEALTH_CACHE_S)
    degraded = client.get("/healthz")
    assert degraded.status_code == 503 and degraded.headers["retry-after"]
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"] == {"database": "ok", "storage": "down"}
    assert degraded.json()["jobs"] is not None

    deployment.storage.down = False
    deployment.database.down = True
    time.sleep(health.HEALTH_CACHE_S)
    unavailable_now = client.get("/healthz")
    assert unavailable_now.status_code == 503
    assert unavailable_now.json()["status"] == "unavailable"
    assert unavailable_now.json()["checks"] == {"database": "down", "storage": "ok"}
    assert unavailable_now.json()["jobs"] is None

    deployment.database.down = False
    time.sleep(health.HEALTH_CACHE_S)
    assert client.get("/healthz").status_code == 200


def test_healthz_checks_at_most_once_a_second_however_often_it_is_asked(
    deployment: Deployment,
) -> None:
    client = deployment.client
    started = time.monotonic()
    answers = [client.get("/healthz").status_code for _ in range(200)]
    elapsed = time.monotonic() - started
    assert answers == [200] * 200
    checks = deployment.database.calls["count_by_status"]
    assert checks <= elapsed / health.HEALTH_CACHE_S + 1, (checks, elapsed)
    assert deployment.storage.calls["exists"] == checks


def test_a_check_that_hangs_counts_as_down_and_is_not_piled_up(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "PROBE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(health, "HEALTH_CACHE_S", 0.1)
    deployment.storage.delay_s = 2.0  # storage that accepts and never answers
    client = deployment.client
    started = time.monotonic()
    first = client.get("/healthz")
    assert time.monotonic() - started < 1.5
    assert first.status_code == 503 and first.json()["checks"]["storage"] == "down"
    time.sleep(0.15)
    second = client.get("/healthz")  # the first check's thread still waits
    assert second.json()["checks"]["storage"] == "down"
    assert deployment.storage.calls["exists"] == 1  # no second thread on a hung storage


def test_healthz_under_a_flood_leaves_status_reads_fast(deployment: Deployment) -> None:
    job_id = deployment.job()
    stop = threading.Event()
    with served(deployment.app) as url:

        def flood() -> None:
            with httpx.Client(base_url=url) as flooder:
                while not stop.is_set():
                    flooder.get("/healthz")

        flooders = [threading.Thread(target=flood) for _ in range(4)]
        for thread in flooders:
            thread.start()
        try:
            latencies = []
            with httpx.Client(base_url=url) as client:
                for _ in range(50):
                    started = time.monotonic()
                    assert client.get(f"/v1/video/status/{job_id}").status_code == 200
                    latencies.append(time.monotonic() - started)
        finally:
            stop.set()
            for thread in flooders:
                thread.join()
    assert sorted(latencies)[-3] < 0.5, latencies
    assert deployment.database.calls["count_by_status"] <= 10


def test_while_a_round_of_checks_waits_other_callers_get_the_last_answer(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "HEALTH_CACHE_S", 0.2)
    with served(deployment.app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/healthz").status_code == 200
        deployment.storage.delay_s = 1.5  # the next round waits on storage
        time.sleep(0.3)
        checking = threading.Thread(target=lambda: httpx.get(f"{url}/healthz", timeout=10))
        checking.start()
        time.sleep(0.3)  # that round is under way
        started = time.monotonic()
        meanwhile = client.get("/healthz")
        assert time.monotonic() - started < 0.5
        assert meanwhile.status_code == 200  # the last answer, not a wait for the new one
        checking.join()
