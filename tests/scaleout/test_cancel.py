"""Cancel across processes: the API (serve --workers 0) cancels a job that a worker in
another process is analysing, on PostgreSQL and S3. The worker sees it through the
database alone, stops the child within 5 s, keeps nothing and takes the next job."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forgesyte.client import Backoff, Client
from tests.scaleout.conftest import ScaleOutDeployment
from tests.support.server import ServerProcess, WorkerProcess, submit_video, wait_until
from tests.support.videos import write_counter_video

pytestmark = pytest.mark.e2e  # real forgesyte processes

TRIES = 3  # each try: a running job cancelled, its child stopped, the next job taken
SLOW_FRAMES = 150  # x 0.2 s per frame: 30 s, far longer than a try
CANCEL_DEADLINE_S = 5.0


@pytest.fixture
def api_and_worker(
    deployment: ScaleOutDeployment, tmp_path: Path
) -> Iterator[tuple[ServerProcess, WorkerProcess]]:
    """The schema migrated, `serve --workers 0`, and one `worker` process with one loop."""
    env = {**deployment.env, "FORGESYTE_LEASE_SECONDS": "30"}
    with deployment.api_and_workers(tmp_path / "api", env, 1) as (api, workers):
        yield api, workers[0]


POLL = Backoff(first_s=0.02, factor=1.0, max_s=0.02)  # the latencies are read to 0.02 s


def _wait(url: str, job_id: str, wanted: str, timeout_s: float, progressed: bool = False) -> None:
    wait_until(
        url,
        job_id,
        lambda status: status.status == wanted and (not progressed or status.progress > 0),
        timeout_s=timeout_s,
        poll=POLL,
    )


def test_a_worker_in_another_process_stops_a_cancelled_job(
    api_and_worker: tuple[ServerProcess, WorkerProcess],
    deployment: ScaleOutDeployment,
    tmp_path: Path,
    report_figures: list[str],
) -> None:
    api, worker = api_and_worker
    video = write_counter_video(tmp_path / "slow.mp4", SLOW_FRAMES).read_bytes()
    ids = [submit_video(api.url, video, pipeline_id="testkit_sleep") for _ in range(TRIES + 1)]
    latencies = []
    for index in range(TRIES):
        _wait(api.url, ids[index], "running", 90.0, progressed=True)
        started = time.monotonic()
        response = httpx.post(f"{api.url}/v1/video/cancel/{ids[index]}", timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        _wait(api.url, ids[index + 1], "running", 30.0)  # the worker moved on
        latencies.append(time.monotonic() - started)
        with Client(api.url) as client:
            assert client.job(ids[index]).status().status == "cancelled"
    assert httpx.post(f"{api.url}/v1/video/cancel/{ids[-1]}", timeout=10).status_code == 200
    assert max(latencies) < CANCEL_DEADLINE_S, latencies
    assert deployment.object_keys("results") == []  # a cancelled job keeps no results
    assert worker.log_text().count("lease lost") >= TRIES
    report_figures.append(
        f"cancel across processes (PostgreSQL, S3), {TRIES} tries: median "
        f"{statistics.median(latencies):.2f} s, max {max(latencies):.2f} s (cancel answered "
        "-> the worker process stopped the child and claimed the next job)"
    )
