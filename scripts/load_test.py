"""Load test for a ForgeSyte server on this machine (run on demand, not part of pytest).

Default scenario: start a private `forgesyte serve --workers 2` on a free loopback port with a
temporary data folder, make a tiny MP4, then for `--duration` seconds run `--pollers` clients
polling GET /v1/video/status/{id} of submitted jobs back to back and `--submitters` clients
submitting that MP4 (pipeline `ocr_only`, `max_frames=1`) with the Python client
(forgesyte.client). Afterwards wait (bounded; the client's wait) until every submitted job
has ended and check each one exists and ended `completed`.

Targets: zero errors, zero lost jobs, every job completed, status p99 under 50 ms.
Exit status: 0 on PASS, 1 on FAIL, 2 on a setup problem (bad URL, server would not start).

Only loopback servers are accepted (127.0.0.0/8, localhost, ::1). Everything is bounded: the
load phase by `--duration` and `--max-requests`, the wait for jobs by `--drain-timeout`, each
request by `--request-timeout`.

    uv run python scripts/load_test.py
    uv run python scripts/load_test.py --base-url http://127.0.0.1:8000 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np

from forgesyte.client import ApiError, Client, ServerUnreachable, WaitTimeout

STATUS_P99_TARGET_MS = 50.0
KNOWN_STATES = frozenset({"pending", "running", "completed", "failed"})


class SetupError(Exception):
    """The test could not be set up (refused URL, server did not start)."""


# -- safety -------------------------------------------------------------------------------------


def require_loopback(base_url: str) -> str:
    """Return the URL without a trailing slash if its host is loopback; raise SetupError if not."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise SetupError(f"refusing {base_url!r}: only http(s) URLs are accepted")
    host = (parts.hostname or "").lower()
    if host != "localhost":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise SetupError(
                f"refusing {base_url!r}: host must be 127.0.0.0/8, localhost or ::1"
            ) from None
        loopback4 = address.version == 4 and address in ipaddress.ip_network("127.0.0.0/8")
        if not (loopback4 or address == ipaddress.ip_address("::1")):
            raise SetupError(f"refusing {base_url!r}: {host} is not a loopback address")
    return base_url.rstrip("/")


# -- fixtures: video and server -----------------------------------------------------------------


def make_tiny_mp4(path: Path, frames: int = 5, size_wh: tuple[int, int] = (64, 48)) -> bytes:
    """Write a small MP4 (grey frames, mp4v) with OpenCV and return its bytes."""
    width, height = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (width, height))
    if not writer.isOpened():
        raise SetupError("OpenCV could not open an MP4 writer")
    try:
        for index in range(frames):
            writer.write(np.full((height, width, 3), 40 + index * 30, np.uint8))
    finally:
        writer.release()
    data = path.read_bytes()
    if b"ftyp" not in data[:64]:
        raise SetupError(f"OpenCV wrote no MP4 header to {path}")
    return data


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalServer:
    """A private `forgesyte serve` subprocess with its own data folder."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @classmethod
    def start(cls, data_dir: Path, workers: int, log_level: str, timeout_s: float) -> LocalServer:
        """Start the server and wait until /healthz answers 200."""
        port = free_loopback_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORGESYTE_")}
        env["FORGESYTE_DATA_DIR"] = str(data_dir)
        env["FORGESYTE_SHUTDOWN_GRACE_S"] = "5"
        log_path = data_dir / "server.log"
        command = [
            sys.executable,
            "-m",
            "forgesyte.cli",
            "--log-level",
            log_level,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        server = cls(process, f"http://127.0.0.1:{port}", log_path)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SetupError(f"server exited with {process.returncode}:\n{server.tail()}")
                try:
                    if client.get(f"{server.base_url}/healthz").status_code == 200:
                        return server
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        server.stop()
        raise SetupError(f"server did not answer /healthz within {timeout_s:.0f} s")

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the server process so far (Linux /proc), if readable."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGINT, wait up to timeout_s, then kill."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Stats:
    """What the clients saw."""

    status_latency_s: list[float] = field(default_factory=list)
    submit_latency_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    job_ids: list[str] = field(default_factory=list)
    loop_lag_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class LoadConfig:
    """The knobs of the load phase."""

    base_url: str
    video: bytes
    duration_s: float
    pollers: int
    submitters: int
    max_requests: int
    poll_interval_s: float
    submit_interval_s: float
    pipeline_id: str
    max_frames: int
    request_timeout_s: float
    api_key: str | None

    @property
    def headers(self) -> dict[str, str]:
        """The key as the pollers send it."""
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def client(self) -> Client:
        """A client of the server that tries each request once: the load test counts every
        refusal and connection error instead of retrying it away."""
        return Client(
            self.base_url, self.api_key or "", timeout_s=self.request_timeout_s, attempts=1
        )


ERROR_BACKOFF_S = 0.05  # pause after a failed request, so a dead server is not hammered


def _error_kind(exc: BaseException) -> str:
    """An exception's kind for the error table."""
    return f"exception {type(exc).__name__}"


