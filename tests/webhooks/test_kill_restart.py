"""A webhook pending when the server is killed with SIGKILL is delivered after a restart:
the outbox is in the database, not in the process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, run_job
from tests.support.videos import write_counter_video
from tests.webhooks.receiver import Receiver, running_receiver
from tests.webhooks.test_signing_and_guard import SECRET, documented_verify

pytestmark = pytest.mark.e2e  # a real forgesyte server process


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        running.default = 500  # down until the test says otherwise
        yield running


def test_a_pending_delivery_survives_kill_9(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "FORGESYTE_WEBHOOK_SECRET": SECRET,
        "FORGESYTE_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
        "FORGESYTE_WEBHOOK_MAX_ATTEMPTS": "30",
    }
    server = ServerProcess(tmp_path / "server", workers=1, env=env).start()
    try:
        video = write_counter_video(tmp_path / "grey.mp4", 6).read_bytes()
        final = run_job(server.url, video, pipeline_id="testkit_grey", callback_url=receiver.url)
        assert final.status == "completed"
        job_id = final.job_id
        refused = receiver.wait_for(1)  # the receiver answered 500: the delivery is pending
        # the server recorded the failed attempt (its retry is scheduled): killed in flight,
        # the attempt would instead be due again when its claim lapses (3 timeouts + 5 s)
        deadline = time.monotonic() + 30
        while "webhook attempt 1 failed" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        server.kill()  # SIGKILL, with the next retry scheduled
        assert server.process is not None and server.process.returncode == -9
        receiver.default = 200
        seen = len(receiver.received)
        restarted = time.monotonic()
        server.start()
        delivered = receiver.wait_for(seen + 1, timeout_s=60.0)[-1]
        after_restart_s = delivered.at - restarted
    finally:
        server.kill()
    verify = documented_verify()
    assert verify(SECRET, delivered.headers, delivered.body)
    event = json.loads(delivered.body)
    assert event["job_id"] == job_id and event["status"] == "completed"
    assert event["event_id"] == json.loads(refused[0].body)["event_id"]  # the same event
    assert delivered.body == refused[0].body
    with capsys.disabled():
        print(
            f"\nwebhook after kill -9: delivered {after_restart_s:.2f} s after the restart began "
            f"(attempt {len(receiver.received)}, same event_id)"
        )
