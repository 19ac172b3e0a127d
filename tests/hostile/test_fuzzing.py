"""Schemathesis against the live /openapi.json of a real server: no request gets a 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

API_KEY = f"key-{uuid.uuid4().hex}"
EXAMPLES_PER_OPERATION = 8  # keeps the run well under a minute
SCHEMATHESIS = str(Path(sys.executable).parent / "st")


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An API-only server (fuzzed submits stay pending) with an API key."""
    server = ServerProcess(
        tmp_path_factory.mktemp("hostile-fuzz"),
        workers=0,
        env={"FORGESYTE_API_KEY": API_KEY, "FORGESYTE_MAX_UPLOAD_MB": "4"},
    )
    server.start()
    try:
        yield server
        code = server.terminate()
        assert code == 0, f"exit code {code} on SIGTERM:\n{server.log_text()}"
    finally:
        server.kill()


def test_no_fuzzed_request_gets_a_server_error(
    fuzzed_server: ServerProcess, tmp_path: Path
) -> None:
    command = [
        SCHEMATHESIS,
        "run",
        f"{fuzzed_server.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "20261203",
        "--no-shrink",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    output = run.stdout + run.stderr
    print(output[-3000:])
    assert run.returncode == 0, output[-6000:]
    # every request's answer is recorded in the report as a "status_code"
    statuses = [
        int(code)
        for path in tmp_path.rglob("*.ndjson")
        for code in re.findall(r'"status_code":\s*(\d+)', path.read_text())
    ]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary is not None and summary.group(1) == summary.group(2), output[-3000:]
    print(f"fuzzed requests: {len(statuses)}, answers: {sorted(set(statuses))}")
    assert len(statuses) >= 100
    assert all(status < 500 for status in statuses)
