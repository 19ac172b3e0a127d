"""GET /v1/video/timeline/{job_id}: what happened in the video (text segments, object
tracks, shots).

The timeline is computed once, when the job completes, and stored beside its results;
this route streams it (JSON) or turns its text segments, or its shots, into WebVTT
(format=vtt, track=subtitles or chapters).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, BinaryIO, Literal

from fastapi import Depends, Query
from fastapi.responses import Response, StreamingResponse

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, completed_job, document_route, read_storage, v1_router
from forgesyte.api.errors import NotFound
from forgesyte.api.schemas import TimelineOut
from forgesyte.jobs.options import JobOptions
from forgesyte.results.encoding import encode_json
from forgesyte.results.reading import LEGACY_DOCUMENT_SUFFIX
from forgesyte.results.vtt import chapters_vtt, subtitles_vtt
from forgesyte.storage.base import timeline_key

router = v1_router()

VTT_MEDIA_TYPE = "text/vtt"
CHUNK_BYTES = 64 * 1024  # read from storage this much at a time
SHOTS_KEY = b'"shots":'  # only a key of the stored object can hold these bytes: inside a
# string a quote is escaped, and no entry of a timeline has a "shots" key


def _with_job_id(job_id: str, handle: BinaryIO) -> Iterator[bytes]:
    """The stored timeline ``{"objects":..., "text":...}`` with ``"job_id"`` put first and,
    if it has none (stored before shots were found), ``"shots":[]`` put last.

    Streamed: one chunk is held back, so the closing brace can be changed at the end.
    """
    try:
        held, tail, has_shots = b"", b"", False
        for number, chunk in enumerate(iter(lambda: handle.read(CHUNK_BYTES), b"")):
            if number == 0:
                chunk = encode_json({"job_id": job_id})[:-1] + b"," + chunk.removeprefix(b"{")
            has_shots = has_shots or SHOTS_KEY in tail + chunk
            tail = chunk[-len(SHOTS_KEY) :]
            if held:
                yield held
            held = chunk
        held = held.rstrip()
        if not has_shots and held.endswith(b"}"):
            held = held[:-1] + b',"shots":[]}'
        yield held
    finally:
        handle.close()


@document_route(router, "/video/timeline/{job_id}", TimelineOut, VTT_MEDIA_TYPE, "WebVTT")
async def job_timeline(
    job_id: str,
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
    format: Annotated[Literal["json", "vtt"], Query(description="json (default) or vtt.")] = "json",
    track: Annotated[
        Literal["subtitles", "chapters"],
        Query(
            description="With format=vtt: subtitles (default), one cue per text segment, "
            "or chapters, one cue per shot."
        ),
    ] = "subtitles",
) -> Response:
    """Text segments, object tracks (both sorted by start_s) and shots of a completed job.

    format=vtt: a WebVTT file with one cue per text segment (track=subtitles) or per shot
    (track=chapters; none unless the job was submitted with detect_shots).
    """
    job = await completed_job(context, job_id, caller)
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
    frame_s = 1 / fps if fps > 0 else 0.0
    if track == "chapters":
        return Response(chapters_vtt(timeline.get("shots", []), frame_s), media_type=VTT_MEDIA_TYPE)
    options = JobOptions.from_stored(job.options)
    # a cue lasts to the end of its last analysed frame: one sampling interval
    interval_s = options.frame_stride * frame_s
    if options.sample_fps is not None:
        interval_s = max(1 / options.sample_fps, frame_s)
    return Response(subtitles_vtt(timeline["text"], interval_s), media_type=VTT_MEDIA_TYPE)
