"""Upload faults on a real server: over the limit, storage refusing writes, retried submits."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import (
    assert_no_leak,
    assert_no_orphans,
    file_part_epilogue,
    file_part_prologue,
    job_counts,
    multipart_head,
    read_response,
    storage_dir,
    stored_videos,
    stream_until_answered,
    temporary_files,
    wait_for_no_temporary_files,
)
from tests.support.server import ServerProcess, submit, wait_for_end

LIMIT = 2 << 20  # the hostile server's FORGESYTE_MAX_UPLOAD_MB=2


def _rows(server: ServerProcess) -> int:
    return sum(job_counts(server).values())


def _wait_until_idle(server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = job_counts(server)
        if counts["pending"] == counts["running"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the queue did not drain: {job_counts(server)}")


def test_a_declared_size_over_the_limit_gets_413_unread(
    hostile_server: ServerProcess, small_video: Path
) -> None:
    rows = _rows(hostile_server)
    body = file_part_prologue() + small_video.read_bytes() + os.urandom(3 << 20)
    body += file_part_epilogue()
    answer = stream_until_answered(
        hostile_server.port,
        iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        chunked=False,
        body_length=len(body),
    )
    assert answer.status == 413 and b"limit" in answer.body
    assert_no_leak(answer.body.decode(), hostile_server.data_dir)
    assert _rows(hostile_server) == rows
    assert_no_orphans(hostile_server)


def test_a_chunked_upload_over_the_limit_is_stopped_while_it_streams(
    hostile_server: ServerProcess, small_video: Path
) -> None:
    """No Content-Length: only the streaming count can catch it; the partial file goes."""
    rows = _rows(hostile_server)
    with socket.create_connection(("127.0.0.1", hostile_server.port), timeout=30) as sock:
        sock.sendall(multipart_head(hostile_server.port, None))
        first = file_part_prologue() + small_video.read_bytes()[:64] + os.urandom(3 << 19)
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        deadline = time.monotonic() + 10
        while not temporary_files(hostile_server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert temporary_files(hostile_server), "the upload should stream to a temporary file"
        try:
            for _ in range(64):  # up to 16 MiB more, far past the limit
                piece = os.urandom(256 << 10)
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and hung up
        answer = read_response(sock)
    assert answer.status == 413, answer
    assert b"limit" in answer.body
    wait_for_no_temporary_files(hostile_server)
    assert _rows(hostile_server) == rows
    assert_no_orphans(hostile_server)


@pytest.fixture
def videos_folder_blocked(hostile_server: ServerProcess) -> Iterator[Path]:
    """A plain file where storage's videos folder should be (root ignores permissions)."""
    _wait_until_idle(hostile_server)
    videos = storage_dir(hostile_server) / "videos"
    aside = videos.with_name("videos-aside")
    videos.rename(aside)
    videos.write_text("not a folder")
    try:
        yield videos
    finally:
        videos.unlink()
        aside.rename(videos)


def test_a_storage_write_error_gives_503_and_no_job(
    hostile_server: ServerProcess, small_video: Path, videos_folder_blocked: Path
) -> None:
    rows = _rows(hostile_server)
    response = submit(hostile_server.url, small_video.read_bytes(), pipeline_id="testkit_noop")
    assert response.status_code == 503, response.text
    assert "storage" in response.json()["detail"]
    assert_no_leak(response.text, hostile_server.data_dir)
    assert _rows(hostile_server) == rows
    assert videos_folder_blocked.read_text() == "not a folder"
    assert not list(storage_dir(hostile_server).glob("**/.*"))


def test_retried_submits_make_one_job(hostile_server: ServerProcess, small_video: Path) -> None:
    """A slow first try, overtaken by four concurrent retries with its Idempotency-Key: one job."""
    rows = _rows(hostile_server)
    videos = len(stored_videos(hostile_server))
    key = f"faults-{os.urandom(6).hex()}"
    video = small_video.read_bytes()
    body = file_part_prologue() + video + file_part_epilogue()
    head = multipart_head(
        hostile_server.port,
        len(body),
        path="/v1/video/submit?pipeline_id=testkit_grey",
        headers=f"Idempotency-Key: {key}\r\n",
    )
    answers: list[httpx.Response] = []

    def retry() -> None:
        answers.append(
            submit(
                hostile_server.url,
                video,
                headers={"Idempotency-Key": key},
                pipeline_id="testkit_grey",
            )
        )

    with socket.create_connection(("127.0.0.1", hostile_server.port)) as first:
        first.sendall(head + body[:-16])  # the first try stalls before its last bytes
        retries = [threading.Thread(target=retry) for _ in range(4)]
        for thread in retries:
            thread.start()
        for thread in retries:
            thread.join()
        first.sendall(body[-16:])
        first_answer = read_response(first)
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    job_ids = {a.json()["job_id"] for a in answers}
    assert len(job_ids) == 1, job_ids
    (job_id,) = job_ids
    assert first_answer.status == 200 and job_id.encode() in first_answer.body
    status, _ = wait_for_end(hostile_server.url, job_id)
    assert status.status == "completed"
    headers = {"Idempotency-Key": key}
    again = submit(hostile_server.url, video, headers=headers, pipeline_id="testkit_grey")
    assert again.json()["job_id"] == job_id
    other = submit(hostile_server.url, video, headers=headers, pipeline_id="testkit_noop")
    assert other.status_code == 409
    assert _rows(hostile_server) == rows + 1
    assert len(stored_videos(hostile_server)) == videos + 1
    assert_no_orphans(hostile_server)


def test_bytes_around_the_file_part_count_against_the_limit_too(
    hostile_server: ServerProcess, small_video: Path
) -> None:
    """A small valid file part followed by an endless epilogue is cut off, not read forever."""
    rows = _rows(hostile_server)
    complete = file_part_prologue() + small_video.read_bytes() + file_part_epilogue()
    epilogue = (os.urandom(256 << 10) for _ in range(64))  # up to 16 MiB of trailing bytes
    answer = stream_until_answered(
        hostile_server.port, itertools.chain([complete], epilogue), chunked=True
    )
    assert answer.status == 413 and b"limit of 2 MiB" in answer.body, answer
    assert _rows(hostile_server) == rows
    assert_no_orphans(hostile_server)
