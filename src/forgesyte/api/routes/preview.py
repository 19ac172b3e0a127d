"""GET /v1/video/preview/{job_id}?frame_index=N: an analysed frame with its results drawn."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

from forgesyte.api.deps import ContextDep, completed_job, open_results, read_storage, v1_router
from forgesyte.api.errors import NotFound
from forgesyte.results.preview import FrameNotDecodable, render_preview
from forgesyte.results.reading import find_frame
from forgesyte.storage.base import Storage

router = v1_router()


def _render(
    storage: Storage, video_key: str, entry: dict[str, Any], max_frame_pixels: int
) -> bytes | None:
    """The preview JPEG, or None when the stored video has no such frame (any more)."""
    with storage.local_copy(video_key) as video_path:
        try:
            return render_preview(video_path, entry, max_frame_pixels)
        except FrameNotDecodable:
            return None


@router.get(
    "/video/preview/{job_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The frame, boxes and text drawn"},
        404: {"description": "Unknown or not completed job, or a frame the job did not analyse"},
        429: {"description": "Too many previews are being drawn at once; see Retry-After"},
    },
)
async def job_preview(
    job_id: str,
    context: ContextDep,
    frame_index: Annotated[int, Query(ge=0, description="An analysed frame's index.")],
) -> Response:
    """The analysed frame at the video's size, with the job's boxes and text drawn (JPEG)."""
    job = await completed_job(context, job_id)
    handle = await open_results(context, job)
    entry = await read_storage(find_frame, handle, frame_index)
    if entry is None:
        raise NotFound(f"job {job_id} did not analyse frame {frame_index}")
    with context.preview_slots.hold():  # decoding is costly: a few at once (api/context.py)
        image = await read_storage(
            _render, context.storage, job.input_path, entry, context.settings.max_frame_pixels
        )
    if image is None:
        raise NotFound(f"frame {frame_index} of job {job_id} could not be decoded")
    return Response(image, media_type="image/jpeg")