async def _submit_once(
    client: Client, config: LoadConfig, stats: Stats, record: bool = True
) -> bool:
    """Submit the video once (the client, in a thread: it blocks); record the latency and
    the job id; False on any error."""
    stats.requests += 1
    started = time.perf_counter()
    try:
        job = await asyncio.to_thread(
            client.submit,
            io.BytesIO(config.video),
            pipeline_id=config.pipeline_id,
            max_frames=config.max_frames,
        )
    except ServerUnreachable as exc:
        stats.errors[f"submit {_error_kind(exc)}: {exc.detail}"] += 1
        return False
    except ApiError as exc:
        stats.errors[f"submit HTTP {exc.status_code}"] += 1
        return False
    if record:
        stats.submit_latency_s.append(time.perf_counter() - started)
    stats.job_ids.append(job.id)
    return True


async def _submitter(client: Client, config: LoadConfig, stats: Stats, deadline: float) -> None:
    """One client submitting a job every submit interval until the deadline or the cap."""
    first = True
    while time.monotonic() < deadline and stats.requests < config.max_requests:
        if not first and config.submit_interval_s > 0:
            await asyncio.sleep(config.submit_interval_s)
        first = False
        if not await _submit_once(client, config, stats):
            await asyncio.sleep(ERROR_BACKOFF_S)


