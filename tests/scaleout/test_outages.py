"""Outages waited out on the scale-out deployment, with real network faults.

The API (`serve --workers 0`) and two `forgesyte worker` processes reach PostgreSQL and
the S3-compatible server through TCP relays (tests/support/relay.py) that the test cuts
and mends: every open connection is reset and new ones are refused, as when the network
to a server fails. While 12 jobs run (two of them split into segments) and completion
webhooks go to a receiver that is itself down for a while, storage is cut for 10 s, the
database for 5 s, and a worker process is killed with SIGKILL (and started again, as a
supervisor would). A prober asks the API all along.

Must hold: every job completes, its stored results and timeline byte-identical to a
calm run of the same video; every webhook arrives; no API answer is a 5xx other than
503 (each with Retry-After) and none takes 10 s; job states are read while storage is
down; /healthz names what is down; a submit refused during an outage leaves nothing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.scaleout.conftest import S3_PREFIX, ScaleOutDeployment
from tests.segments.videos import write_keyframed_video
from tests.support.outages import SLOW_GREY, Prober, wait_all, write_pipelines
from tests.support.relay import TcpRelay, relays
from tests.support.server import ServerProcess, WorkerProcess, submit_video
from tests.webhooks.receiver import Receiver, running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

VIDEO_FRAMES = {"short": 3, "medium": 5, "split": 12}  # split: >= 1.5 x SEGMENT_FRAMES
SEGMENT_FRAMES = 6
FAULT_JOBS = ["short"] * 5 + ["medium"] * 5 + ["split"] * 2
LEASE_SECONDS = 8  # longer than the database outage: running jobs keep their leases
S3_OUTAGE_S = 10.0
DATABASE_OUTAGE_S = 5.0
ANSWER_LIMIT_S = 10.0
WEBHOOK_SECRET = "outage-test-secret"


@dataclass
class Outages:
    """The deployment behind its relays, and when each was cut."""

    api: ServerProcess
    workers: list[WorkerProcess]
    storage: TcpRelay
    database: TcpRelay
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)

    def outage(
        self, relay: TcpRelay, name: str, seconds: float, prober: Prober, during: Any = None
    ) -> None:
        """Cut relay for `seconds` (calling `during()` after a third of them), then mend;
        the prober submits meanwhile."""
        start = time.monotonic()
        relay.cut()
        prober.submitting.set()
        if during is not None:
            time.sleep(seconds / 3)
            during()
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        prober.submitting.clear()
        relay.mend()
        self.windows[name] = (start, time.monotonic())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def outages(
    deployment: ScaleOutDeployment, tmp_path: Path, receiver: Receiver
) -> Iterator[Outages]:
    """API and two worker processes that reach PostgreSQL and S3 only through relays."""
    pipelines = write_pipelines(tmp_path / "pipelines")
    database = urlparse(deployment.database_url)
    s3_endpoint = urlparse(deployment.env["FORGESYTE_S3_ENDPOINT_URL"])
    assert database.port is not None and s3_endpoint.port is not None
    with relays(("127.0.0.1", s3_endpoint.port), ("127.0.0.1", database.port)) as (s3, db):
        env = {
            **deployment.env,
            "FORGESYTE_DATABASE_URL": deployment.database_url.replace(
                f":{database.port}/", f":{db.port}/"
            ),
            "FORGESYTE_S3_ENDPOINT_URL": f"http://{s3.address}",
            "FORGESYTE_PIPELINES_DIR": str(pipelines),
            "FORGESYTE_LEASE_SECONDS": str(LEASE_SECONDS),
            "FORGESYTE_SEGMENT_FRAMES": str(SEGMENT_FRAMES),
            "FORGESYTE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FORGESYTE_WEBHOOK_ALLOW_PRIVATE": "true",
            "FORGESYTE_SHUTDOWN_GRACE_S": "2",
        }
        with deployment.api_and_workers(tmp_path / "api", env, 2) as (api, workers):
            running = Outages(api, workers, s3, db)
            yield running
            for worker in running.workers:
                worker.kill()


def _stored(deployment: ScaleOutDeployment, job_id: str) -> tuple[bytes, bytes]:
    """A job's stored results and timeline, read from the bucket directly."""
    found = []
    for key in (f"results/{job_id}.jsonl", f"timelines/{job_id}.json"):
        answer = deployment.s3.get_object(Bucket=deployment.bucket, Key=f"{S3_PREFIX}/{key}")
        found.append(answer["Body"].read())
    return found[0], found[1]


