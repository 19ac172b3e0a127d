"""One real server shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`forgesyte serve` with two workers on a free port; stopped with SIGTERM after
    this folder's last test (an idle server still polls for work)."""
    server = ServerProcess(tmp_path_factory.mktemp("server"), workers=2).start()
    yield server
    code = server.terminate()
    assert code == 0, f"the server exited with {code} on SIGTERM:\n{server.log_text()}"
