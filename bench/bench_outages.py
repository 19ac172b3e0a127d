"""Outage figures on the scale-out deployment, and what /healthz costs.

    uv run python bench/bench_outages.py                       # all: about 8 minutes
    uv run python bench/bench_outages.py --durations 5,30      # shorter outages only
    uv run python bench/bench_outages.py --only healthz        # the /healthz rows only
    uv run python bench/bench_outages.py --tolerance 60 --durations 120 --dependencies storage

A real PostgreSQL and S3-compatible server (moto), `forgesyte serve --workers 0` and two
`forgesyte worker` processes, all reaching the servers through TCP relays
(tests/support/relay.py), as in tests/scaleout/test_outages.py. For each dependency and
outage length: a batch of jobs is submitted, the relay is cut two seconds later and
mended after the outage, and the batch is followed to its end. Each row gives the jobs
that failed, the longest a job was delayed against the same batch in a calm run (from
submit to completed, job by job), the most claims a job took, and what the API answered
while the dependency was away (a prober asking status, the job list, /healthz and
submit, as clients do), with its slowest answer.

The /healthz rows count requests per second of the API process's CPU (one core's worth)
for /healthz and for a status read, and a status read's latency alone and under a
/healthz flood. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlparse

import boto3
import httpx
from botocore.config import Config
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' servers and relays
from tests.segments.videos import write_keyframed_video
from tests.support import services
from tests.support.outages import SLOW_GREY, Prober, wait_all, write_pipelines
from tests.support.relay import TcpRelay, relays
from tests.support.server import FORGESYTE, ServerProcess, WorkerProcess, api_and_workers

BATCH = 8  # jobs per round
FRAMES = 10  # x 0.2 s a frame (testkit sleep): 2 s of analysis a job
OUTAGE_AFTER_S = 2.0  # the batch is under way when the relay is cut
DURATIONS = (5.0, 30.0, 120.0)
HEALTH_REQUESTS = 3000  # per route, spread over HEALTH_CLIENTS threads
HEALTH_CLIENTS = 4
FLOOD_PER_S = 400  # /healthz requests a second during the flood, from HEALTH_CLIENTS threads
FLOOD_S = 5.0
# a flood at a steady rate, from a process of its own (its threads would slow the
# measuring one through the GIL): url, threads, requests a second
FLOOD = """
import sys, threading, time, httpx
url, threads, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def flood():
    with httpx.Client() as client:
        due = time.monotonic()
        while True:
            client.get(url)
            due += threads / rate
            time.sleep(max(0.0, due - time.monotonic()))
for _ in range(threads):
    threading.Thread(target=flood, daemon=True).start()
threading.Event().wait()
"""


@dataclass
class Deployment:
    """The processes, the relays in front of the servers, a direct view of the jobs."""

    api: ServerProcess
    workers: list[WorkerProcess]
    relays: dict[str, TcpRelay]
    database_url: str  # direct, not through the relay
    video: bytes


@dataclass(frozen=True)
class Round:
    """One outage (or the calm run, seconds 0) and what the batch and the API made of it."""

    dependency: str
    seconds: float
    done_after_s: dict[str, float]  # job -> seconds from the batch's submit to its end
    statuses: dict[str, str]
    attempts: int  # the most claims a job of the batch took
    answers: Counter[str]  # "<route> <status>" during the outage
    slowest_answer_s: float


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def deployment(tolerance_s: float | None) -> Iterator[Deployment]:
    """Servers, relays and processes, stopped and removed afterwards."""
    os.environ.update(services.FAKE_AWS_ENV)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    with (
        TemporaryDirectory(prefix="forgesyte-outages-") as folder,
        services.postgres_server() as postgres,
        services.s3_server() as s3_server,
    ):
        root = Path(folder)
        database_url = postgres.url(postgres.create_database())
        bucket = f"outages-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=s3_server.endpoint_url,
            config=Config(s3={"addressing_style": "path"}),
        ).create_bucket(Bucket=bucket)
        s3_port, pg_port = urlparse(s3_server.endpoint_url).port, postgres.port
        assert s3_port is not None
        with relays(("127.0.0.1", s3_port), ("127.0.0.1", pg_port)) as (s3_relay, pg_relay):
            env = {
                "FORGESYTE_DATABASE_URL": database_url.replace(
                    f":{pg_port}/", f":{pg_relay.port}/"
                ),
                "FORGESYTE_STORAGE_URL": f"s3://{bucket}/forgesyte",
                "FORGESYTE_S3_ENDPOINT_URL": f"http://{s3_relay.address}",
                "FORGESYTE_DATA_DIR": str(root / "data"),
                "FORGESYTE_PIPELINES_DIR": str(write_pipelines(root / "pipelines")),
                "FORGESYTE_SEGMENT_FRAMES": "0",  # whole jobs: one delay per job
            }
            if tolerance_s is not None:
                env["FORGESYTE_OUTAGE_TOLERANCE_S"] = str(tolerance_s)
            subprocess.run(
                [FORGESYTE, "db", "upgrade"], env={**os.environ, **env}, check=True,
                capture_output=True,
            )  # fmt: skip
            with api_and_workers(root / "api", root, env, 2) as (api, workers):
                video = write_keyframed_video(root / "job.mp4", FRAMES, gop=5).read_bytes()
                yield Deployment(
                    api, workers, {"storage": s3_relay, "database": pg_relay}, database_url,
                    video,
                )  # fmt: skip


def _submit_batch(url: str, video: bytes) -> tuple[list[str], float]:
    """BATCH jobs of the video; their ids and when the first was submitted."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30) as client:
        ids = []
        for _ in range(BATCH):
            answer = client.post(
                "/v1/video/submit",
                params={"pipeline_id": str(SLOW_GREY["id"])},
                files={"file": ("job.mp4", video, "video/mp4")},
            )
            answer.raise_for_status()
            ids.append(answer.json()["job_id"])
    return ids, started