class _KeepAliveConnection:
    """A lean HTTP/1.1 keep-alive GET client on one socket.

    The pollers use it rather than httpx: at 200 requests/s httpx's own CPU cost on a
    2-core machine shared with the server delays the client's event loop and inflates
    the latencies it reports; this costs a small fraction of that.
    """

    def __init__(self, config: LoadConfig) -> None:
        parsed = urllib.parse.urlsplit(config.base_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        extra = "".join(f"{name}: {value}\r\n" for name, value in config.headers.items())
        self.request_head = f"Host: {self.host}:{self.port}\r\n{extra}\r\n"
        self.timeout_s = config.request_timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        """GET path; return the status code (the body is read and dropped)."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.request_head}".encode())
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout_s)
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await asyncio.wait_for(self.reader.readexactly(length), self.timeout_s)
        except BaseException:
            self.close()
            raise
        return status

    def close(self) -> None:
        """Drop the socket; the next get() reconnects."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _poller(config: LoadConfig, stats: Stats, deadline: float) -> None:
    """One client polling the status of random submitted jobs until the deadline or the cap."""
    ids = stats.job_ids  # shared, appended to by the submitters
    perf = time.perf_counter
    latencies = stats.status_latency_s
    connection = _KeepAliveConnection(config)
    # Start at a random point of one poll period, so that pollers do not move in lockstep waves.
    await asyncio.sleep(random.random() * max(config.poll_interval_s, 0.05))
    try:
        while time.monotonic() < deadline and stats.requests < config.max_requests:
            job_id = ids[random.randrange(len(ids))]
            stats.requests += 1
            started = perf()
            try:
                status = await connection.get(f"/v1/video/status/{job_id}")
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                stats.errors[f"status exception {type(exc).__name__}"] += 1
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
            latencies.append(perf() - started)
            if status != 200:
                stats.errors[f"status HTTP {status}"] += 1
            if config.poll_interval_s > 0:
                await asyncio.sleep(config.poll_interval_s)
    finally:
        connection.close()


async def _loop_lag_monitor(stats: Stats, deadline: float, tick_s: float = 0.01) -> None:
    """How late the client's event loop wakes up: a busy client inflates every latency."""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        await asyncio.sleep(tick_s)
        stats.loop_lag_s.append(max(0.0, time.perf_counter() - started - tick_s))


async def run_load(config: LoadConfig) -> tuple[Stats, float]:
    """Run the load phase; return the stats and its wall-clock length in seconds.

    Each simulated client owns one keep-alive connection, like a real client would. The
    submitters use the Python client (one each; its upload streams the file and asks
    first); the pollers a lean GET client (see _KeepAliveConnection), so the generator's own
    CPU does not inflate the latencies.
    """
    stats = Stats()
    with ExitStack() as stack:
        clients = [stack.enter_context(config.client()) for _ in range(max(config.submitters, 1))]
        await _submit_once(clients[0], config, stats, record=False)  # pollers need one id
        if not stats.job_ids:
            raise SetupError(f"the first submission failed: {dict(stats.errors)}")
        started = time.monotonic()
        deadline = started + config.duration_s
        submitters = clients[: config.submitters]
        tasks = [_poller(config, stats, deadline) for _ in range(config.pollers)]
        tasks += [_submitter(client, config, stats, deadline) for client in submitters]
        monitor = asyncio.create_task(_loop_lag_monitor(stats, deadline))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        monitor.cancel()  # the clients may stop early, at the request cap
        return stats, elapsed


@dataclass
class JobOutcome:
    """How the submitted jobs ended."""

    completed: int = 0
    failed: int = 0
    lost: int = 0
    unfinished: int = 0
    odd: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    wait_s: float = 0.0


def wait_for_jobs(config: LoadConfig, job_ids: Sequence[str], timeout_s: float) -> JobOutcome:
    """Wait for each job to end (the client's wait, retrying reads), all within timeout_s.

    Once the time is up, each job left is looked at once more: unfinished if it has not
    ended by then.
    """
    outcome = JobOutcome()
    started = time.monotonic()
    deadline = started + timeout_s
    with Client(
        config.base_url, config.api_key or "", timeout_s=config.request_timeout_s
    ) as client:
        for job_id in dict.fromkeys(job_ids):
            try:
                final = client.job(job_id).wait(timeout=max(0.0, deadline - time.monotonic()))
            except WaitTimeout:
                outcome.unfinished += 1
                continue
            except ApiError as exc:
                if exc.status_code != 404:
                    raise
                outcome.lost += 1
                continue
            if final.status not in KNOWN_STATES:
                outcome.odd[final.status] += 1
            if final.status == "completed":
                outcome.completed += 1
            elif final.status == "failed":
                outcome.failed += 1
                outcome.failures.append(f"{job_id}: {final.error_message}")
    outcome.wait_s = time.monotonic() - started
    return outcome


# -- the report ---------------------------------------------------------------------------------


def percentile_ms(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of samples in seconds, as milliseconds; NaN if empty."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000


def _latency_line(name: str, samples: Sequence[float]) -> str:
    """One line of latency percentiles."""
    p50, p95, p99 = (percentile_ms(samples, q) for q in (50, 95, 99))
    top = max(samples) * 1000 if samples else float("nan")
    return (
        f"  {name:<7} n={len(samples):<8} p50={p50:8.1f} ms  p95={p95:8.1f} ms  "
        f"p99={p99:8.1f} ms  max={top:8.1f} ms"
    )


def report(
    config: LoadConfig,
    stats: Stats,
    elapsed_s: float,
    outcome: JobOutcome,
    cpu: dict[str, float | None],
) -> bool:
    """Print the figures and the verdict; return True on PASS."""
    error_total = sum(stats.errors.values())
    status_p99 = percentile_ms(stats.status_latency_s, 99)
    submitted = len(stats.job_ids)
    print()
    print(f"ForgeSyte load test against {config.base_url}")
    print(
        f"  {config.pollers} pollers (interval {config.poll_interval_s:g} s), "
        f"{config.submitters} submitters, {elapsed_s:.1f} s, "
        f"pipeline {config.pipeline_id} max_frames={config.max_frames}"
    )
    cores = os.cpu_count() or 1
    print(
        f"  NOTE: client and server share this machine's {cores} core(s); client-side latency "
        "includes time the client's own event loop was busy"
    )
    print(f"requests:    {stats.requests} ({stats.requests / elapsed_s:.0f} req/s)")
    print(
        f"throughput:  status {len(stats.status_latency_s) / elapsed_s:.0f} req/s, "
        f"submit {len(stats.submit_latency_s) / elapsed_s:.1f} req/s"
    )
    print(f"errors:      {error_total}")
    for kind, count in stats.errors.most_common():
        print(f"  {kind}: {count}")
    print("latency (client-side, request sent to response read):")
    print(_latency_line("status", stats.status_latency_s))
    print(_latency_line("submit", stats.submit_latency_s))
    print(
        f"client loop lag: p50={percentile_ms(stats.loop_lag_s, 50):.1f} ms "
        f"p99={percentile_ms(stats.loop_lag_s, 99):.1f} ms (10 ms timer oversleep)"
    )
    cpu_text = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in cpu.items() if seconds is not None
    )
    if cpu_text:
        print(f"CPU used during load ({elapsed_s:.0f} s wall x {cores} cores): {cpu_text}")
    print(
        f"jobs:        submitted {submitted}, completed {outcome.completed}, "
        f"failed {outcome.failed}, lost {outcome.lost}, unfinished {outcome.unfinished} "
        f"(waited {outcome.wait_s:.1f} s)"
    )
    for line in outcome.failures[:5]:
        print(f"  failed: {line}")
    if outcome.odd:
        print(f"  unexpected states: {dict(outcome.odd)}")
    checks = [
        ("zero errors", error_total == 0, f"{error_total}"),
        ("zero lost jobs", outcome.lost == 0, f"{outcome.lost}"),
        (
            "every job completed",
            submitted > 0 and outcome.completed == submitted,
            f"{outcome.completed}/{submitted}",
        ),
        (
            f"status p99 < {STATUS_P99_TARGET_MS:g} ms",
            status_p99 < STATUS_P99_TARGET_MS,
            f"{status_p99:.1f} ms",
        ),
    ]
    for name, ok, value in checks:
        print(f"  [{'ok' if ok else 'MISS'}] {name}: {value}")
    passed = all(ok for _, ok, _ in checks)
    print("PASS" if passed else "FAIL")
    return passed


# -- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="use this running (loopback) server instead")
    parser.add_argument("--duration", type=float, default=60.0, help="load phase, seconds")
    parser.add_argument("--pollers", type=int, default=200, help="concurrent status pollers")
    parser.add_argument(
        "--submitters", type=int, default=5, help="concurrent submitters (0: only the first job)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=2_000_000, help="hard cap on load-phase requests"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="pause after each poll, s (like a client)"
    )
    parser.add_argument(
        "--submit-interval", type=float, default=2.0, help="pause between a submitter's jobs, s"
    )
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="wait for jobs, s")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="per request, s")
    parser.add_argument("--workers", type=int, default=2, help="worker loops of own server")
    parser.add_argument("--server-log-level", default="WARNING", help="own server's log level")
    parser.add_argument("--pipeline-id", default="ocr_only")
    parser.add_argument("--max-frames", type=int, default=1)
    parser.add_argument(
        "--api-key", default=os.environ.get("FORGESYTE_API_KEY"), help="the server's API key"
    )
    return parser


