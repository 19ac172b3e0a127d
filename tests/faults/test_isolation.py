"""A crashing, a hanging and a memory-hungry pipeline in a real server: only the job fails;
a preview child killed midway: only that preview fails."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import (
    analysis_children,
    assert_every_frame_once,
    assert_no_leak,
    assert_no_orphans,
    is_alive,
    results_of,
    status_of,
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


def test_a_preview_child_killed_midway_is_a_503_and_the_api_goes_on(
    hostile_server: ServerProcess, small_video: Path
) -> None:
    job_id = submit_video(hostile_server.url, small_video.read_bytes(), pipeline_id="testkit_grey")
    status, _ = wait_for_end(hostile_server.url, job_id, timeout_s=60)
    assert status.status == "completed", status
    before = set(analysis_children(hostile_server))
    preview = f"{hostile_server.url}/v1/video/preview/{job_id}?frame_index=3"
    answers: list[httpx.Response] = []
    asking = threading.Thread(target=lambda: answers.append(httpx.get(preview, timeout=60)))
    asking.start()
    killed = None
    deadline = time.monotonic() + 20
    while killed is None and time.monotonic() < deadline:  # the child lives ~1 s: catch it
        for pid in set(analysis_children(hostile_server)) - before:
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.005)
    asking.join(timeout=60)
    assert killed is not None, "no preview child was seen"
    assert answers and answers[0].status_code == 503, answers
    assert answers[0].json()["detail"] == (
        "the preview could not be drawn: the process drawing it crashed (killed by SIGKILL)"
    )
    assert not is_alive(killed)
    # the API goes on: health, another preview (a new child), status polls
    assert httpx.get(f"{hostile_server.url}/healthz", timeout=10).status_code == 200
    again = httpx.get(preview, timeout=60)
    assert again.status_code == 200 and again.content[:2] == b"\xff\xd8"
    assert status_of(hostile_server, job_id).json()["status"] == "completed"
    assert hostile_server.process is not None and hostile_server.process.poll() is None
    assert set(analysis_children(hostile_server)) == before  # no preview child is left
