"""A real webhook receiver on loopback: records every request, answers as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.scripted_http import serving


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    """What a test's receiver got, and the statuses it answers with (then `default`)."""

    url: str
    answers: list[int] = field(default_factory=list)
    default: int = 200
    redirect_to: str | None = None
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Wait until `count` requests arrived; return them all."""
        with self.changed:
            assert self.changed.wait_for(
                lambda: len(self.received) >= count, timeout_s
            ), f"{len(self.received)} of {count} webhook requests arrived"
            return list(self.received)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1, stopped afterwards."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with state.changed:
                state.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                status = state.answers.pop(0) if state.answers else state.default
                state.changed.notify_all()
            self.send_response(status)
            if 300 <= status < 400 and state.redirect_to:
                self.send_header("Location", state.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with serving(server):
        yield state