def _validate(args: argparse.Namespace) -> None:
    """Refuse options that would make the run unbounded or meaningless."""
    if not 0 < args.duration <= 3600:
        raise SetupError("--duration must be in (0, 3600] seconds")
    if args.pollers < 1 or args.submitters < 0:
        raise SetupError("--pollers must be >= 1 and --submitters >= 0")
    if not 0 < args.max_requests <= 10_000_000:
        raise SetupError("--max-requests must be in [1, 10_000_000]")
    if not 0 < args.drain_timeout <= 3600:
        raise SetupError("--drain-timeout must be in (0, 3600] seconds")
    if args.max_frames < 1 or args.workers < 1 or args.poll_interval < 0:
        raise SetupError("--max-frames and --workers must be >= 1, --poll-interval >= 0")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test; 0 on PASS, 1 on FAIL, 2 on a setup problem."""
    args = build_parser().parse_args(argv)
    try:
        _validate(args)
        if args.base_url:
            require_loopback(args.base_url)  # refuse before making anything
        with tempfile.TemporaryDirectory(prefix="forgesyte-load-") as scratch:
            return _run(args, Path(scratch))
    except SetupError as exc:
        print(f"load_test: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, scratch_dir: Path) -> int:
    """Set up, load, wait for the jobs, report; the private server is stopped on the way out."""
    server: LocalServer | None = None
    try:
        video = make_tiny_mp4(scratch_dir / "tiny.mp4")
        if args.base_url:
            base_url = require_loopback(args.base_url)
        else:
            data_dir = scratch_dir / "data"
            data_dir.mkdir()
            print(f"starting forgesyte serve --workers {args.workers} in {data_dir} ...")
            server = LocalServer.start(data_dir, args.workers, args.server_log_level, 120.0)
            base_url = server.base_url
        config = LoadConfig(
            base_url=base_url,
            video=video,
            duration_s=args.duration,
            pollers=args.pollers,
            submitters=args.submitters,
            max_requests=args.max_requests,
            poll_interval_s=args.poll_interval,
            submit_interval_s=args.submit_interval,
            pipeline_id=args.pipeline_id,
            max_frames=args.max_frames,
            request_timeout_s=args.request_timeout,
            api_key=args.api_key,
        )
        print(
            f"load: {args.pollers} pollers + {args.submitters} submitters for "
            f"{args.duration:g} s against {base_url} ..."
        )
        server_cpu_start = server.cpu_seconds() if server else None
        client_cpu_start = time.process_time()
        stats, elapsed = asyncio.run(run_load(config))
        cpu: dict[str, float | None] = {"client": time.process_time() - client_cpu_start}
        if server is not None and server_cpu_start is not None:
            server_cpu_end = server.cpu_seconds()
            if server_cpu_end is not None:
                cpu["server"] = server_cpu_end - server_cpu_start
        print(f"waiting up to {args.drain_timeout:g} s for {len(stats.job_ids)} jobs ...")
        outcome = wait_for_jobs(config, stats.job_ids, args.drain_timeout)
        passed = report(config, stats, elapsed, outcome, cpu)
        job_trouble = outcome.failed or outcome.lost or outcome.unfinished
        if server is not None and (stats.errors or job_trouble):
            print(f"--- server log tail ---\n{server.tail()}")
        return 0 if passed else 1
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
