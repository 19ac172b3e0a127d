"""Real `forgesyte serve` processes to inflict faults on, and the small videos they get."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import assert_no_orphans
from tests.support.server import ServerProcess
from tests.support.videos import write_counter_video

StartServer = Callable[..., ServerProcess]

# One server takes the whole hostile corpus, the isolation faults and the upload faults.
HOSTILE_ENV = {
    "FORGESYTE_MAX_UPLOAD_MB": "2",
    "FORGESYTE_JOB_TIMEOUT_S": "4",
    "FORGESYTE_CHILD_MEMORY_MB": "400",
    "FORGESYTE_TESTKIT_SLEEP_S": "0.5",
    "FORGESYTE_CHILD_ENV_KEEP": "FORGESYTE_TESTKIT_SLEEP_S",
}


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start servers (`--workers 1` unless told); any still running is killed at teardown."""
    servers: list[ServerProcess] = []

    def start(data_dir: Path, *, workers: int = 1, **env: str) -> ServerProcess:
        data_dir.mkdir(parents=True, exist_ok=True)
        # the testkit's sleep setting reaches the children only through the allowlist
        env = {"FORGESYTE_CHILD_ENV_KEEP": "FORGESYTE_TESTKIT_SLEEP_S", **env}
        server = ServerProcess(data_dir, workers=workers, env=env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(scope="package")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One worker, a 2 MiB upload limit, a 4 s job timeout and a 400 MiB child memory cap."""
    server = ServerProcess(tmp_path_factory.mktemp("hostile"), workers=1, env=HOSTILE_ENV)
    server.start()
    try:
        yield server
        assert_no_orphans(server)
        code = server.terminate()
        assert code == 0, f"exit code {code} on SIGTERM:\n{server.log_text()}"
    finally:
        server.kill()


@pytest.fixture(scope="session")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 tiny frames at 30 fps: cheap for every pipeline."""
    return write_counter_video(tmp_path_factory.mktemp("fault-videos") / "small.mp4", 30)
