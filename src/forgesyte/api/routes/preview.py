"""GET /v1/video/preview/{job_id}?frame_index=N: an analysed frame with its results drawn.

The frame is decoded and drawn by a short-lived child process (`AppContext.previews`), never
in this process: a decoder that crashes or hangs on a hostile video takes down that child,
and this route answers 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import Response

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, completed_job, open_results, read_storage, v1_router
from forgesyte.api.errors import NotFound, ServiceUnavailable
from forgesyte.results.preview import FrameNotDecodable, PreviewFailed, PreviewRenderer
from forgesyte.results.reading import find_frame
from forgesyte.storage.base import Storage

router = v1_router()


def _render(
    storage: Storage, video_key: str, entry: dict[str, Any], renderer: PreviewRenderer
) -> bytes:
    """The preview JPEG, drawn from a local copy of the video (local storage: its file)."""
    with storage.local_copy(video_key) as video_path:
        return renderer.render(video_path, entry)


@router.get(
    "/video/preview/{job_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The frame, boxes and text drawn"},
        404: {"description": "Unknown or not completed job, or a frame the job did not analyse"},
        429: {"description": "Too many previews are being drawn at once; see Retry-After"},
        503: {"description": "The process drawing it crashed, timed out or ran out of memory"},
    },
)
async def job_preview(
    job_id: str,
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
    frame_index: Annotated[int, Query(ge=0, description="An analysed frame's index.")],
) -> Response:
    """The analysed frame at the video's size, with the job's boxes and text drawn (JPEG)."""
    job = await completed_job(context, job_id, caller)
    handle = await open_results(context, job)
    entry = await read_storage(find_frame, handle, frame_index)
    if entry is None:
        raise NotFound(f"job {job_id} did not analyse frame {frame_index}")
    renderer = context.previews
    if renderer is None:
        raise ServiceUnavailable("this server process draws no previews")
    with context.preview_slots.hold():  # a child process each: a few at once (api/context.py)
        try:
            image = await read_storage(
                _render, context.storage, job.input_path, entry, renderer, what="the video"
            )
        except FrameNotDecodable:
            raise NotFound(f"frame {frame_index} of job {job_id} could not be decoded") from None
        except PreviewFailed as exc:
            raise ServiceUnavailable(f"the preview could not be drawn: {exc}") from None
    return Response(image, media_type="image/jpeg")
