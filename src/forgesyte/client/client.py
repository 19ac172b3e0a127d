"""``Client``, a ForgeSyte server seen from Python, and ``Job``, one of its jobs.

The API's paths are spelled here for every caller of the library: the command line,
the smoke test, the bench, the load test and the tests' helpers go through these
methods, and wait for a job with the one loop there is, ``Job.wait``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Literal, TypeVar

from forgesyte.client.errors import ApiError
from forgesyte.client.transport import (
    ATTEMPTS,
    DETAIL_CHARS,
    REQUEST_TIMEOUT_S,
    RETRY_BACKOFF,
    Answer,
    Backoff,
    Transport,
)
from forgesyte.client.upload import Upload, UploadProgress
from forgesyte.client.values import (
    ApiKey,
    Caller,
    FrameEntry,
    FrameTrackIds,
    JobListEntry,
    JobStatus,
    NewApiKey,
    Page,
    ResultsPage,
    SearchMatch,
    SourceUrl,
    Timeline,
    build,
)
from forgesyte.jobs.options import JobOptions

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "FORGESYTE_URL"
KEY_VARIABLE = "FORGESYTE_API_KEY"
MAX_RESULTS_PAGE = 1000  # the most frame entries the server gives in one page
STREAM_CHUNK_BYTES = 64 * 1024
# wait() polls soon after a submit (short jobs end in a second), then less and less often
POLL_BACKOFF = Backoff(first_s=0.2, factor=1.5, max_s=2.0)

V = TypeVar("V")
M = TypeVar("M")
ProgressCallback = Callable[[JobStatus], object]


def option_fields(options: Mapping[str, Any]) -> dict[str, str]:
    """The submit fields of job options (None: unset, not sent), checked as the server will.

    Each value goes as text (``true``, ``2.5``, or a string as given), and the fields are
    checked by ``JobOptions.from_form``, the server's own reading of them. Raises
    forgesyte.jobs.options.InvalidOptions (a ValueError) naming each problem.
    """
    fields = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in options.items()
        if value is not None
    }
    JobOptions.from_form(fields)
    return fields


def _walk(fetch: Callable[[Any], Page[V]]) -> Iterator[V]:
    """Every item of a paged answer, one page fetched at a time, as the caller gets there.

    fetch(None) gives the first page, fetch(page.next) the one after page.
    """
    after: Any = None
    while True:
        page = fetch(after)
        yield from page.items
        if page.next is None:
            return
        after = page.next


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


class Client:
    """A ForgeSyte server: submit videos, follow and read jobs, list and search them.

    ``url`` defaults to $FORGESYTE_URL, else http://127.0.0.1:8000; ``api_key`` to
    $FORGESYTE_API_KEY (sent as a Bearer token). A Client holds one keep-alive connection,
    closed by ``close()`` or at the end of a ``with`` block. It serves one thread: give
    each thread its own Client (a request from a second thread while one is under way
    raises RuntimeError).

    Reads are retried on connection errors and on 429 and 503 answers (after their
    Retry-After, at most 30 s), ``attempts`` tries in all; so is a submit, which always
    carries an Idempotency-Key. Cancel and delete are sent once. A request that fails
    raises ApiError (``status_code``, ``detail``); ServerUnreachable, an ApiError, when
    no HTTP answer came.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retry: Backoff = RETRY_BACKOFF,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.url = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
        key = os.environ.get(KEY_VARIABLE) if api_key is None else api_key
        self._http = Transport(
            self.url, key or None, timeout_s=timeout_s, retry=retry, attempts=attempts
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the key

    def close(self) -> None:
        """Close the connection; a later request opens a new one."""
        self._http.close()

    def submit(
        self,
        path: str | os.PathLike[str] | BinaryIO,
        *,
        pipeline_id: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        on_upload: UploadProgress | None = None,
        **options: Any,
    ) -> Job:
        """Upload a video (an MP4 file's path, or an open binary file) and enqueue its job.

        ``options`` are the job options (``frame_stride=5``, ``sample_fps=2.0``, ...); they
        are checked before anything is sent (InvalidOptions, a ValueError), and those not
        given take the server's defaults. ``on_upload(sent_bytes, total_bytes)`` is called
        as the video goes out. The file is streamed from disk, never read whole.

        The submit is retried like a read under its Idempotency-Key (a fresh one when none
        is given), so a retry after a lost answer gets the same job, never a second one.
        """
        params = {"pipeline_id": pipeline_id, "callback_url": callback_url}
        params.update(option_fields(options))
        upload = Upload(path, on_upload)
        key = idempotency_key or str(uuid.uuid4())
        answer = self._http.upload(
            "/v1/video/submit", params, upload, {"Idempotency-Key": key}
        ).json()
        return self.job(_member(answer, "job_id", str))

    def job(self, job_id: str) -> Job:
        """The job with this id (nothing is asked yet: an unknown id gives 404 when used)."""
        return Job(self, job_id)

    def jobs(
        self, status: str | None = None, pipeline_id: str | None = None, *, page_size: int = 200
    ) -> Iterator[JobListEntry]:
        """Every job, newest first (optionally of one status or pipeline), paged lazily."""
        return _walk(
            lambda cursor: self.jobs_page(status, pipeline_id, limit=page_size, cursor=cursor)
        )

    def jobs_page(
        self,
        status: str | None = None,
        pipeline_id: str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[JobListEntry]:
        """One page of the job list (``limit`` 1-200, server default 50); ``next`` its cursor."""
        params = {"status": status, "pipeline_id": pipeline_id, "limit": limit, "cursor": cursor}
        page = self._http.read("/v1/video/jobs", params).json()
        items = tuple(JobListEntry.from_json(item) for item in _member(page, "jobs", list))
        return Page(items=items, next=page.get("next_cursor"), raw=page)

    def search(
        self,
        q: str,
        *,
        kind: Literal["text", "object"] = "text",
        with_: str | None = None,
        page_size: int = 100,
    ) -> Iterator[SearchMatch]:
        """Moments matching q across the jobs this key may read, best first, paged lazily.

        ``kind="text"``: text segments like q (case, spaces and small OCR errors forgiven),
        ``with_`` keeping those that overlap an object track of that class; ``kind="object"``:
        tracks of the class q.
        """
        return _walk(
            lambda cursor: self.search_page(
                q, kind=kind, with_=with_, limit=page_size, cursor=cursor
            )
        )

    def search_page(
        self,
        q: str,
        *,
        kind: Literal["text", "object"] = "text",
        with_: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[SearchMatch]:
        """One page of a search (``limit`` 1-100, server default 20); ``next`` its cursor."""
        params = {"q": q, "kind": kind, "with": with_, "limit": limit, "cursor": cursor}
        page = self._http.read("/v1/search", params).json()
        items = tuple(SearchMatch.from_json(item) for item in _member(page, "matches", list))
        return Page(items=items, next=page.get("next_cursor"), raw=page)

    def create_key(self, name: str, role: str = "user") -> NewApiKey:
        """Make a key (an admin key's right): ``name`` ([a-z0-9_-]{1,64}) and ``role``
        (admin, user or viewer). The answer holds the key's text, which the server never
        shows again. Sent once."""
        answer = self._http.call("POST", "/v1/keys", {"name": name, "role": role})
        return NewApiKey.from_json(answer.json())

    def keys(self) -> list[ApiKey]:
        """Every live key, by name (an admin key's right); never their text."""
        answer = self._http.read("/v1/keys").json()
        return [ApiKey.from_json(item) for item in _member(answer, "keys", list)]

    def revoke_key(self, name: str) -> None:
        """Revoke a key (an admin key's right): every server process refuses it within 2 s.
        Its jobs stay; its name is never given to another key. Sent once."""
        self._http.call("DELETE", f"/v1/keys/{urllib.parse.quote(name, safe='')}")

    def whoami(self) -> Caller:
        """The name and role this client's key acts as."""
        return Caller.from_json(self._http.read("/v1/keys/me").json())

    def health(self) -> dict[str, Any]:
        """The server's /healthz answer: its version and job counts by status."""
        answer: dict[str, Any] = self._http.read("/healthz").json()
        return answer


class Job:
    """One job of a server; ``id`` is its job id. Each method asks the server afresh."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.id = job_id
        self._quoted = urllib.parse.quote(job_id, safe="")

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (other.client, other.id) == (self.client, self.id)

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> JobStatus:
        """Its status and progress now."""
        return JobStatus.from_json(self._read("status").json())

    def wait(
        self,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        poll: Backoff = POLL_BACKOFF,
    ) -> JobStatus:
        """Poll until the job ends; its final status (completed, failed or cancelled).

        A failed or cancelled job is an answer, not an error: look at ``status``.
        ``on_progress`` gets every status seen, the final one included; an exception it
        raises ends the wait and passes through. Polls start 0.2 s apart and grow to 2 s
        (``poll`` sets other pauses). After ``timeout`` seconds raises WaitTimeout (a
        TimeoutError); the job goes on on the server.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pauses = poll.delays()
        while True:
            status = self.status()
            if on_progress is not None:
                on_progress(status)
            if status.finished:
                return status
            pause = next(pauses)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(self.id, timeout or 0.0, status)
                pause = min(pause, left)
            time.sleep(pause)

    def results(self, *, page_size: int = MAX_RESULTS_PAGE) -> Iterator[FrameEntry]:
        """Its frame entries in frame order, ``page_size`` (1-1000) fetched at a time as the
        caller gets there: memory stays one page, whatever the video's length."""
        return _walk(lambda offset: self.results_page(int(offset or 0), page_size))

    def results_page(self, offset: int = 0, limit: int = MAX_RESULTS_PAGE) -> ResultsPage:
        """The frame entries [offset, offset + limit) of a completed job, with its pipeline
        and how many frames it analysed; ``next`` is the next page's offset."""
        page = self._read("results", {"offset": offset, "limit": limit}).json()
        items = tuple(FrameEntry.from_json(item) for item in _member(page, "results", list))
        return build(ResultsPage, page, items=items, next=page.get("next_offset"))

    def write_results(
        self,
        out: BinaryIO,
        *,
        format: Literal["json", "jsonl"] = "json",
        offset: int = 0,
        limit: int | None = None,
    ) -> int:
        """Write the server's results answer to out as it arrives (the JSON document, or
        JSON Lines, one frame entry a line); the bytes written."""
        params = {
            "format": "jsonl" if format == "jsonl" else None,
            "offset": offset or None,
            "limit": limit,
        }
        return self._write(self._path("results"), params, out)

    def timeline(self) -> Timeline:
        """Its text segments, object tracks and shots (a completed job)."""
        return Timeline.from_json(self._read("timeline").json())

    def vtt(self, track: Literal["subtitles", "chapters"] = "subtitles") -> str:
        """A WebVTT file of a completed job: its text segments (``subtitles``) or one cue
        per shot (``chapters``, for a job submitted with ``detect_shots``)."""
        return self._read("timeline", {"format": "vtt", "track": track}).body.decode("utf-8")

    def source_url(self) -> SourceUrl:
        """A link to its video that needs no key, valid for one hour (a completed job with
        something a browser plays: ``status().playable``)."""
        return SourceUrl.from_json(self._read("source-url").json())

    def write_source(self, out: BinaryIO) -> int:
        """Write its video (the upload, or the H.264 copy the worker made) to out as it
        arrives; the bytes written."""
        return self._write(self._path("source"), None, out)

    def preview(self, frame_index: int) -> bytes:
        """A JPEG of an analysed frame with what was found drawn on it."""
        return self._read("preview", {"frame_index": frame_index}).body

    def thumbnail(self, kind: Literal["text", "object", "shot"], index: int) -> bytes:
        """The JPEG thumbnail of the timeline's ``index``-th text segment, object track or
        shot (``kind``)."""
        return self._read("thumbnail", {"kind": kind, "index": index}).body

    def track_ids(self, *, page_size: int = MAX_RESULTS_PAGE) -> Iterator[FrameTrackIds]:
        """The track id of each detection of each analysed frame, in the results' order,
        ``page_size`` frames fetched at a time."""

        def fetch(offset: Any) -> Page[FrameTrackIds]:
            page = self._read("track-ids", {"offset": int(offset or 0), "limit": page_size})
            data = page.json()
            items = tuple(FrameTrackIds.from_json(item) for item in _member(data, "frames", list))
            return Page(items=items, next=data.get("next_offset"), raw=data)

        return _walk(fetch)

    def cancel(self) -> JobStatus:
        """Cancel it (pending: at once; running: within seconds); its status after."""
        answer = self.client._http.call("POST", f"/v1/video/cancel/{self._quoted}")
        return JobStatus.from_json(answer.json())

    def delete(self) -> None:
        """Delete it: its row, video and results (409 while it runs: cancel it first)."""
        self.client._http.call("DELETE", f"/v1/video/jobs/{self._quoted}")

    def _write(self, path: str, params: Mapping[str, Any] | None, out: BinaryIO) -> int:
        written = 0
        with self.client._http.read_stream(path, params) as read:
            while chunk := read(STREAM_CHUNK_BYTES):
                out.write(chunk)
                written += len(chunk)
        return written

    def _path(self, route: str) -> str:
        return f"/v1/video/{route}/{self._quoted}"

    def _read(self, route: str, params: Mapping[str, Any] | None = None) -> Answer:
        return self.client._http.read(self._path(route), params)


def _member(answer: Any, name: str, kind: type[M]) -> M:
    """answer[name], a kind; ApiError when the answer is not what this API sends."""
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, kind):
        raise ApiError(None, f"the server's answer has no {name}: {str(answer)[:DETAIL_CHARS]}")
    return value
