"""A real server's /metrics and log file, with real jobs (testkit pipelines, tiny videos)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from forgesyte.api.health import HEALTH_CACHE_S
from forgesyte.client import JobStatus as Ended  # a job's status answer
from forgesyte.jobs.models import JobStatus
from tests.support.metrics import scrape
from tests.support.server import ServerProcess, submit_video, wait_for_end
from tests.support.videos import header_only_mp4, write_counter_video

pytestmark = pytest.mark.e2e

API_KEY = "metrics-test-key"
HEADERS = {"X-API-Key": API_KEY}
FRAMES = 4
LEVEL_PREFIXES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # Python's plain format


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`forgesyte serve` with one worker and an API key; it ran two good jobs and a bad one."""
    folder = tmp_path_factory.mktemp("observed")
    running = ServerProcess(folder / "data", workers=1, env={"FORGESYTE_API_KEY": API_KEY})
    running.start()
    yield running
    assert running.terminate() == 0, running.log_text()


@pytest.fixture(scope="module")
def jobs(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ended]:
    """The final status of each job, by job id: two completed noop jobs and a failed one."""
    folder = tmp_path_factory.mktemp("videos")
    good = write_counter_video(folder / "good.mp4", FRAMES, size_wh=(32, 24)).read_bytes()
    bad = header_only_mp4(folder / "bad.mp4").read_bytes()
    job_ids = [
        submit_video(server.url, video, api_key=API_KEY, pipeline_id="testkit_noop")
        for video in (good, good, bad)
    ]
    return {
        job_id: wait_for_end(server.url, job_id, 180.0, api_key=API_KEY)[0] for job_id in job_ids
    }


def _seconds(status: Ended) -> float:
    return (status.updated_at - status.created_at).total_seconds()


def test_metrics_need_the_api_key(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
    wrong = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": "nope"}, timeout=10)
    assert wrong.status_code == 401
    answer = httpx.get(f"{server.url}/metrics", headers=HEADERS, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_metrics_count_the_jobs_the_server_ran(
    server: ServerProcess, jobs: dict[str, Ended]
) -> None:
    metrics = scrape(server.url, API_KEY)
    time.sleep(HEALTH_CACHE_S)  # /healthz counts again at most once a second
    health = httpx.get(f"{server.url}/healthz", timeout=10).json()["jobs"]

    # one sample per status, zeros included, equal to /healthz
    by_status = {
        dict(labels)["status"]: v for labels, v in metrics.labelled("forgesyte_jobs").items()
    }
    assert set(by_status) == {status.value for status in JobStatus}
    assert by_status == {status: float(n) for status, n in health.items()}
    assert (by_status["completed"], by_status["failed"], by_status["pending"]) == (2, 1, 0)
    assert metrics.value("forgesyte_queue_depth") == 0
    assert metrics.value("forgesyte_oldest_pending_job_age_seconds") == 0

    # the duration histogram: one series per (pipeline, final status), the jobs' own times
    for final in ("completed", "failed"):
        ended = [s for s in jobs.values() if s.status == final]
        labels = {"pipeline_id": "testkit_noop", "status": final}
        count = metrics.value("forgesyte_job_duration_seconds_count", **labels)
        assert count == len(ended)
        expected_sum = sum(_seconds(s) for s in ended)
        assert metrics.value("forgesyte_job_duration_seconds_sum", **labels) == pytest.approx(
            expected_sum, abs=0.01
        )
        buckets = sorted(
            (float(dict(key)["le"]), v)
            for key, v in metrics.labelled("forgesyte_job_duration_seconds_bucket").items()
            if dict(key)["status"] == final
        )
        assert buckets[-1] == (float("inf"), count)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
        for bound, below in buckets:
            assert below == sum(1 for s in ended if _seconds(s) <= bound + 0.001)

    # frames: what the completed jobs' results say they analysed
    analysed = sum(
        httpx.get(f"{server.url}/v1/video/results/{job_id}", headers=HEADERS, timeout=10).json()[
            "frames_analysed"
        ]
        for job_id, status in jobs.items()
        if status.status == "completed"
    )
    assert analysed == 2 * FRAMES
    assert metrics.value("forgesyte_frames_analysed_total") == analysed
    assert metrics.value("process_resident_memory_bytes") > 0


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        assert isinstance(entry, dict)
        assert {"ts", "level", "logger", "event"} <= set(entry), line
        entries.append(entry)
    return entries


def test_logs_are_json_lines_and_job_lines_carry_the_job_id(
    server: ServerProcess, jobs: dict[str, Ended]
) -> None:
    log_file = server.data_dir / "forgesyte.log"  # the default: <data dir>/forgesyte.log
    entries = _json_lines(log_file)
    for job_id, status in jobs.items():
        about = [e for e in entries if job_id in e["event"]]
        assert about, f"no line about job {job_id}"
        assert all(e.get("job_id") == job_id for e in about), about
        events = " | ".join(e["event"] for e in about)
        assert f"job {job_id}: accepted" in events
        assert f"job {job_id}: claimed by" in events
        assert f"job {job_id}: {status.status}" in events
        # the API's access lines for this job's routes carry it too
        assert any(
            e["logger"] == "uvicorn.access" and e.get("job_id") == job_id for e in entries
        ), job_id
    # stderr: the same JSON lines, plus what native code in the analysis children (FFmpeg,
    # OpenCV) prints straight to the file descriptor, which Python logging never sees
    console = (server.data_dir / "server.log").read_text().splitlines()
    ours = [line for line in console if line.startswith("{")]
    from_console = [json.loads(line)["event"] for line in ours]
    assert from_console[: len(entries)] == [
        e["event"] for e in entries
    ]  # read later: may be longer
    for line in console:
        if not line.startswith("{"):
            assert "forgesyte" not in line and not line.startswith(LEVEL_PREFIXES), line
