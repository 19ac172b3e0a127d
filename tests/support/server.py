"""Real `forgesyte serve` and `forgesyte worker` processes, and HTTP helpers to drive them."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from forgesyte.client import Backoff, Client, JobStatus

FORGESYTE = str(Path(sys.executable).parent / "forgesyte")
TESTKIT_PIPELINES = Path(__file__).resolve().parents[1] / "plugin_dist" / "pipelines"
# the suite's servers load models at a pipeline's first job, not when a child starts: most
# tests run testkit pipelines, and OCR models cost each child 2 s of CPU (a test that
# needs a warm child sets FORGESYTE_PRELOAD_PIPELINES itself)
TEST_ENV = {"FORGESYTE_PIPELINES_DIR": str(TESTKIT_PIPELINES), "FORGESYTE_PRELOAD_PIPELINES": ""}


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _StoppableProcess:
    """SIGTERM and SIGKILL for a started `forgesyte` process."""

    process: subprocess.Popen[bytes] | None

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait for the exit, return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL the process (its analysis children die with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class ServerProcess(_StoppableProcess):
    """A running server, its URL and its data folder."""

    data_dir: Path
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> ServerProcess:
        """Start `forgesyte serve` and wait until /healthz answers."""
        env = {
            **os.environ,
            "FORGESYTE_DATA_DIR": str(self.data_dir),
            **TEST_ENV,
            **self.env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    FORGESYTE,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server did not answer in {timeout_s} s:\n{self.log_text()}")

    def log_text(self) -> str:
        """What the server printed so far."""
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""


def submit(
    url: str, video: bytes, *, timeout_s: float = 30.0, headers: Any = None, **params: Any
) -> httpx.Response:
    """POST a video to /v1/video/submit as it is, for tests of the server's answer to the
    request itself (refusals, limits, idempotency); submit_video and run_job for the rest."""
    return httpx.post(
        f"{url}/v1/video/submit",
        params={k: str(v) for k, v in params.items()},
        files={"file": ("video.mp4", video, "video/mp4")},
        headers=headers,
        timeout=timeout_s,
    )


# the tests look as often as they did before the client's backoff: a job's end is seen
# within 0.1 s, not up to 2 s later
TEST_POLL = Backoff(first_s=0.1, factor=1.0, max_s=0.1)


def submit_video(url: str, video: bytes, *, api_key: str | None = None, **params: Any) -> str:
    """Submit a video through the client (pipeline_id, callback_url, options); its job id."""
    with Client(url, api_key) as client:
        return client.submit(io.BytesIO(video), **params).id


def wait_for_end(
    url: str, job_id: str, timeout_s: float = 120.0, *, api_key: str | None = None
) -> tuple[JobStatus, list[float]]:
    """Follow a job with the client's wait until it ends; its final status and the progress
    seen at each poll. WaitTimeout after timeout_s."""
    seen: list[float] = []
    with Client(url, api_key) as client:
        final = client.job(job_id).wait(
            timeout_s, lambda status: seen.append(status.progress), poll=TEST_POLL
        )
    return final, seen


def run_job(
    url: str, video: bytes, *, timeout_s: float = 120.0, api_key: str | None = None, **params: Any
) -> JobStatus:
    """Submit a video through the client and wait for the job's end; its final status."""
    job_id = submit_video(url, video, api_key=api_key, **params)
    return wait_for_end(url, job_id, timeout_s, api_key=api_key)[0]


