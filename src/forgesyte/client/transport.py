"""HTTP for the client, on the standard library: one keep-alive connection, bounded retries,
and uploads that ask the server first (``Expect: 100-continue``).

A ``Transport`` owns one connection and reuses it from request to request; it serves one
thread at a time (a second thread's request while one is under way raises RuntimeError
rather than garbling both). Which requests are retried is the caller's choice: reads and
submits under an idempotency key are; cancel and delete are not.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any, TypeVar

from forgesyte import __version__
from forgesyte.client.errors import ApiError, ServerUnreachable
from forgesyte.client.upload import Upload

REQUEST_TIMEOUT_S = 60.0  # one socket operation (connect, a read, a write), not a whole request
CONTINUE_WAIT_S = 3.0  # how long an upload waits for "100 Continue" before sending anyway
RETRY_STATUSES = frozenset({429, 503})  # "too many at once" and "unavailable": try again later
MAX_RETRY_AFTER_S = 30.0  # a longer Retry-After is cut to this
DETAIL_CHARS = 500  # of an error answer that is not the API's JSON
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Growing pauses: first_s, then each one factor times the last, never over max_s."""

    first_s: float
    factor: float
    max_s: float

    def delays(self) -> Iterator[float]:
        """The pauses, without end."""
        delay = self.first_s
        while True:
            yield min(delay, self.max_s)
            delay *= self.factor


# a request is tried at most ATTEMPTS times, RETRY_BACKOFF apart (0.2 + 0.4 + 0.8 + 1.6 s
# without a Retry-After: about the time a restarted server takes to answer again)
RETRY_BACKOFF = Backoff(first_s=0.2, factor=2.0, max_s=MAX_RETRY_AFTER_S)
ATTEMPTS = 5


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ApiError when it is not."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(None, f"the server's answer is not JSON: {_text(self.body)}") from None


