"""kill -9 of the whole server mid-job: nothing is lost, nothing runs twice, nothing is left."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx

from forgesyte.jobs.models import JobStatus
from tests.faults.conftest import StartServer
from tests.faults.helpers import (
    analysis_children,
    assert_every_frame_once,
    assert_no_orphans,
    children_of,
    file_part_prologue,
    multipart_head,
    offline_job,
    results_of,
    temporary_files,
    wait_for_status,
    wait_until_gone,
)
from tests.support.server import submit_video, wait_for_end

# a short lease, so a restarted server reclaims the job at once; 30 frames of 0.2 s each
KILL_ENV = {"FORGESYTE_LEASE_SECONDS": "2", "FORGESYTE_TESTKIT_SLEEP_S": "0.2"}


def _kill_mid_job(start: StartServer, data_dir: Path, video: Path, **env: str) -> str:
    """Start a server, run a testkit_sleep job until it is under way, then kill -9 the server."""
    server = start(data_dir, **env)
    job_id = submit_video(server.url, video.read_bytes(), pipeline_id="testkit_sleep")
    wait_for_status(server, job_id, "running", min_progress=10)
    assert server.process is not None
    family = children_of(server.process.pid)
    assert analysis_children(server), "the job should run in a spawned analysis child"
    server.kill()
    # the analysis child asked for PR_SET_PDEATHSIG; the resource tracker sees its pipe close
    assert wait_until_gone(family) == [], "a child of the killed server survived it"
    record = offline_job(data_dir, job_id)
    assert record.status is JobStatus.RUNNING and record.attempts == 1
    return job_id


def test_a_job_killed_with_its_server_runs_again_and_completes_once(
    start_server: StartServer, tmp_path: Path, small_video: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, **KILL_ENV)
    job_id = submit_video(server.url, small_video.read_bytes(), pipeline_id="testkit_sleep")
    wait_for_status(server, job_id, "running", min_progress=10)
    # an upload in flight when the server dies leaves its temporary file behind
    with socket.create_connection(("127.0.0.1", server.port)) as upload:
        upload.sendall(multipart_head(server.port, 3 << 20) + file_part_prologue())
        upload.sendall(small_video.read_bytes()[:64] + os.urandom(3 << 19))
        deadline = time.monotonic() + 10
        while not temporary_files(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert temporary_files(server), "the upload should be streaming to a temporary file"
        assert server.process is not None
        family = children_of(server.process.pid)
        server.kill()
    assert wait_until_gone(family) == [], "a child of the killed server survived it"
    assert offline_job(data_dir, job_id).status is JobStatus.RUNNING
    leftovers = temporary_files(server)
    assert leftovers
    an_hour_ago = time.time() - 3600
    for path in leftovers:
        os.utime(path, (an_hour_ago, an_hour_ago))

    restarted = start_server(data_dir, **KILL_ENV)
    assert temporary_files(restarted) == [], "the start-up sweep removes stale temporary files"
    status, _ = wait_for_end(restarted.url, job_id, timeout_s=90)
    assert status.status == "completed", status
    assert_every_frame_once(results_of(restarted, job_id), 30)
    assert_no_orphans(restarted)
    assert restarted.terminate() == 0
    assert offline_job(data_dir, job_id).attempts == 2


def test_a_job_whose_attempts_ran_out_fails_saying_its_worker_was_lost(
    start_server: StartServer, tmp_path: Path, small_video: Path
) -> None:
    env = {**KILL_ENV, "FORGESYTE_MAX_ATTEMPTS": "1"}
    data_dir = tmp_path / "data"
    job_id = _kill_mid_job(start_server, data_dir, small_video, **env)
    restarted = start_server(data_dir, **env)
    status, _ = wait_for_end(restarted.url, job_id, timeout_s=90)
    assert status.status == "failed", status
    assert status.error_message == (
        "the worker running this job was lost 1 time (lease expired each time); "
        "giving up after 1 attempt"
    )
    results = httpx.get(f"{restarted.url}/v1/video/results/{job_id}", timeout=10)
    assert results.status_code == 404 and "was lost 1 time " in results.json()["detail"]
    assert_no_orphans(restarted)
