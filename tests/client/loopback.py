"""Small HTTP servers on loopback for the client's unit tests: each request is recorded and
answered from a script, so retries, pages and refusals can be shown one by one.

The real server is tested end to end in tests/e2e/test_client.py; these are for what a
real server cannot be made to do on cue (a 503, a Retry-After, an answer that is not HTTP).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run a threading HTTP server with handler on a free loopback port; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Seen:
    """One request the server got."""

    method: str
    target: str
    headers: Message
    body: bytes
    client_port: int  # one value per TCP connection: shows whether one was reused

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}


@dataclass(frozen=True)
class Reply:
    """An answer: a status, a JSON body (or raw bytes), extra headers."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Script:
    """What a canned server answers (reply(request)) and what it was asked."""

    reply: Callable[[Seen], Reply]
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [request.target for request in self.seen]


@contextmanager
def canned(reply: Callable[[Seen], Reply]) -> Iterator[tuple[str, Script]]:
    """A keep-alive HTTP/1.1 server answering every request with reply(request)."""
    script = Script(reply)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Seen(
                self.command,
                self.path,
                self.headers,
                self.rfile.read(length),
                self.client_address[1],
            )
            script.seen.append(request)
            answer = script.reply(request)
            data = (
                answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            )
            self.send_response(answer.status)
            for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    with serving(Handler) as url:
        yield url, script
