"""GET /v1/video/status/{job_id}: a job's state and progress."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from forgesyte.api.deps import ContextDep, parse_job_id, require_api_key
from forgesyte.api.errors import NotFound
from forgesyte.api.schemas import JobStatusOut
from forgesyte.jobs.models import JobStatus

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])


@router.get(
    "/video/status/{job_id}",
    response_model=JobStatusOut,
    response_model_exclude_none=True,
    responses={404: {"description": "Unknown job"}},
)
async def job_status(job_id: str, context: ContextDep) -> JobStatusOut:
    """The job's status, progress (percent) and timestamps; error_message when failed."""
    job = await run_in_threadpool(context.store.get, parse_job_id(job_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return JobStatusOut(
        job_id=job.job_id,
        status=job.status,
        progress=100.0 if job.status is JobStatus.COMPLETED else job.progress,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error_message=job.error_message if job.status is JobStatus.FAILED else None,
    )
