"""The CLI's upload asks first (`Expect: 100-continue`), against servers that do and don't.

The real server's side (it refuses a bad key or an oversized body before reading it) is
in test_cli.py; here small loopback servers show each way an upload's answer can come.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from forgesyte import client_cli
from forgesyte.client_cli import Client, ClientError

BODY = [b"head-", b"x" * 100_000, b"-tail"]
LENGTH = str(sum(len(part) for part in BODY))


class _Answers(BaseHTTPRequestHandler):
    """Answers POST as the server's `mode` says; records what it read."""

    received: list[bytes]
    expectations: list[str | None]
    mode: str

    def do_POST(self) -> None:
        self.expectations.append(self.headers.get("Expect"))
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
        {"mode": mode, "received": [], "expectations": [], "protocol_version": protocol},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["continue", "ignores-expect"])
def accepting(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Answers]]]:
    """A server that sends 100 Continue, or one that ignores Expect (HTTP/1.0 style)."""
    if request.param == "continue":
        yield from _server("continue", "HTTP/1.1")
    else:
        yield from _server("read", "HTTP/1.0")


def test_the_body_goes_after_continue_or_after_the_wait(
    accepting: tuple[str, type[_Answers]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_cli, "CONTINUE_WAIT_S", 0.2)
    url, handler = accepting
    answer = Client(url, "k").upload("/v1/video/submit", iter(BODY), {"Content-Length": LENGTH})
    assert answer == {"job_id": "job-1"}
    assert handler.received == [b"".join(BODY)]
    assert handler.expectations == ["100-continue"]


def test_an_early_refusal_is_the_answer_and_no_body_is_sent() -> None:
    sent: list[bytes] = []

    def body() -> Iterator[bytes]:
        for part in BODY:
            sent.append(part)
            yield part

    for url, handler in _server("refuse", "HTTP/1.1"):
        with pytest.raises(ClientError) as refused:
            Client(url, "bad").upload("/v1/video/submit", body(), {"Content-Length": LENGTH})
        assert str(refused.value) == "HTTP 401: key refused"
        assert refused.value.exit_code == client_cli.EXIT_USAGE
        assert sent == [] and handler.received == []


def test_an_answer_that_is_not_http_is_a_connection_error() -> None:
    for url, _handler in _server("garbage", "HTTP/1.1"):
        with pytest.raises(ClientError) as failed:
            Client(url, None).upload("/v1/video/submit", iter(BODY), {"Content-Length": LENGTH})
        assert str(failed.value).startswith(f"cannot reach {url}: ")
        assert "NOT-HTTP" in str(failed.value)
        assert failed.value.exit_code == client_cli.EXIT_USAGE
