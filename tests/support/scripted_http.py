"""A loopback HTTP server that answers what a test tells it to: a status with headers and a
body, silence, or a dropped connection; and an address whose connects time out.

For the faults a real S3-compatible server does not produce on demand (a 503 SlowDown, a
throttled request, a malformed answer, a server that stops answering): botocore meets a
real HTTP exchange on a real socket and raises what it raises for it.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Script:
    """What the server does with each request: answer (status, headers, body), or `hang`
    (read the request, say nothing), or `drop` (read the request, close the connection)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: bool = False
    drop: bool = False


def error_body(code: str, message: str = "") -> bytes:
    """An S3 error document."""
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


@dataclass
class ScriptedServer:
    """The running server: its URL, the script in force, the requests it has seen."""

    url: str
    script: Script
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def scripted_server(script: Script | None = None) -> Iterator[ScriptedServer]:
    """A threaded HTTP server on 127.0.0.1 following `server.script` (changeable at will)."""
    release = threading.Event()
    state = ScriptedServer("", script or Script())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            state.requests.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            now = state.script
            if now.hang:
                release.wait(30)
                self.close_connection = True
                return
            if now.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(now.status)
            for name, value in now.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(now.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(now.body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer  # noqa: N815 (its names)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_port}"
    with serving(server):
        try:
            yield state
        finally:
            release.set()  # a hanging answer ends, so the server can stop


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[None]:
    """The server serving on a thread of its own for the duration of the context."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def unanswered_address() -> Iterator[str]:
    """An http://127.0.0.1:<port> URL whose TCP connects time out: a listening socket whose
    accept queue is full, so the kernel drops further SYNs as an unrouted host would."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # takes the one place in the queue
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        filler.close()
        listener.close()
