"""GET /v1/video/source/{job_id}: a job's video for playing, in byte ranges; and
GET /v1/video/source-url/{job_id}: a signed link to it for a `<video>` element.

The video is the upload when it is browser-playable H.264, else the copy the worker made
(`results/media.py`). It is streamed from storage window by window (at most
SOURCE_WINDOW_BYTES per storage read: on S3 one ranged GetObject each), so memory stays
flat and a client that stops reading costs at most one window. One range per request
(`api/byte_ranges.py`): 206 with Content-Range, 416 past the end, 200 for the whole file.

A `<video>` element cannot send a key header, so the source route takes the key or a
`token` (`api/source_tokens.py`) that source-url signs for one job and one hour.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from forgesyte.api.access import READ, SOURCE
from forgesyte.api.auth import Caller
from forgesyte.api.byte_ranges import (
    ByteRange,
    RangeNotSatisfiable,
    requested_range,
    unsatisfied_content_range,
)
from forgesyte.api.deps import ContextDep, completed_job, read_storage, v1_router
from forgesyte.api.errors import NotFound
from forgesyte.jobs.store import JobRecord
from forgesyte.results.media import Playback
from forgesyte.storage.base import Storage, playable_key

SOURCE_MEDIA_TYPE = "video/mp4"
SOURCE_WINDOW_BYTES = 8 * 1024 * 1024  # bytes asked of storage at a time
SOURCE_CHUNK_BYTES = 256 * 1024  # bytes handed to the client at a time
router = v1_router()


class SourceUrlOut(BaseModel):
    """A signed link to one job's video, for a `<video>` element; no key is in it."""

    url: str = Field(description="GET it without a key until expires_at.")
    expires_at: datetime


async def playable_source(
    context: ContextDep, job_id: str, caller: Caller | None
) -> tuple[JobRecord, str]:
    """A completed job the caller may see (None: a token holder) with something to play,
    and the storage key of what plays; else 404."""
    job = await completed_job(context, job_id, caller)
    playback = Playback.from_summary(job.result_summary)
    if playback is None:
        raise NotFound(
            f"job {job_id} has no video a browser can play (no H.264 upload or playable copy)"
        )
    return job, playable_key(job.job_id) if playback.copy else job.input_path


def _stream(storage: Storage, key: str, span: ByteRange) -> Generator[bytes, None, None]:
    """The span's bytes, read from storage one window at a time, in chunks."""
    for window_start in range(span.start, span.end + 1, SOURCE_WINDOW_BYTES):
        window_end = min(span.end, window_start + SOURCE_WINDOW_BYTES - 1)
        with storage.open_range(key, window_start, window_end) as handle:
            while chunk := handle.read(SOURCE_CHUNK_BYTES):
                yield chunk


@router.get(
    "/video/source/{job_id}",
    response_class=Response,
    responses={
        200: {"content": {SOURCE_MEDIA_TYPE: {}}, "description": "The whole video"},
        206: {"content": {SOURCE_MEDIA_TYPE: {}}, "description": "The range asked for"},
        401: {"description": "No valid key, or a token that is wrong, for another job or old"},
        404: {"description": "Unknown or not completed job, or nothing a browser plays"},
        416: {"description": "The range starts past the video's end"},
    },
)
async def job_source(
    job_id: str,
    request: Request,
    context: ContextDep,
    caller: Annotated[Caller | None, Depends(SOURCE)],
) -> Response:
    """The job's video (video/mp4) for playing: the whole of it, or the one byte range asked
    for with `Range` (206). Multiple ranges get the whole video."""
    _, key = await playable_source(context, job_id, caller)
    storage = context.storage
    info = await read_storage(storage.stat, key, what="the video")
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": info.etag,
        "Cache-Control": "private",
        "X-Content-Type-Options": "nosniff",
    }
    if_range = request.headers.get("if-range")
    try:
        span = requested_range(request.headers.get("range"), info.size)
    except RangeNotSatisfiable:
        if if_range is None or if_range == info.etag:
            headers["Content-Range"] = unsatisfied_content_range(info.size)
            detail = f"the range starts past the video's end ({info.size} bytes)"
            return JSONResponse({"detail": detail}, status_code=416, headers=headers)
        span = None
    if if_range is not None and if_range != info.etag:
        span = None  # the client's copy is not this one: it gets the whole video
    status = 206
    if span is None:
        status = 200
        if info.size == 0:
            return Response(b"", media_type=SOURCE_MEDIA_TYPE, headers=headers)
        span = ByteRange(0, info.size - 1, info.size)
    else:
        headers["Content-Range"] = span.content_range
    headers["Content-Length"] = str(span.length)
    first = await read_storage(_first_window, storage, key, span, what="the video")
    return StreamingResponse(
        first, status_code=status, media_type=SOURCE_MEDIA_TYPE, headers=headers
    )


def _first_window(storage: Storage, key: str, span: ByteRange) -> Iterator[bytes]:
    """The span's stream with its first storage read done, so a storage failure is a 503
    before the answer starts, not a cut-off body."""
    stream: Generator[bytes, None, None] = _stream(storage, key, span)
    first = next(stream, b"")

    def chained() -> Iterator[bytes]:
        try:
            if first:
                yield first
            yield from stream
        finally:
            stream.close()

    return chained()


@router.get(
    "/video/source-url/{job_id}",
    response_model=SourceUrlOut,
    responses={404: {"description": "Unknown or not completed job, or nothing to play"}},
)
async def job_source_url(
    job_id: str,
    request: Request,
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
) -> SourceUrlOut:
    """A link to the job's video that needs no key for one hour (HMAC-signed, no key in it);
    only for a caller who may read the job (a user: its own)."""
    job, _ = await playable_source(context, job_id, caller)
    token, expires = context.source_tokens.issue(job.job_id, time.time())
    url = request.url_for("job_source", job_id=str(job.job_id)).include_query_params(token=token)
    return SourceUrlOut(url=str(url), expires_at=datetime.fromtimestamp(expires, UTC))
