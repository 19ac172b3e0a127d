"""Tools for inflicting faults on a real server and checking what it left behind."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from forgesyte.client import JobStatus
from forgesyte.db.engine import create_db_engine
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobRecord
from tests.support.metrics import scrape
from tests.support.server import ServerProcess, wait_until

BOUNDARY = "faultsboundary7d1c"
LEAK_MARKERS = ("Traceback", 'File "', "/tmp", "/work", "site-packages", ".py")


# -- processes --------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The pids whose parent is pid (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def command_line(pid: int) -> str:
    """A process's command line, or '' if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def analysis_children(server: ServerProcess) -> list[int]:
    """The server's spawned analysis children (multiprocessing spawn, not the tracker)."""
    assert server.process is not None
    return [pid for pid in children_of(server.process.pid) if "spawn_main" in command_line(pid)]


def wait_until_gone(pids: Iterable[int], timeout_s: float = 10.0) -> list[int]:
    """Wait for processes to die; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


# -- the HTTP side ----------------------------------------------------------------------


def status_of(server: ServerProcess, job_id: str, **kwargs: Any) -> httpx.Response:
    """GET the job's status."""
    return httpx.get(f"{server.url}/v1/video/status/{job_id}", timeout=10, **kwargs)


def job_counts(server: ServerProcess) -> dict[str, int]:
    """Jobs by state now, from /metrics (counted when asked; /healthz's counts may be a
    second old), with the server's key when it has one."""
    metrics = scrape(server.url, server.env.get("FORGESYTE_API_KEY"))
    return {
        dict(labels)["status"]: int(count)
        for labels, count in metrics.labelled("forgesyte_jobs").items()
    }


def wait_for_status(
    server: ServerProcess,
    job_id: str,
    wanted: str,
    *,
    min_progress: float = 0.0,
    timeout_s: float = 60.0,
) -> JobStatus:
    """Follow a job until it has the wanted status (and at least min_progress)."""
    return wait_until(
        server.url,
        job_id,
        lambda status: status.status == wanted and status.progress >= min_progress,
        timeout_s=timeout_s,
    )


def results_of(server: ServerProcess, job_id: str) -> dict[str, Any]:
    """The results document of a completed job."""
    response = httpx.get(f"{server.url}/v1/video/results/{job_id}", timeout=10)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def assert_every_frame_once(document: dict[str, Any], frame_count: int) -> None:
    """The results hold each of the video's frames exactly once, in order."""
    indices = [entry["frame_index"] for entry in document["results"]]
    assert indices == list(range(frame_count)), indices
    assert document["frames_analysed"] == frame_count


def assert_no_leak(text: str, *paths: Path) -> None:
    """An error body or message shows no stack trace and no server path."""
    for marker in (*LEAK_MARKERS, *(str(path) for path in paths)):
        assert marker not in text, f"{marker!r} leaked in {text!r}"


def multipart_head(
    port: int, body_length: int | None, *, path: str = "/v1/video/submit", headers: str = ""
) -> bytes:
    """Request line and headers of a multipart POST (chunked when body_length is None)."""
    framing = (
        "Transfer-Encoding: chunked\r\n"
        if body_length is None
        else f"Content-Length: {body_length}\r\n"
    )
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"{framing}{headers}Connection: close\r\n\r\n"
    ).encode()


def file_part_prologue(filename: str = "video.mp4") -> bytes:
    """The start of the multipart 'file' part, up to its first data byte."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()


def file_part_epilogue() -> bytes:
    """What closes the 'file' part and the body."""
    return f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class RawResponse:
    """A status code and body read off a raw socket."""

    status: int
    body: bytes


def read_response(sock: socket.socket, timeout_s: float = 30.0) -> RawResponse:
    """Read an HTTP/1.1 response until the server closes the connection."""
    sock.settimeout(timeout_s)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    return RawResponse(int(head.split()[1]), body)


def _frame_chunk(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


def stream_until_answered(
    port: int, pieces: Iterator[bytes], *, chunked: bool, body_length: int | None = None
) -> RawResponse:
    """Send a body piece by piece and stop as soon as the server answers (or hangs up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(multipart_head(port, None if chunked else body_length))
        try:
            for piece in pieces:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(_frame_chunk(piece, chunked))
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock)


# -- storage and rows -------------------------------------------------------------------


def storage_dir(server: ServerProcess) -> Path:
    """The server's local storage folder."""
    return server.data_dir / "storage"


def temporary_files(server: ServerProcess) -> list[Path]:
    """Temporary (dot-named) files anywhere in storage: in-flight or leaked writes."""
    root = storage_dir(server)
    return sorted(p for p in root.rglob(".*") if p.is_file()) if root.exists() else []


def stored_videos(server: ServerProcess) -> list[Path]:
    """The committed videos in storage."""
    folder = storage_dir(server) / "videos"
    return (
        sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    )


def wait_for_no_temporary_files(server: ServerProcess, timeout_s: float = 10.0) -> None:
    """Temporary files vanish once the uploads that wrote them are over."""
    deadline = time.monotonic() + timeout_s
    while temporary_files(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert temporary_files(server) == [], temporary_files(server)


def assert_no_orphans(server: ServerProcess, headers: dict[str, str] | None = None) -> None:
    """No temporary file, every stored video has its job row, and every row its video."""
    wait_for_no_temporary_files(server)
    videos = stored_videos(server)
    for video in videos:
        assert video.suffix == ".mp4", video
        response = status_of(server, video.stem, headers=headers)
        assert response.status_code == 200, f"{video.name} has no job row"
    assert sum(job_counts(server).values()) == len(videos)


@contextlib.contextmanager
def offline_store(data_dir: Path) -> Iterator[SqlJobStore]:
    """The jobs table of a stopped server (DuckDB allows one process at a time)."""
    engine = create_db_engine(f"duckdb:///{data_dir / 'forgesyte.duckdb'}")
    try:
        yield SqlJobStore(engine)
    finally:
        engine.dispose()


def offline_job(data_dir: Path, job_id: str) -> JobRecord:
    """One job row of a stopped server."""
    with offline_store(data_dir) as store:
        record = store.get(uuid.UUID(job_id))
    assert record is not None
    return record