class _Reached(Exception):
    """Ends a wait early: the status a test waited for."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(status.status)
        self.status = status


def wait_until(
    url: str,
    job_id: str,
    reached: Callable[[JobStatus], bool],
    *,
    timeout_s: float = 60.0,
    api_key: str | None = None,
    poll: Backoff = TEST_POLL,
) -> JobStatus:
    """Follow a job with the client's wait until reached(status) holds (e.g. running and
    under way); that status. AssertionError if the job ends first, WaitTimeout after
    timeout_s."""

    def check(status: JobStatus) -> None:
        if reached(status):
            raise _Reached(status)

    try:
        with Client(url, api_key) as client:
            final = client.job(job_id).wait(timeout_s, check, poll=poll)
    except _Reached as got:
        return got.status
    raise AssertionError(f"job {job_id} ended {final.status} before the state waited for")


_WAITING_FOR_A_JOB = "unix_stream_read_generic"


def _children(pid: int) -> list[int]:
    """The pids of a process's children (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process is gone
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wchan(pid: int) -> str:
    """Where in the kernel a process sleeps (empty when it runs or is gone)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return ""


@dataclass
class WorkerProcess(_StoppableProcess):
    """A running `forgesyte worker --concurrency N` (worker loops only: PostgreSQL deployments)."""

    log_path: Path
    concurrency: int = 1
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The worker process's pid (worker ids are `<hostname>-<pid>-<loop index>`)."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 90.0) -> WorkerProcess:
        """Start the process and wait until it says its worker loops run."""
        return self.launch().wait_started(timeout_s)

    def launch(self) -> WorkerProcess:
        """Start the process; do not wait for it."""
        env = {**os.environ, **TEST_ENV, **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [FORGESYTE, "worker", "--concurrency", str(self.concurrency)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_started(self, timeout_s: float = 90.0) -> WorkerProcess:
        """Wait until the process says its worker loops run."""
        assert self.process is not None
        ready = f"worker running {self.concurrency} worker loop"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_text()}")
            if ready in self.log_text():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"worker did not start in {timeout_s} s:\n{self.log_text()}")

    def wait_idle(self, timeout_s: float = 120.0) -> WorkerProcess:
        """Wait until each worker loop's analysis child has loaded and waits for a job.

        Linux only: a waiting child is blocked reading its socket to the worker, which
        /proc/<pid>/wchan shows as unix_stream_read_generic.
        """
        deadline = time.monotonic() + timeout_s
        waits: list[str] = []
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log_text()
            waits = [_wchan(pid) for pid in _children(self.pid)]
            if waits.count(_WAITING_FOR_A_JOB) >= self.concurrency:
                return self
            time.sleep(0.1)
        raise RuntimeError(
            f"the analysis children of worker {self.pid} did not settle in {timeout_s} s "
            f"(kernel wait channels: {waits}):\n{self.log_text()}"
        )

    def log_text(self) -> str:
        """What the worker printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def streamed_submit(
    url: str,
    video: bytes,
    *,
    chunk_size: int = 256 * 1024,
    after: tuple[int, Callable[[], None]] | None = None,
    timeout_s: float = 60.0,
    **params: Any,
) -> httpx.Response:
    """POST a video as a chunked multipart body (no Content-Length), as a slow client sends it.

    ``after=(n, callback)`` calls callback once n bytes of the video have been sent,
    while the request is still open; a callback that raises ends the upload there.
    """
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        'filename="video.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, len(video), chunk_size):
            yield video[start : start + chunk_size]
            if after is not None and start < after[0] <= start + chunk_size:
                after[1]()
        yield tail

    return httpx.post(
        f"{url}/v1/video/submit",
        params={k: str(v) for k, v in params.items()},
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=timeout_s,
    )


@contextlib.contextmanager
def api_and_workers(
    api_dir: Path, logs: Path, env: dict[str, str], processes: int, concurrency: int = 1
) -> Iterator[tuple[ServerProcess, list[WorkerProcess]]]:
    """`serve --workers 0` and `processes` `worker` processes of `concurrency` loops each
    (logs in `logs`), every analysis child loaded; all killed afterwards. The schema must
    be in place."""
    api = ServerProcess(api_dir, workers=0, env=env)
    workers = [
        WorkerProcess(logs / f"worker-{index}.log", concurrency, env) for index in range(processes)
    ]
    try:
        for worker in workers:
            worker.launch()
        api.start()
        for worker in workers:
            worker.wait_started().wait_idle()
        yield api, workers
    finally:
        for worker in workers:
            worker.kill()
        api.kill()
