"""SIGTERM during a long job: a prompt clean exit, the job handed back, finished after a restart."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from forgesyte.jobs.models import JobStatus
from tests.faults.conftest import StartServer
from tests.faults.helpers import (
    assert_every_frame_once,
    assert_no_orphans,
    children_of,
    offline_job,
    results_of,
    wait_for_status,
    wait_until_gone,
)
from tests.support.server import submit_video, wait_for_end

GRACE_S = 2.0
EXIT_MARGIN_S = 6.0  # uvicorn's own shutdown, killing the child, handing back, interpreter exit
# 30 frames of 0.5 s: far longer than the grace period
SHUTDOWN_ENV = {
    "FORGESYTE_SHUTDOWN_GRACE_S": str(GRACE_S),
    "FORGESYTE_TESTKIT_SLEEP_S": "0.5",
}


def test_sigterm_mid_job_exits_0_in_time_and_a_restart_completes_the_job(
    start_server: StartServer, tmp_path: Path, small_video: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, **SHUTDOWN_ENV)
    job_id = submit_video(server.url, small_video.read_bytes(), pipeline_id="testkit_sleep")
    wait_for_status(server, job_id, "running", min_progress=5)
    assert server.process is not None
    family = children_of(server.process.pid)

    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=GRACE_S + EXIT_MARGIN_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit within the grace period:\n{server.log_text()}") from None
    took = time.monotonic() - started
    assert code == 0, server.log_text()
    assert took >= GRACE_S - 0.5, f"the running job should get its grace period ({took:.1f} s)"
    assert wait_until_gone(family) == []
    record = offline_job(data_dir, job_id)
    assert record.status is JobStatus.PENDING, record
    assert record.attempts == 0, "a hand-back does not use up an attempt"
    assert record.worker_id is None and record.progress == 0.0
    assert "handed back to pending" in server.log_text()

    restarted = start_server(data_dir, FORGESYTE_TESTKIT_SLEEP_S="0.05")
    status, _ = wait_for_end(restarted.url, job_id, timeout_s=90)
    assert status.status == "completed", status
    assert_every_frame_once(results_of(restarted, job_id), 30)
    assert_no_orphans(restarted)