def _follow(
    url: str, job_ids: list[str], started: float
) -> tuple[dict[str, float], dict[str, str]]:
    """When each job ended (seconds from started) and how."""
    done: dict[str, float] = {}
    statuses: dict[str, str] = {}
    waited = threading.Event()

    def each(job_id: str) -> None:
        ended = wait_all(url, [job_id], timeout_s=1800)
        done[job_id] = time.monotonic() - started
        statuses[job_id] = ended[job_id]["status"]

    threads = [threading.Thread(target=each, args=(job_id,)) for job_id in job_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waited.set()
    return done, statuses


def _attempts(database_url: str, job_ids: list[str]) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT max(attempts) FROM jobs WHERE job_id = ANY(:ids)"),
                {"ids": [uuid.UUID(job_id) for job_id in job_ids]},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(found or 0)


def run_round(running: Deployment, dependency: str, seconds: float, calm_id: str) -> Round:
    """A batch with `dependency` away for `seconds` (0: a calm run)."""
    job_ids, started = _submit_batch(running.api.url, running.video)
    prober = Prober(running.api.url, job_ids, calm_id, running.video)
    probing = threading.Thread(target=prober.run, daemon=True)
    probing.start()
    window = (0.0, 0.0)
    if seconds:
        time.sleep(OUTAGE_AFTER_S)
        relay = running.relays[dependency]
        cut_at = time.monotonic()
        relay.cut()
        prober.submitting.set()
        time.sleep(seconds)
        prober.submitting.clear()
        relay.mend()
        window = (cut_at, time.monotonic())
    done, statuses = _follow(running.api.url, job_ids, started)
    prober.stop.set()
    probing.join()
    wait_all(running.api.url, prober.submitted, timeout_s=600)  # the queue is empty again
    during = [a for a in prober.answers if window[0] <= a.at <= window[1]]
    return Round(
        dependency,
        seconds,
        done,
        statuses,
        _attempts(running.database_url, job_ids),
        Counter(f"{a.what} {a.status}" for a in during),
        max((a.elapsed_s for a in during), default=0.0),
    )


def outage_rows(durations: list[float], dependencies: list[str], tolerance_s: float | None) -> None:
    """Print one row per outage, against a calm run of the same batch."""
    with deployment(tolerance_s) as running:
        with httpx.Client(base_url=running.api.url, timeout=30) as client:
            calm_id = client.post(
                "/v1/video/submit",
                params={"pipeline_id": str(SLOW_GREY["id"])},
                files={"file": ("job.mp4", running.video, "video/mp4")},
            ).json()["job_id"]
        wait_all(running.api.url, [calm_id], timeout_s=120)
        _note("calm run")
        calm = run_round(running, "none", 0.0, calm_id)
        calm_order = sorted(calm.done_after_s.values())
        tolerance = "default 300 s" if tolerance_s is None else f"{tolerance_s:g} s"
        print(f"\n{BATCH} jobs of {FRAMES} frames x 0.2 s on 2 worker processes "
              f"(FORGESYTE_OUTAGE_TOLERANCE_S: {tolerance}); calm batch: last job "
              f"done {calm_order[-1]:.1f} s after the submit")  # fmt: skip
        print(
            f"{'outage':<22} {'failed':>6} {'longest delay':>14} {'claims':>6}  "
            "API answers while it was away (route status: count), slowest"
        )
        for dependency in dependencies:
            for seconds in durations:
                _note(f"{dependency} away for {seconds:g} s")
                measured = run_round(running, dependency, seconds, calm_id)
                order = sorted(measured.done_after_s.values())
                delay = max(out - base for out, base in zip(order, calm_order, strict=True))
                failed = sum(1 for status in measured.statuses.values() if status != "completed")
                answers = ", ".join(f"{k}: {v}" for k, v in sorted(measured.answers.items()))
                print(f"{dependency + f' {seconds:g} s':<22} {failed:>6} {delay:>12.1f} s "
                      f"{measured.attempts:>6}  {answers}; slowest "
                      f"{measured.slowest_answer_s:.2f} s", flush=True)  # fmt: skip


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _transactions(database_url: str) -> int:
    """Transactions PostgreSQL has committed and rolled back in the database so far."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = current_database()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _hammer(url: str, path: str, requests: int, clients: int) -> tuple[float, list[float]]:
    """requests GETs of path from `clients` keep-alive threads: wall seconds, latencies."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as session:
            for _ in range(requests // clients):
                started = time.perf_counter()
                assert session.get(path).status_code == 200
                with lock:
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def health_rows() -> None:
    """/healthz against a status read: requests per CPU-second of the API process."""
    with deployment(None) as running, httpx.Client(base_url=running.api.url) as client:
        assert running.api.process is not None
        pid = running.api.process.pid
        job_id = client.post(
            "/v1/video/submit",
            params={"pipeline_id": "testkit_noop"},
            files={"file": ("job.mp4", running.video, "video/mp4")},
        ).json()["job_id"]
        wait_all(running.api.url, [job_id], timeout_s=120)
        routes: dict[str, str] = {"status": f"/v1/video/status/{job_id}", "healthz": "/healthz"}
        rates: dict[str, float] = {}
        for name, path in [*routes.items(), *routes.items()]:  # twice each, the best kept
            before = _cpu_s(pid)
            _hammer(running.api.url, path, HEALTH_REQUESTS, HEALTH_CLIENTS)
            rate = HEALTH_REQUESTS / max(_cpu_s(pid) - before, 1e-9)
            rates[name] = max(rates.get(name, 0.0), rate)
        alone = _hammer(running.api.url, routes["status"], 400, 1)[1]
        flood = subprocess.Popen(
            [sys.executable, "-c", FLOOD, f"{running.api.url}/healthz", str(HEALTH_CLIENTS),
             str(FLOOD_PER_S)]
        )  # fmt: skip
        try:
            time.sleep(1.0)
            cpu, queries = _cpu_s(pid), _transactions(running.database_url)
            time.sleep(FLOOD_S)
            flood_cpu = (_cpu_s(pid) - cpu) / FLOOD_S
            flood_queries = (_transactions(running.database_url) - queries) / FLOOD_S
            flooded = _hammer(running.api.url, routes["status"], 400, 1)[1]
        finally:
            flood.kill()
            flood.wait()
        print("\n/healthz and a status read, the API process's CPU (PostgreSQL, S3)")
        print(f"  status read: {rates['status']:.0f} requests per CPU-second")
        print(f"  /healthz:    {rates['healthz']:.0f} requests per CPU-second "
              f"({rates['status'] / rates['healthz']:.2f} x a status read's cost)")  # fmt: skip
        print(
            f"  a /healthz flood of {FLOOD_PER_S} a second: the API process busy "
            f"{100 * flood_cpu:.0f}% of a core; {flood_queries:.0f} database "
            "transactions a second (every process's, the bench's own reads included)"
        )
        for label, latencies in (("alone", alone), ("during the flood", flooded)):
            ms = sorted(1000 * value for value in latencies)
            print(f"  status read {label}: p50 {statistics.median(ms):.1f} ms, "
                  f"p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms")  # fmt: skip


def _numbers(text: str, cast: Callable[[str], float]) -> list[float]:
    return [cast(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", default=",".join(f"{d:g}" for d in DURATIONS))
    parser.add_argument("--dependencies", default="storage,database")
    parser.add_argument("--tolerance", type=float, default=None, help="outage tolerance, s")
    parser.add_argument("--only", choices=("outages", "healthz"), default=None)
    options = parser.parse_args()
    _note(f"load average before: {os.getloadavg()[0]:.2f}")
    if options.only in (None, "healthz"):
        health_rows()
    if options.only in (None, "outages"):
        outage_rows(
            _numbers(options.durations, float),
            [name for name in options.dependencies.split(",") if name],
            options.tolerance,
        )
    _note(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
