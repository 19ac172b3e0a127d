"""A submit asks first (`Expect: 100-continue`), against servers that do and don't, and
streams the video from disk.

The real server's side (it refuses a bad key or an oversized body before reading it) is
in tests/e2e/test_cli.py; here small loopback servers show each way an upload's answer
can come.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from forgesyte.client import ApiError, Backoff, Client, ServerUnreachable, transport, upload
from tests.client.loopback import serving

VIDEO = b"\x00\x00\x00\x18ftypisom" + b"x" * 600_000  # three chunks of CHUNK_BYTES and a bit
QUICK = Backoff(first_s=0.01, factor=1.0, max_s=0.01)


class _Answers(BaseHTTPRequestHandler):
    """Answers POST as the server's `mode` says; records what it read."""

    received: list[bytes]
    requests: list[dict[str, str | None]]
    mode: str

    def do_POST(self) -> None:
        self.requests.append(
            {
                "target": self.path,
                "expect": self.headers.get("Expect"),
                "key": self.headers.get("Idempotency-Key"),
            }
        )
        if self.mode == "refuse":  # answers at once, reading nothing, then hangs up
            self._answer(401, {"detail": "key refused"})
            self.close_connection = True
            return
        if self.mode == "garbage":
            self.wfile.write(b"NOT-HTTP\r\n\r\n")
            self.close_connection = True
            return
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self._answer(200, {"job_id": "job-1"})

    def handle_expect_100(self) -> bool:
        """Only the "continue" server says 100 Continue; the others answer straight away."""
        return super().handle_expect_100() if self.mode == "continue" else True

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _server(mode: str, protocol: str) -> Iterator[tuple[str, type[_Answers]]]:
    handler = type(
        "Handler",
        (_Answers,),
        {"mode": mode, "received": [], "requests": [], "protocol_version": protocol},
    )
    with serving(handler) as url:
        yield url, handler


@pytest.fixture(params=["continue", "ignores-expect"])
def accepting(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Answers]]]:
    """A server that sends 100 Continue, or one that ignores Expect (HTTP/1.0 style)."""
    if request.param == "continue":
        yield from _server("continue", "HTTP/1.1")
    else:
        yield from _server("read", "HTTP/1.0")


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / 'my "clip".mp4'
    path.write_bytes(VIDEO)
    return path


def test_the_body_goes_after_continue_or_after_the_wait(
    accepting: tuple[str, type[_Answers]], video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "CONTINUE_WAIT_S", 0.2)
    url, handler = accepting
    progress: list[tuple[int, int]] = []
    with Client(url, "k") as client:
        job = client.submit(
            video,
            pipeline_id="ocr_only",
            frame_stride=5,
            skip_unchanged=True,
            on_upload=lambda sent, size: progress.append((sent, size)),
        )
    assert job.id == "job-1"
    (body,) = handler.received
    (request,) = handler.requests
    assert request["expect"] == "100-continue"
    # pipeline and options go in the query, checked by the server before the body
    assert request["target"] == (
        "/v1/video/submit?pipeline_id=ocr_only&frame_stride=5&skip_unchanged=true"
    )
    assert request["key"]  # a fresh Idempotency-Key: the submit may be retried
    # one file part, the video's bytes as they are on disk, its name without the quotes
    assert body.count(b"Content-Disposition") == 1
    assert b'name="file"; filename="my clip.mp4"' in body
    assert VIDEO in body
    # read and reported in chunks, never whole
    chunk = upload.CHUNK_BYTES
    assert progress == [
        (min(sent, len(VIDEO)), len(VIDEO)) for sent in range(chunk, 3 * chunk + chunk, chunk)
    ]


def test_an_open_file_is_sent_from_where_it_stands(
    accepting: tuple[str, type[_Answers]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "CONTINUE_WAIT_S", 0.2)
    url, handler = accepting
    handle = io.BytesIO(b"ignored" + VIDEO)
    handle.seek(len(b"ignored"))
    with Client(url) as client:
        client.submit(handle)
    (body,) = handler.received
    assert VIDEO in body and b"ignored" not in body
    assert b'filename="video.mp4"' in body


def test_an_early_refusal_is_the_answer_and_no_body_is_sent(video: Path) -> None:
    progress: list[tuple[int, int]] = []
    for url, handler in _server("refuse", "HTTP/1.1"):
        with Client(url, "bad") as client, pytest.raises(ApiError) as refused:
            client.submit(video, on_upload=lambda sent, size: progress.append((sent, size)))
        assert str(refused.value) == "HTTP 401: key refused"
        assert (refused.value.status_code, refused.value.detail) == (401, "key refused")
        assert progress == [] and handler.received == []
        assert len(handler.requests) == 1  # a refusal is not retried


def test_an_answer_that_is_not_http_is_retried_under_the_same_key_then_unreachable(
    video: Path,
) -> None:
    for url, handler in _server("garbage", "HTTP/1.1"):
        with (
            Client(url, retry=QUICK, attempts=3) as client,
            pytest.raises(ServerUnreachable) as failed,
        ):
            client.submit(video, idempotency_key="my-key")
        assert str(failed.value).startswith(f"cannot reach {url}: ")
        assert "NOT-HTTP" in str(failed.value)
        assert failed.value.status_code is None
        assert [r["key"] for r in handler.requests] == ["my-key"] * 3


def test_bad_options_and_a_missing_file_are_refused_before_anything_is_sent(
    video: Path, tmp_path: Path
) -> None:
    for url, handler in _server("continue", "HTTP/1.1"):
        with Client(url) as client:
            with pytest.raises(ValueError, match="cannot be combined"):
                client.submit(video, frame_stride=2, sample_fps=2.0)
            with pytest.raises(ValueError, match="unknown option"):
                client.submit(video, frame_strid=2)
            with pytest.raises(FileNotFoundError, match="no such file"):
                client.submit(tmp_path / "missing.mp4")
            with pytest.raises(TypeError, match="binary file that can seek"):
                client.submit(io.StringIO("not bytes"))  # type: ignore[arg-type]
            reader, writer = os.pipe()
            with open(reader, "rb") as pipe, pytest.raises(TypeError, match="can seek"):
                client.submit(pipe)
            os.close(writer)
        assert handler.requests == []
