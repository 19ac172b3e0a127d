"""An in-process API (no workers) on the in-memory job store; local storage unless a test
passes one. Previews are drawn by child processes, as in a server.

These tests are about the API, not the database: ``store`` is the in-memory store here.
A test about the database under the API binds it: ``@pytest.mark.parametrize("store",
["duckdb", "postgresql"], indirect=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from forgesyte.api.app import create_app
from forgesyte.api.context import AppContext
from forgesyte.jobs.store import JobStore
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.base import Storage
from forgesyte.storage.local import LocalStorage
from forgesyte.workers.executor import ChildLimits
from forgesyte.workers.previews import PREVIEW_TIMEOUT_S, ChildPreviewRenderer
from tests.support.stores import make_store

MakeClient = Callable[..., TestClient]


@pytest.fixture(params=["memory"])
def store(request: pytest.FixtureRequest) -> JobStore:
    """The job store under the API: in memory unless the test binds a database."""
    return make_store(request.param, request)


@pytest.fixture
def make_client(store: JobStore, tmp_path: Path) -> Iterator[MakeClient]:
    """Build a client for an app with given settings overrides (and optionally a storage)."""
    clients: list[TestClient] = []

    def make(storage: Storage | None = None, **overrides: object) -> TestClient:
        settings = Settings(data_dir=tmp_path, **overrides)  # type: ignore[arg-type]
        registry = discover_plugins()
        context = AppContext(
            settings=settings,
            store=store,
            storage=storage or LocalStorage(tmp_path / "storage"),
            registry=registry,
            catalog=load_catalog(registry),
            previews=ChildPreviewRenderer(
                ChildLimits(PREVIEW_TIMEOUT_S), max_frame_pixels=settings.max_frame_pixels
            ),
        )
        client = TestClient(create_app(context), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """A client for an app with default settings."""
    return make_client()
