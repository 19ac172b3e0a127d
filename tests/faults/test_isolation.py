"""A crashing, a hanging and a memory-hungry pipeline in a real server: only the job fails."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import (
    assert_every_frame_once,
    assert_no_leak,
    assert_no_orphans,
    results_of,
)
from tests.support.server import ServerProcess, submit_video, wait_for_end


@pytest.mark.parametrize(
    ("pipeline_id", "message"),
    [
        (
            "testkit_segfault",
            "the analysis process crashed (killed by SIGSEGV) while decoding or analysing",
        ),
        ("testkit_sleep", "the analysis timed out after 4 s and was stopped"),  # 30 x 0.5 s
        ("testkit_hog_memory", "over the memory cap of 400 MiB, and was stopped"),
    ],
    ids=["segfault", "past-timeout", "over-memory-cap"],
)
def test_a_runaway_pipeline_fails_its_job_and_the_next_job_is_fine(
    hostile_server: ServerProcess, small_video: Path, pipeline_id: str, message: str
) -> None:
    video = small_video.read_bytes()
    bad = submit_video(hostile_server.url, video, pipeline_id=pipeline_id)
    good = submit_video(hostile_server.url, video, pipeline_id="testkit_grey")
    status, _ = wait_for_end(hostile_server.url, bad, timeout_s=60)
    assert status.status == "failed", status
    assert message in status.error_message
    assert_no_leak(status.error_message, hostile_server.data_dir)
    health = httpx.get(f"{hostile_server.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    status, _ = wait_for_end(hostile_server.url, good, timeout_s=90)
    assert status.status == "completed", status
    assert_every_frame_once(results_of(hostile_server, good), 30)
    assert hostile_server.process is not None and hostile_server.process.poll() is None
    assert_no_orphans(hostile_server)
