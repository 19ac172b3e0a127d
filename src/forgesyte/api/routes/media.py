"""What the page shows beside the video, made by the worker's analysis child (results/media.py):

GET /v1/video/thumbnail/{job_id}?kind=&index=  one text segment's, object track's or shot's
    thumbnail (JPEG): two small ranged reads of the job's thumbnail pack;
GET /v1/video/track-ids/{job_id}?offset=&limit=  the track id of each detection of each
    analysed frame, paged like the results, so the page labels a frame's boxes with the
    timeline's tracks.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, completed_job, read_storage, v1_router
from forgesyte.api.errors import NotFound
from forgesyte.results.media import ThumbnailCounts, index_entry_span, read_index_entry
from forgesyte.results.reading import MAX_PAGE_LIMIT, Page, iter_page_lines
from forgesyte.storage.base import Storage, frame_tracks_key, thumbnails_key

router = v1_router()


class FrameTracksOut(BaseModel):
    """The track ids of the detections of a page of analysed frames."""

    job_id: str
    frames: list[dict[str, Any]] = Field(
        description='One {"frame_index", "track_ids"} per analysed frame, as in the results '
        "(the same offset and limit): track_ids[i] is the timeline's track_id of the frame's "
        "i-th detection."
    )
    next_offset: int | None


def _read_thumbnail(storage: Storage, key: str, position: int) -> bytes | None:
    """A thumbnail from the pack: its index entry, then its bytes (None: it has none)."""
    start, end = index_entry_span(position)
    with storage.open_range(key, start, end) as handle:
        entry = read_index_entry(handle.read())
    if entry is None:
        return None
    offset, length = entry
    with storage.open_range(key, offset, offset + length - 1) as handle:
        return handle.read()


@router.get(
    "/video/thumbnail/{job_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The thumbnail"},
        404: {"description": "Unknown or not completed job, no such item, or no thumbnail"},
    },
)
async def job_thumbnail(
    job_id: str,
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
    kind: Annotated[
        Literal["text", "object", "shot"], Query(description="What it shows a thumbnail of.")
    ],
    index: Annotated[
        int, Query(ge=0, description="The item's place in the timeline's list of that kind.")
    ],
) -> Response:
    """A small JPEG of a text segment's or an object track's best reading (a crop around
    it, from the frame it was read in) or of a shot's middle frame."""
    job = await completed_job(context, job_id, caller)
    counts = ThumbnailCounts.from_summary(job.result_summary)
    position = counts.position(kind, index) if counts is not None else None
    if position is None:
        raise NotFound(f"job {job_id} has no thumbnail of {kind} {index}")
    image = await read_storage(
        _read_thumbnail, context.storage, thumbnails_key(job.job_id), position, what="thumbnails"
    )
    if image is None:
        raise NotFound(f"job {job_id} has no thumbnail of {kind} {index}")
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": "private"})


def _read_frame_tracks(storage: Storage, key: str, page: Page) -> list[dict[str, Any]]:
    with storage.open(key) as handle:
        return [json.loads(line) for line in iter_page_lines(handle, page)]


@router.get(
    "/video/track-ids/{job_id}",
    response_model=FrameTracksOut,
    responses={404: {"description": "Unknown or not completed job, or none were made"}},
)
async def job_track_ids(
    job_id: str,
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
    offset: Annotated[int, Query(ge=0, description="First analysed frame of the page.")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_LIMIT, description="Analysed frames in the page.")
    ] = MAX_PAGE_LIMIT,
) -> FrameTracksOut:
    """Each detection's track id, for analysed frames [offset, offset+limit)."""
    job = await completed_job(context, job_id, caller)
    if ThumbnailCounts.from_summary(job.result_summary) is None:  # no media were made
        raise NotFound(f"job {job_id} has no track ids (its media were not made)")
    page = Page(offset, limit)
    frames = await read_storage(
        _read_frame_tracks, context.storage, frame_tracks_key(job.job_id), page, what="track ids"
    )
    total = int((job.result_summary or {}).get("frames_analysed", 0))
    return FrameTracksOut(
        job_id=str(job.job_id), frames=frames, next_offset=page.next_offset(total)
    )
