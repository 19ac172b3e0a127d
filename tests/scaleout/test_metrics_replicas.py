"""Two API replicas and a worker process on PostgreSQL: each replica's /metrics is right.

The job figures come from the store when Prometheus scrapes, so a replica that took no
submit and ran no job reports the same counts, queue and durations as the one that did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.scaleout.conftest import ScaleOutDeployment
from tests.support.metrics import scrape
from tests.support.server import ServerProcess, WorkerProcess, submit_video, wait_for_end
from tests.support.videos import write_counter_video

pytestmark = pytest.mark.e2e  # real forgesyte processes

JOBS = 3
FRAMES = 3
WAIT_S = 180.0

T = TypeVar("T")


def _wait_for(condition: str, check: Callable[[], T | None], timeout_s: float = WAIT_S) -> T:
    """Call check until it gives something other than None, within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.2)


def test_every_replica_reports_the_jobs_of_the_whole_deployment(
    deployment: ScaleOutDeployment, tmp_path: Path
) -> None:
    submitter = ServerProcess(tmp_path / "a", workers=0, env=deployment.env).start()
    other = ServerProcess(tmp_path / "b", workers=0, env=deployment.env).start()
    worker: WorkerProcess | None = None
    try:
        video = write_counter_video(tmp_path / "v.mp4", FRAMES, size_wh=(32, 24)).read_bytes()
        job_ids = [
            submit_video(submitter.url, video, pipeline_id="testkit_noop") for _ in range(JOBS)
        ]

        # no worker yet: the replica that took no submit sees the queue
        queued = scrape(other.url)
        assert queued.value("forgesyte_jobs", status="pending") == JOBS
        assert queued.value("forgesyte_queue_depth") == JOBS
        first_age = queued.value("forgesyte_oldest_pending_job_age_seconds")
        assert first_age > 0
        later = _wait_for(
            "the oldest pending age to grow",
            lambda: (
                m
                if (m := scrape(other.url)).value("forgesyte_oldest_pending_job_age_seconds")
                > first_age + 0.5
                else None
            ),
        )
        assert later.value("forgesyte_queue_depth") == JOBS

        worker = WorkerProcess(tmp_path / "worker.log", env=deployment.env).start()
        for job_id in job_ids:
            assert wait_for_end(submitter.url, job_id, WAIT_S)[0].status == "completed"

        by_replica = [scrape(server.url) for server in (submitter, other)]
        for metrics in by_replica:
            assert metrics.value("forgesyte_jobs", status="completed") == JOBS
            assert metrics.value("forgesyte_jobs", status="pending") == 0
            assert metrics.value("forgesyte_queue_depth") == 0
            assert metrics.value("forgesyte_oldest_pending_job_age_seconds") == 0
            labels = {"pipeline_id": "testkit_noop", "status": "completed"}
            assert metrics.value("forgesyte_job_duration_seconds_count", **labels) == JOBS
            # every job waited in the queue at least as long as the age seen above
            assert metrics.value("forgesyte_job_duration_seconds_sum", **labels) > JOBS * first_age
            assert metrics.value("forgesyte_frames_analysed_total") == JOBS * FRAMES
        assert by_replica[0].job_series() == by_replica[1].job_series()
    finally:
        if worker is not None:
            assert worker.terminate() == 0, worker.log_text()
        assert other.terminate() == 0, other.log_text()
        assert submitter.terminate() == 0, submitter.log_text()

    # the three processes shared one log file (same data dir): JSON lines from each of them
    shared = Path(deployment.env["FORGESYTE_DATA_DIR"]) / "forgesyte.log"
    entries = [json.loads(line) for line in shared.read_text().splitlines()]
    assert worker is not None and worker.process is not None
    pids = {p.process.pid for p in (submitter, other, worker) if p.process is not None}
    assert {e["pid"] for e in entries} == pids
    for job_id in job_ids:
        done = [e for e in entries if e["event"] == f"job {job_id}: completed"]
        assert [(e["pid"], e["job_id"]) for e in done] == [(worker.pid, job_id)]
