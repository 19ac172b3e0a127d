"""A deadline on every request: an answer within it, or 503 with Retry-After.

The deadline runs until the answer starts: a body streamed after that (results, a
timeline) goes at the client's pace. A submit's deadline is the upload's own
(FORGESYTE_UPLOAD_TIMEOUT_S) plus REQUEST_DEADLINE_S for what follows the upload.

A route waiting on a thread (a database call, a storage read) cannot be cancelled while
the thread runs: AnyIO lets the thread finish. So the route is not cancelled: a timer
sends the 503 when the deadline comes first, and whatever the route sends later is
dropped. The engine's and the S3 client's own timeouts (db/engine.py, storage/s3.py) end
those threads within seconds; the deadline bounds what the client sees whatever they do.
A timer, not a task per request: the middleware costs a request a few microseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 8.0  # seconds from a request's arrival to the start of its answer


class RequestDeadline:
    """ASGI middleware: an answer starts within the deadline of its path, or 503 is sent.

    deadline_s: every path's deadline; longer: paths that get another one (the submit).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        deadline_s: float = REQUEST_DEADLINE_S,
        longer: Mapping[str, float] | None = None,
        retry_after_s: int = 2,
    ) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self.longer = dict(longer or {})
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline_s = self.longer.get(scope["path"], self.deadline_s)
        started = False
        too_late: asyncio.Task[None] | None = None  # the 503, once the deadline has passed

        async def send_in_time(message: Message) -> None:
            nonlocal started
            if too_late is not None:
                return  # the client has had its 503
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        def deadline_passed() -> None:
            nonlocal too_late
            if started:
                return
            log.warning("%s %s: no answer within %g s; answered 503",
                        scope["method"], scope["path"], deadline_s)  # fmt: skip
            too_late = asyncio.ensure_future(self._unavailable(send, deadline_s))

        timer = asyncio.get_running_loop().call_later(deadline_s, deadline_passed)
        try:
            await self.app(scope, receive, send_in_time)
        except Exception:
            if too_late is None:
                raise
            log.debug("%s %s: failed after its 503", scope["method"], scope["path"], exc_info=True)
        finally:
            timer.cancel()
            if too_late is not None:
                await too_late

    async def _unavailable(self, send: Send, deadline_s: float) -> None:
        body = json.dumps(
            {"detail": f"the server could not answer within {deadline_s:g} s; try again"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after_s).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
