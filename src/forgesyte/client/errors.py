"""The client's errors: one type for what the server refused or could not answer (a wait
that ran out of time is `WaitTimeout`, beside `Job.wait` in client.py)."""

from __future__ import annotations


class ApiError(Exception):
    """A request that did not succeed.

    ``status_code`` is the server's HTTP status (404 unknown job, 409 conflict, ...), or
    None when no usable answer came (see ServerUnreachable, or an answer that is not
    what this API sends); ``detail`` is the server's ``detail``, or what went wrong.
    """

    def __init__(self, status_code: int | None, detail: str) -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail

    def __str__(self) -> str:
        return (
            self.detail if self.status_code is None else f"HTTP {self.status_code}: {self.detail}"
        )


class ServerUnreachable(ApiError):
    """No HTTP answer: the server refused the connection, hung up or answered something that
    is not HTTP (after the retries a request is allowed)."""

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(None, f"cannot reach {url}: {reason}")
