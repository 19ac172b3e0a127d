"""GET /v1/video/preview/{job_id}?frame_index=N: an analysed frame with its results drawn."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from forgesyte.api.deps import ContextDep, require_api_key
from forgesyte.api.errors import NotFound, TooManyRequests
from forgesyte.api.routes.job_results import completed_job, open_results, read_storage
from forgesyte.results.preview import FrameNotDecodable, render_preview
from forgesyte.results.reading import find_frame
from forgesyte.storage.base import Storage

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])

# Each preview decodes up to one group of pictures in the API's thread pool (and on S3
# copies the video first): at most this many at once per API process, the rest get 429.
MAX_CONCURRENT_PREVIEWS = 2
PREVIEW_RETRY_AFTER_S = 1
_preview_slots = threading.BoundedSemaphore(MAX_CONCURRENT_PREVIEWS)


@contextmanager
def _preview_slot() -> Iterator[None]:
    """One of the preview slots, or TooManyRequests when all are taken."""
    if not _preview_slots.acquire(blocking=False):
        raise TooManyRequests(
            f"{MAX_CONCURRENT_PREVIEWS} previews are being drawn; try again shortly",
            retry_after_s=PREVIEW_RETRY_AFTER_S,
        )
    try:
        yield
    finally:
        _preview_slots.release()


def _render(
    storage: Storage, video_key: str, entry: dict[str, Any], max_frame_pixels: int
) -> bytes | None:
    """The preview JPEG, or None when the stored video has no such frame (any more)."""
    with _preview_slot(), storage.local_copy(video_key) as video_path:
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
    assert job.output_path is not None  # completed_job checked it
    handle = await read_storage(open_results, context.storage, job.output_path)
    entry = await read_storage(find_frame, handle, frame_index)
    if entry is None:
        raise NotFound(f"job {job_id} did not analyse frame {frame_index}")
    image = await read_storage(
        _render, context.storage, job.input_path, entry, context.settings.max_frame_pixels
    )
    if image is None:
        raise NotFound(f"frame {frame_index} of job {job_id} could not be decoded")
    return Response(image, media_type="image/jpeg")
