"""GET /v1/video/status/{job_id}: a job's state and progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.responses import Response

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, job_of, parse_job_id, v1_router
from forgesyte.api.schemas import JobStatusOut

router = v1_router()


@router.get(
    "/video/status/{job_id}",
    response_model=JobStatusOut,
    response_model_exclude_none=True,
    responses={404: {"description": "Unknown job"}},
)
async def job_status(
    job_id: str, context: ContextDep, caller: Annotated[Caller, Depends(READ)]
) -> Response:
    """The job's status, progress (percent) and timestamps; error_message when failed."""
    job_uuid = parse_job_id(job_id)
    cache = context.status_cache
    body = cache.get(job_uuid, caller.owner_filter)
    if body is None:
        job = await job_of(context, job_id, caller)
        body = JobStatusOut.of(job).model_dump_json(exclude_none=True).encode()
        cache.put(job, body)
    return Response(body, media_type="application/json")
