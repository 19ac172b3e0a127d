"""A TCP relay a test puts between processes and a server, to cut and mend the network.

`cut()` resets every open connection and closes the listening socket, so new connects are
refused by the kernel: what a client sees when the network to its server fails (a
dropped connection, then "connection refused"), not a mock. `mend()` listens again on
the same port. The processes are given the relay's address instead of the server's.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK_BYTES = 64 * 1024
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


@dataclass(eq=False)
class _Pair:
    """One relayed connection: the client's socket and the server's."""

    client: socket.socket
    server: socket.socket
    cut: bool = False
    pumps_left: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Wake both pumps (a blocked recv or send returns); they close the sockets with
        a reset (SO_LINGER 0)."""
        self.cut = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
                sock.shutdown(socket.SHUT_RDWR)

    def pump_ended(self) -> None:
        with self.lock:
            self.pumps_left -= 1
            last = self.pumps_left == 0
        if last or self.cut:
            for sock in (self.client, self.server):
                with contextlib.suppress(OSError):
                    sock.close()


class TcpRelay:
    """Relays connections to 127.0.0.1:<port> on to `upstream`, until cut."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self.connections = 0  # accepted so far
        self.resets = 0  # connections cut so far

    @property
    def address(self) -> str:
        """host:port of the relay, for a URL."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpRelay:
        """Listen (on a free port the first time, on the same one after a cut)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
            listener.close()
        with self._lock:
            pairs, self._pairs = list(self._pairs), set()
            self.resets += len(pairs)
        for pair in pairs:
            pair.reset()

    def mend(self) -> None:
        """Accept connections again, on the same port."""
        if self._listener is None:
            self.start()

    def close(self) -> None:
        """Cut, for good."""
        self.cut()

    def __enter__(self) -> TcpRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    pair.reset()
                    pair.pump_ended()
                    continue
                self._pairs.add(pair)
                self.connections += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(pair, source, target), daemon=True
                ).start()

    def _pump(self, pair: _Pair, source: socket.socket, target: socket.socket) -> None:
        try:
            while not pair.cut:
                data = source.recv(CHUNK_BYTES)
                if not data:
                    break
                target.sendall(data)
            if not pair.cut:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        except OSError:
            pass
        finally:
            if pair.cut or pair.pumps_left == 1:
                with self._lock:
                    self._pairs.discard(pair)
            pair.pump_ended()


@contextlib.contextmanager
def relays(*upstreams: tuple[str, int]) -> Iterator[list[TcpRelay]]:
    """One started relay per upstream, all closed afterwards."""
    started = [TcpRelay(host, port).start() for host, port in upstreams]
    try:
        yield started
    finally:
        for relay in started:
            relay.close()
