"""GET /v1/video/preview/{job_id}?frame_index=N: an analysed frame with its results drawn."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from forgesyte.api.deps import ContextDep, require_api_key
from forgesyte.api.errors import NotFound
from forgesyte.api.routes.job_results import completed_job, open_results, read_storage
from forgesyte.results.preview import FrameNotDecodable, render_preview
from forgesyte.results.reading import find_frame
from forgesyte.storage.base import Storage

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])


def _render(storage: Storage, video_key: str, entry: dict[str, Any]) -> bytes | None:
    """The preview JPEG, or None when the stored video has no such frame (any more)."""
    with storage.local_copy(video_key) as video_path:
        try:
            return render_preview(video_path, entry)
        except FrameNotDecodable:
            return None


@router.get(
    "/video/preview/{job_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The frame, boxes and text drawn"},
        404: {"description": "Unknown or not completed job, or a frame the job did not analyse"},
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
    image = await read_storage(_render, context.storage, job.input_path, entry)
    if image is None:
        raise NotFound(f"frame {frame_index} of job {job_id} could not be decoded")
    return Response(image, media_type="image/jpeg")
