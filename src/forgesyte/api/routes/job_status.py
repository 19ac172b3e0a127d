"""GET /v1/video/status/{job_id}: a job's state and progress."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from forgesyte.api.deps import ContextDep, parse_job_id, require_api_key
from forgesyte.api.errors import NotFound
from forgesyte.api.schemas import JobStatusOut
from forgesyte.api.status_cache import StatusCache
from forgesyte.jobs.store import JobRecord

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])


@router.get(
    "/video/status/{job_id}",
    response_model=JobStatusOut,
    response_model_exclude_none=True,
    responses={404: {"description": "Unknown job"}},
)
async def job_status(job_id: str, request: Request, context: ContextDep) -> Response:
    """The job's status, progress (percent) and timestamps; error_message when failed."""
    job_uuid = parse_job_id(job_id)
    cache: StatusCache = request.app.state.status_cache
    body = cache.get(job_uuid)
    if body is None:
        job = await run_in_threadpool(context.store.get, job_uuid)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        body = status_body(job)
        cache.put(job, body)
    return Response(body, media_type="application/json")


def status_body(job: JobRecord) -> bytes:
    """The JSON answer of the status route for a job snapshot."""
    return JobStatusOut.of(job).model_dump_json(exclude_none=True).encode()
