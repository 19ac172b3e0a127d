"""A real `forgesyte serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FORGESYTE = str(Path(sys.executable).parent / "forgesyte")
TESTKIT_PIPELINES = Path(__file__).resolve().parents[1] / "plugin_dist" / "pipelines"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
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
            "FORGESYTE_PIPELINES_DIR": str(TESTKIT_PIPELINES),
            **self.env,
        }
        log = (self.data_dir / "server.log").open("ab")
        self.data_dir.mkdir(parents=True, exist_ok=True)
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

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait for the exit, return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL the server (its analysis children die with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def submit(
    url: str, video: bytes, *, timeout_s: float = 30.0, headers: Any = None, **params: Any
) -> httpx.Response:
    """POST a video to /v1/video/submit."""
    return httpx.post(
        f"{url}/v1/video/submit",
        params={k: str(v) for k, v in params.items()},
        files={"file": ("video.mp4", video, "video/mp4")},
        headers=headers,
        timeout=timeout_s,
    )


def wait_for_end(
    url: str, job_id: str, timeout_s: float = 120.0, poll_s: float = 0.1
) -> tuple[dict[str, Any], list[float]]:
    """Poll a job until completed or failed; return its last status and the progress seen."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status: dict[str, Any] = httpx.get(f"{url}/v1/video/status/{job_id}", timeout=10).json()
        seen.append(float(status["progress"]))
        if status["status"] in ("completed", "failed"):
            return status, seen
        time.sleep(poll_s)
    raise AssertionError(f"job {job_id} did not end in {timeout_s} s; last status {status}")
