"""Shared fixtures: a job store on each database, each kind of storage, test videos.

``store`` runs every test that uses it twice: on a real DuckDB file and on a fresh
database on the real PostgreSQL server the tests start. ``memory_store`` is the
in-memory double, for tests that need some store but do not test the database
(tests/api binds ``store`` to it). ``storage_backend`` does for storage what ``store``
does for databases: local storage and a fresh bucket on the real S3-compatible server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from forgesyte.db import migrate
from forgesyte.db.engine import create_db_engine
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.storage.local import LocalStorage
from tests.support.storages import STORAGE_KINDS, StorageBackend, make_storage_backend
from tests.support.stores import DATABASES, ENGINE_FIXTURES
from tests.support.videos import write_text_video

pytest_plugins = [
    "pytester",  # tests/tools/test_no_skips.py runs pytest in-process
    "tests.support.fixtures",
    "tests.support.no_skips",
    "tests.support.http_reuse",
    "tests.support.figures",
]

SCORE_TEXT = "SCORE 2-1"
HALF_TIME_TEXT = "HALF TIME"


@pytest.fixture(autouse=True)
def root_logging() -> Iterator[None]:
    """Put the root and RapidOCR loggers back as they were after each test.

    A test that runs `forgesyte` in-process (`cli.main`) installs a handler on the
    captured stderr of that test; left in place, later tests' log lines met a closed file.
    """
    root = logging.getLogger()
    ocr = logging.getLogger("RapidOCR")
    saved = (list(root.handlers), root.level, list(ocr.handlers), ocr.level, ocr.propagate)
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ocr.handlers[:] = saved[2]
    ocr.setLevel(saved[3])
    ocr.propagate = saved[4]


@pytest.fixture
def duckdb_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh DuckDB file with the schema at head."""
    engine = create_db_engine(f"duckdb:///{tmp_path / 'jobs.duckdb'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database on the test PostgreSQL server, schema at head."""
    engine = create_db_engine(postgres_database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest) -> SqlJobStore:
    """A job store on a fresh database of each kind: a DuckDB file, then PostgreSQL.

    A test bound to one database says so: ``@pytest.mark.parametrize("store",
    ["postgresql"], indirect=True)``.
    """
    if request.param not in ENGINE_FIXTURES:
        raise ValueError(f"unknown database {request.param!r}; known: {DATABASES}")
    engine: Engine = request.getfixturevalue(ENGINE_FIXTURES[request.param])
    return SqlJobStore(engine)


@pytest.fixture
def memory_store() -> InMemoryJobStore:
    """An empty in-memory job store."""
    return InMemoryJobStore()


@pytest.fixture(params=STORAGE_KINDS)
def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    """Each kind of storage in turn: a local folder, then a fresh bucket on the S3 server.

    A test bound to one kind says so: ``@pytest.mark.parametrize("storage_backend",
    ["s3"], indirect=True)``.
    """
    return make_storage_backend(request.param, request, tmp_path)


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """Local storage in a temporary folder."""
    return LocalStorage(tmp_path / "storage")


@pytest.fixture(scope="session")
def score_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames at 10 fps: 'SCORE 2-1' on frames 0-9, 'HALF TIME' on frames 10-19."""
    path = tmp_path_factory.mktemp("videos") / "score.mp4"
    return write_text_video(path, [SCORE_TEXT] * 10 + [HALF_TIME_TEXT] * 10)


# The files whose tests take longest (real servers and worker processes, leases that must
# run out), slowest first. They run before all others, so that pytest-xdist (see
# scripts/run_tests.sh) spreads them over its processes instead of leaving one process
# to finish a long file alone at the end. Only the order changes.
SLOW_FILES = (  # longest first (per file or XDIST_GROUPS group, from --durations=0)
    "tests/e2e/test_cli.py",  # with test_lifecycle.py: 118 s
    "tests/hostile/test_server_limits.py",  # the latency group: 85 s
    "tests/results/test_job_storing.py",
    "tests/workers/test_worker.py",
    "tests/faults/test_server_killed.py",
    "tests/segments/test_split_jobs.py",
    "tests/scaleout/test_multiprocess.py",
    "tests/faults/test_isolation.py",  # the hostile_server group: 42 s
    "tests/web/test_page.py",
    "tests/scaleout/test_metrics_replicas.py",
    "tests/faults/test_graceful_shutdown.py",
    "tests/jobs/test_store_contract.py",
    "tests/jobs/test_store_job_management.py",
    "tests/hostile/test_fuzzing.py",
    "tests/scaleout/test_s3_uploads.py",
    "tests/scaleout/test_split_across_processes.py",
    "tests/webhooks/test_delivery.py",
)

# Under pytest-xdist (scripts/run_tests.sh: `--dist loadfile`) each file's tests run in
# one process, so its module-scoped servers start once. The files named here run in one
# process per group: those sharing a package-scoped server (tests/e2e/conftest.py,
# tests/faults/conftest.py), so that it starts once and stops when the process leaves
# that folder (an idle server polls for work: left up, it costs CPU all session long);
# and those asserting latencies (cancel within 5 s, answers within 3 s, /healthz p99
# under a flood, a decoder bomb's end), so that they never run side by side and load
# each other.
XDIST_GROUPS = {
    "tests/e2e/test_cli.py": "live_server",
    "tests/e2e/test_client.py": "live_server",
    "tests/e2e/test_lifecycle.py": "live_server",
    "tests/e2e/test_timeline_jobs.py": "live_server",
    "tests/faults/test_api_guard.py": "hostile_server",
    "tests/faults/test_hostile_input.py": "hostile_server",
    "tests/faults/test_isolation.py": "hostile_server",
    "tests/faults/test_uploads.py": "hostile_server",
    "tests/scaleout/test_cancel.py": "latency",
    "tests/workers/test_cancel_running.py": "latency",
    "tests/api/test_idempotency_race.py": "latency",
    "tests/hostile/test_server_limits.py": "latency",
    "tests/hostile/test_decoder_inputs.py": "latency",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests of SLOW_FILES first, each file's tests in their own order."""
    rank = {path: index for index, path in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the files of each XDIST_GROUPS group as one unit."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedServerScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return XDIST_GROUPS.get(path, path)

    return SharedServerScheduling(config, log)
