"""Measurements through a real `forgesyte serve`: job latency and two jobs at once."""

from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_local import TESTKIT_PIPELINES

from forgesyte.client import Backoff, Client, JobStatus

FORGESYTE = str(Path(sys.executable).parent / "forgesyte")

ONE_CORE = {"FORGESYTE_ANALYSIS_THREADS": "1"}
"""The environment of a `--workers 1` server that analyses on one core: row f's "1"."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`forgesyte serve` on a free loopback port with its own data folder (a context manager)."""

    def __init__(
        self, workers: int, env: dict[str, str] | None = None, log_level: str = "WARNING"
    ) -> None:
        self.workers = workers
        self.log_level = log_level
        self.env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="forgesyte-bench-")
        self.data_dir = Path(self._tmp.name)
        self.process: subprocess.Popen[bytes] | None = None
        self.client = Client(self.url, api_key="")  # this thread's; other threads make their own

    def __enter__(self) -> Server:
        env = {
            **os.environ,
            "FORGESYTE_DATA_DIR": str(self.data_dir),
            "FORGESYTE_PIPELINES_DIR": str(TESTKIT_PIPELINES),
            **self.env,
        }
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(FORGESYTE, "--log-level", self.log_level, "serve"),
                *("--port", str(self.port), "--workers", str(self.workers)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not answer in 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        """The server's pid."""
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        """The tail of the server log."""
        return (self.data_dir / "server.log").read_text(errors="replace")[-4000:]

    def submit(self, video: bytes, pipeline_id: str, **options: Any) -> str:
        """Submit a video with the client; return the job id."""
        return self.client.submit(io.BytesIO(video), pipeline_id=pipeline_id, **options).id

    def wait(
        self,
        job_id: str,
        poll_s: float = 0.005,
        timeout_s: float = 600,
        client: Client | None = None,
    ) -> JobStatus:
        """Wait (the client's wait, polling every poll_s: the latencies are read to that)
        until the job ends; its final status (raise unless it completed)."""
        every = Backoff(first_s=poll_s, factor=1.0, max_s=poll_s)
        final = (client or self.client).job(job_id).wait(timeout_s, poll=every)
        if final.status != "completed":
            raise RuntimeError(f"job {job_id} {final.status}: {final.error_message}")
        return final

    def run_job(self, video: bytes, pipeline_id: str, poll_s: float = 0.005) -> float:
        """Submit and wait; return seconds from submit to completed, as the client sees them."""
        start = time.perf_counter()
        self.wait(self.submit(video, pipeline_id), poll_s=poll_s)
        return time.perf_counter() - start

    def run_jobs_at_once(self, video: bytes, pipeline_id: str, count: int, poll_s: float) -> float:
        """Submit `count` jobs together; return seconds until the last one completed."""
        start = time.perf_counter()
        job_ids = [self.submit(video, pipeline_id) for _ in range(count)]

        def follow(job_id: str) -> None:
            with Client(self.url, api_key="") as client:  # a Client serves one thread
                self.wait(job_id, poll_s, client=client)

        threads = [threading.Thread(target=follow, args=(job_id,)) for job_id in job_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start


def latency(server: Server, video: bytes, jobs: int) -> tuple[list[float], list[float]]:
    """(e) submit -> completed of one-frame noop jobs, one after another.

    Returns the client-side seconds and the server-side ones (updated_at - created_at).
    """
    client_side: list[float] = []
    server_side: list[float] = []
    for _ in range(jobs):
        start = time.perf_counter()
        status = server.wait(server.submit(video, "testkit_noop"))
        client_side.append(time.perf_counter() - start)
        server_side.append((status.updated_at - status.created_at).total_seconds())
    return client_side, server_side


def children_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the live child processes of `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # ppid
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


@dataclass(frozen=True)
class PairRound:
    """One job on one core, one alone on the 2-worker server, then two at once there: wall
    seconds, and analysis CPU seconds per job."""

    one_core_s: float  # a server of one worker whose child has one thread
    alone_s: float  # the 2-worker server, nothing else running: the job takes the idle core
    pair_s: float  # two at once on the 2-worker server
    one_core_cpu_s: float
    pair_cpu_s: float

    @property
    def ratio(self) -> float:
        """Throughput of two at once over one job's on one core."""
        return 2 * self.one_core_s / self.pair_s


def pair_round(server: Server, one_core: Server, video: bytes) -> PairRound:
    """(f) one ocr_only job on one core, one alone on the 2-worker server, then two at once.

    Also the CPU the analysis children spent per job, to tell CPU lost to oversubscription
    from CPU taken by other processes on a shared machine.
    """
    cpu = children_cpu_s(one_core.pid)
    single = one_core.run_job(video, "ocr_only", poll_s=0.1)
    single_cpu = children_cpu_s(one_core.pid) - cpu
    alone = server.run_job(video, "ocr_only", poll_s=0.1)
    cpu = children_cpu_s(server.pid)
    pair = server.run_jobs_at_once(video, "ocr_only", 2, poll_s=0.1)
    pair_cpu = (children_cpu_s(server.pid) - cpu) / 2
    return PairRound(single, alone, pair, single_cpu, pair_cpu)


def median_round(rounds: list[PairRound]) -> PairRound:
    """Field-wise medians; the ratio of the result is recomputed from the median times."""
    median = statistics.median
    return PairRound(
        median(r.one_core_s for r in rounds),
        median(r.alone_s for r in rounds),
        median(r.pair_s for r in rounds),
        median(r.one_core_cpu_s for r in rounds),
        median(r.pair_cpu_s for r in rounds),
    )


_BUSY_LOOP = "n = 0\nfor i in range(25_000_000):\n    n += i\n"


def machine_pair_round() -> float:
    """The machine's own ratio right now: two CPU-bound processes at once against one.

    A pure-Python loop, one thread each: what the cores give two jobs, whatever the load of
    other users, to read row f against.
    """

    def run(count: int) -> float:
        start = time.perf_counter()
        processes = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP]) for _ in range(count)]
        for process in processes:
            process.wait()
        return time.perf_counter() - start

    return 2 * run(1) / run(2)


def warm_up(server: Server, one_frame: bytes, ocr_video: bytes) -> None:
    """Give every worker child a noop job and an OCR job, so models and code paths are warm."""
    server.run_jobs_at_once(ocr_video, "ocr_only", server.workers, poll_s=0.05)
    server.run_jobs_at_once(one_frame, "testkit_noop", server.workers, poll_s=0.05)
