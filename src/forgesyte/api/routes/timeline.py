"""GET /v1/video/timeline/{job_id}: what happened in the video (text segments, object tracks).

The timeline is computed once, when the job completes, and stored beside its results;
this route streams it (JSON) or turns its text segments into WebVTT (format=vtt).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, BinaryIO, Literal

from fastapi import Query
from fastapi.responses import Response, StreamingResponse

from forgesyte.api.deps import ContextDep, completed_job, document_route, read_storage, v1_router
from forgesyte.api.errors import NotFound
from forgesyte.api.schemas import TimelineOut
from forgesyte.results.encoding import encode_json
from forgesyte.results.reading import LEGACY_DOCUMENT_SUFFIX
from forgesyte.results.vtt import write_vtt
from forgesyte.storage.base import timeline_key

router = v1_router()

VTT_MEDIA_TYPE = "text/vtt"
CHUNK_BYTES = 64 * 1024  # read from storage this much at a time


def _with_job_id(job_id: str, handle: BinaryIO) -> Iterator[bytes]:
    """The stored timeline ``{"objects":..., "text":...}`` with ``"job_id"`` put first."""
    try:
        first = True
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            if first:
                chunk = encode_json({"job_id": job_id})[:-1] + b"," + chunk.removeprefix(b"{")
                first = False
            yield chunk
    finally:
        handle.close()


@document_route(router, "/video/timeline/{job_id}", TimelineOut, VTT_MEDIA_TYPE, "WebVTT")
async def job_timeline(
    job_id: str,
    context: ContextDep,
    format: Annotated[Literal["json", "vtt"], Query(description="json (default) or vtt.")] = "json",
) -> Response:
    """Text segments and object tracks of a completed job, sorted by start_s.

    format=vtt: a WebVTT file with one cue per text segment.
    """
    job = await completed_job(context, job_id)
    assert job.output_path is not None  # completed_job checked it
    if job.output_path.endswith(LEGACY_DOCUMENT_SUFFIX):
        raise NotFound(f"job {job_id} completed before timelines were made; submit it again")
    handle: BinaryIO = await read_storage(context.storage.open, timeline_key(job.job_id))
    if format == "json":
        return StreamingResponse(
            _with_job_id(str(job.job_id), handle), media_type="application/json"
        )
    with handle:
        timeline = await read_storage(json.load, handle)
    fps = float((job.result_summary or {}).get("video", {}).get("fps") or 0.0)
    stride = int(job.options.get("frame_stride") or 1)
    frame_interval_s = stride / fps if fps > 0 else 0.0
    return Response(write_vtt(timeline["text"], frame_interval_s), media_type=VTT_MEDIA_TYPE)