def test_jobs_complete_through_storage_and_database_outages_and_a_killed_worker(
    outages: Outages,
    deployment: ScaleOutDeployment,
    receiver: Receiver,
    tmp_path: Path,
    report_figures: list[str],
) -> None:
    api = outages.api
    videos = {
        name: write_keyframed_video(tmp_path / f"{name}.mp4", frames, gop=5).read_bytes()
        for name, frames in VIDEO_FRAMES.items()
    }
    pipeline = str(SLOW_GREY["id"])
    started = time.monotonic()

    # a calm run of each video: the bytes every later job of it must store
    calm = {
        name: submit_video(api.url, video, pipeline_id=pipeline) for name, video in videos.items()
    }
    assert {s["status"] for s in wait_all(api.url, list(calm.values()), 90).values()} == {
        "completed"
    }
    expected = {name: _stored(deployment, job_id) for name, job_id in calm.items()}
    calm_s = time.monotonic() - started

    # the jobs the faults meet
    kinds: dict[str, str] = {}
    for name in FAULT_JOBS:
        job_id = submit_video(
            api.url, videos[name], pipeline_id=pipeline, callback_url=receiver.url
        )
        kinds[job_id] = name
    prober = Prober(api.url, list(kinds), calm["short"], videos["short"])
    probing = threading.Thread(target=prober.run, daemon=True)
    probing.start()
    faults_began = time.monotonic()
    time.sleep(1.0)  # under way: videos downloaded, analyses running

    def kill_a_worker() -> None:
        victim = outages.workers[0]
        victim.kill()
        replacement = WorkerProcess(
            victim.log_path.with_name("worker-restarted.log"), 1, victim.env
        )
        outages.workers[0] = replacement.launch()

    outages.outage(outages.storage, "storage", S3_OUTAGE_S, prober, during=kill_a_worker)
    time.sleep(1.0)
    receiver.default = 503  # the webhook receiver goes down with the database, and stays down
    outages.outage(outages.database, "database", DATABASE_OUTAGE_S, prober)
    time.sleep(1.0)
    receiver.default = 200
    faults_s = time.monotonic() - faults_began

    ended = wait_all(api.url, list(kinds), 120)
    prober.stop.set()
    probing.join(timeout=30)
    late = wait_all(api.url, prober.submitted, 60)  # what the prober's submits started
    took_s = time.monotonic() - faults_began

    # every job completed, with the calm run's bytes
    assert {job_id: s["status"] for job_id, s in ended.items()} == dict.fromkeys(kinds, "completed")
    assert {s["status"] for s in late.values()} <= {"completed"}
    for job_id, name in [*kinds.items(), *((j, "short") for j in prober.submitted)]:
        assert _stored(deployment, job_id) == expected[name], (job_id, name)

    # the API: never a 5xx but 503, each with Retry-After; nothing as slow as 10 s
    answers = prober.answers
    statuses = Counter((a.what, a.status) for a in answers)
    assert all(a.status in (200, 503) for a in answers), statuses
    assert all(a.retry_after for a in answers if a.status == 503), statuses
    slowest = max(answers, key=lambda a: a.elapsed_s)
    assert slowest.elapsed_s < ANSWER_LIMIT_S, slowest
    # storage down: job states and lists still from the database; /healthz says storage
    storage_window = outages.windows["storage"]
    assert {a.status for a in prober.during(storage_window, "status")} == {200}
    assert {a.status for a in prober.during(storage_window, "list")} == {200}
    assert {a.status for a in prober.during(storage_window, "results")} == {503}
    storage_health = [a.body for a in prober.during(storage_window, "healthz")]
    assert storage_health and all(h["checks"]["storage"] == "down" for h in storage_health[1:])
    submits = prober.during(storage_window, "submit")
    assert submits and {a.status for a in submits} == {503}
    database_window = outages.windows["database"]
    database_health = [a.body for a in prober.during(database_window, "healthz")]
    assert any(h["status"] == "unavailable" for h in database_health), database_health
    assert 503 in {a.status for a in prober.during(database_window, "list")}

    # nothing kept of the refused submits: every stored video has its job, no upload open
    with deployment.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one()
    assert rows == len(calm) + len(kinds) + len(prober.submitted)
    assert len(deployment.object_keys("videos")) == rows
    assert deployment.unfinished_uploads() == []

    # every completion webhook arrived, at least once (some twice is the promise)
    delivered = Counter(
        json.loads(r.body)["job_id"] for r in receiver.received if json.loads(r.body)
    )
    assert all(delivered[job_id] >= 1 for job_id in kinds), delivered
    events = {json.loads(r.body)["job_id"]: json.loads(r.body)["status"] for r in receiver.received}
    assert {events[job_id] for job_id in kinds} == {"completed"}

    report_figures.append(
        f"outages (S3 {S3_OUTAGE_S:g} s, PostgreSQL {DATABASE_OUTAGE_S:g} s, a worker "
        f"killed): {len(kinds)} + {len(prober.submitted)} jobs completed in {took_s:.1f} s "
        f"from the first fault (faults {faults_s:.1f} s; calm run {calm_s:.1f} s); "
        f"{len(answers)} API answers, slowest {slowest.elapsed_s:.2f} s ({slowest.what}); "
        f"{dict(sorted(Counter(f'{a.what} {a.status}' for a in answers).items()))}; "
        f"{len(receiver.received)} webhook requests for {len(kinds)} jobs"
    )
    assert uuid.UUID(calm["short"])  # the ids the API gave are UUIDs