class _TryAgain(Exception):
    """An attempt that may be repeated; ``error`` is raised once no attempt is left."""

    def __init__(self, error: ApiError, after_s: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.after_s = after_s


class Transport:
    """One server's HTTP: its base URL, the API key it sends, one keep-alive connection."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retry: Backoff = RETRY_BACKOFF,
        attempts: int = ATTEMPTS,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url.rstrip("/")
        self._parts = parts
        self._base_path = parts.path.rstrip("/")
        self._headers = {"User-Agent": f"forgesyte-client/{__version__}"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout_s = timeout_s
        self._retry = retry
        self._attempts = attempts
        self._connection: http.client.HTTPConnection | None = None
        self._busy = threading.Lock()

    # -- requests ----------------------------------------------------------------------------

    def read(self, path: str, params: Mapping[str, Any] | None = None) -> Answer:
        """GET path; the whole answer. Retried on connection errors, 429 and 503."""

        def attempt() -> Answer:
            response = self._send("GET", self._target(path, params))
            return self._whole(response)

        return self._run(attempt, retried=True)

    @contextlib.contextmanager
    def read_stream(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[Callable[[int], bytes]]:
        """GET path; yields a read(size) function over the body, for answers too long to hold.

        Retried until the answer starts; a connection lost while the body is read raises
        ServerUnreachable (the caller has used part of it, so nothing is repeated).
        """
        with self._one_thread():
            response = self._tries(
                lambda: self._checked(self._send("GET", self._target(path, params))),
                retried=True,
            )

            def read(size: int) -> bytes:
                try:
                    return response.read(size)
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise ServerUnreachable(self.url, _reason(exc)) from None

            try:
                yield read
            finally:
                if not response.isclosed():  # the caller stopped early: the rest is unread
                    self._drop()

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        """One request that changes something (cancel, delete, a key made), with body as
        JSON when given: never repeated."""
        data = None if body is None else json.dumps(body).encode()
        return self._run(
            lambda: self._whole(self._send(method, self._target(path), data)), retried=False
        )

    def upload(
        self, path: str, params: Mapping[str, Any], upload: Upload, headers: Mapping[str, str]
    ) -> Answer:
        """POST a multipart upload, streamed from its file; retried like a read.

        Retrying a POST is safe only when the server can tell a retry from a new request:
        the caller sends an Idempotency-Key with it.
        """
        target = self._target(path, params)
        return self._run(lambda: self._upload_once(target, upload, headers), retried=True)

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        self._drop()

    # -- one attempt -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _on_the_wire(self) -> Iterator[None]:
        """Around a request's socket work: whatever interrupts it drops the connection (its
        state is unknown); a connection error becomes an attempt that may be repeated."""
        try:
            yield
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _TryAgain(ServerUnreachable(self.url, _reason(exc))) from None
        except BaseException:
            self._drop()
            raise

    def _send(
        self, method: str, target: str, body: bytes | None = None
    ) -> http.client.HTTPResponse:
        connection = self._open()
        headers = self._headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        with self._on_the_wire():
            connection.request(method, target, body=body, headers=headers)
            return connection.getresponse()

    def _whole(self, response: http.client.HTTPResponse) -> Answer:
        """The answer with its body read (which frees the connection for the next request)."""
        with self._on_the_wire():
            body = response.read()
        answer = Answer(response.status, response.headers, body)
        _judge(answer.status, answer.headers, lambda: answer.body)
        return answer

    def _checked(self, response: http.client.HTTPResponse) -> http.client.HTTPResponse:
        """The response if it is a success (its body unread); else its error, raised."""
        if response.status >= 400:
            self._whole(response)  # raises
        return response

    def _upload_once(self, target: str, upload: Upload, headers: Mapping[str, str]) -> Answer:
        """POST an upload with ``Expect: 100-continue``; the answer.

        The server refuses a bad key, a body over its limit or a full house before it reads
        a byte of the body, and then closes the connection: sent at once, the body would
        end in a broken pipe that hides the answer. So the body follows only the server's
        "100 Continue" (or, from a server that ignores Expect, after CONTINUE_WAIT_S).
        """
        connection = self._open()
        with self._on_the_wire():
            connection.putrequest("POST", target, skip_accept_encoding=True)
            fields = {
                **self._headers,
                **headers,
                "Content-Type": upload.content_type,
                "Content-Length": str(upload.length),
                "Expect": "100-continue",
            }
            for name, value in fields.items():
                connection.putheader(name, value)
            connection.endheaders()
            early = _early_answer(connection)
            if early is not None:
                self._drop()  # the answer was read past http.client: the connection is spent
                _judge(early.status, early.headers, lambda: early.body)
                return early
            for chunk in upload.chunks():
                connection.send(chunk)
            response = connection.getresponse()
        return self._whole(response)

    # -- retries, the connection -------------------------------------------------------------

    def _run(self, attempt: Callable[[], T], *, retried: bool) -> T:
        with self._one_thread():
            return self._tries(attempt, retried=retried)

    def _tries(self, attempt: Callable[[], T], *, retried: bool) -> T:
        """attempt(), repeated after a _TryAgain while attempts are left (if retried)."""
        delays = self._retry.delays()
        for left in reversed(range(self._attempts if retried else 1)):
            try:
                return attempt()
            except _TryAgain as failure:
                if not left:
                    raise failure.error from None
                pause = next(delays) if failure.after_s is None else failure.after_s
                time.sleep(min(pause, MAX_RETRY_AFTER_S))
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextlib.contextmanager
    def _one_thread(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                "this forgesyte Client is in use by another request (another thread, or a "
                "callback during an upload): use one Client per thread"
            )
        try:
            yield
        finally:
            self._busy.release()

    def _open(self) -> http.client.HTTPConnection:
        """The connection to use: the kept one, unless the server has hung it up meanwhile."""
        if self._connection is not None and _hung_up(self._connection):
            self._drop()
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._parts.scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(self._parts.netloc, timeout=self._timeout_s)
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _target(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = {name: value for name, value in (params or {}).items() if value is not None}
        encoded = urllib.parse.urlencode(query)
        return self._base_path + path + (f"?{encoded}" if encoded else "")


def _hung_up(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept connection is readable: the server closed it (keep-alive timeout)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _early_answer(connection: http.client.HTTPConnection) -> Answer | None:
    """After an upload's headers: None to send the body, or the server's early answer."""
    sock: socket.socket = connection.sock
    readable, _, _ = select.select([sock], [], [], CONTINUE_WAIT_S)
    if not readable:
        return None  # no word from the server: send the body (RFC 9110, 10.1.1)
    with sock.makefile("rb", buffering=0) as reader:  # unbuffered: reads no more than this
        line = reader.readline(65537)
        version, _, rest = line.decode("latin-1").partition(" ")
        if not version.startswith("HTTP/") or not rest[:3].isdigit():
            raise http.client.BadStatusLine(line.decode("latin-1"))
        headers = http.client.parse_headers(reader)
        if rest[:3] == "100":
            return None
        body = reader.read(int(headers.get("Content-Length", "0")))
        return Answer(int(rest[:3]), headers, body)


def _judge(status: int, headers: Message, body: Callable[[], bytes]) -> None:
    """Raise for an answer that is not a success: _TryAgain for 429 and 503, else ApiError."""
    if status < 400:
        return
    error = ApiError(status, _detail(body()))
    if status in RETRY_STATUSES:
        raise _TryAgain(error, _retry_after_s(headers.get("Retry-After")))
    raise error


def _detail(body: bytes) -> str:
    """The API's ``detail`` of an error answer, else the start of its text."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return _text(body)
    return detail if isinstance(detail, str) else json.dumps(detail)


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")[:DETAIL_CHARS]


def _retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _reason(exc: BaseException) -> str:
    """What went wrong on the wire, in a few words."""
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return str(exc) or type(exc).__name__
