"""The client's errors: one type for what the server refused or could not answer, one for a
wait that ran out of time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forgesyte.client.values import JobStatus


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


class WaitTimeout(TimeoutError):
    """``Job.wait`` reached its timeout before the job ended; ``last`` is the status seen last.

    A TimeoutError, so ``except TimeoutError`` catches it too. The job goes on on the server.
    """

    def __init__(self, job_id: str, timeout_s: float, last: JobStatus) -> None:
        super().__init__(
            f"job {job_id} did not end within {timeout_s:g} s "
            f"(last seen {last.status}, {last.progress:.0f}%)"
        )
        self.job_id = job_id
        self.timeout_s = timeout_s
        self.last = last
