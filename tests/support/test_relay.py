"""The TCP relay the outage tests cut: it relays, a cut drops and refuses, a mend heals."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.relay import TcpRelay


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _echo(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        return sock.recv(4096)


def test_a_cut_drops_open_connections_refuses_new_ones_and_a_mend_heals(echo_port: int) -> None:
    with TcpRelay("127.0.0.1", echo_port) as relay:
        assert _echo(relay.port, b"hello") == b"hello"
        open_connection = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        open_connection.sendall(b"ping")
        assert open_connection.recv(16) == b"ping"

        relay.cut()
        with pytest.raises(OSError):  # reset by the relay: a read fails or ends at once
            open_connection.sendall(b"again")
            if open_connection.recv(16) == b"":
                raise ConnectionResetError("the connection was closed")
        open_connection.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", relay.port), timeout=5)

        port = relay.port
        relay.mend()
        assert relay.port == port and _echo(relay.port, b"back") == b"back"
        assert relay.resets == 1 and relay.connections == 3
