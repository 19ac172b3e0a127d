"""The job list, cancel and delete: GET /v1/video/jobs, POST /v1/video/cancel/{job_id},
DELETE /v1/video/jobs/{job_id}."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from forgesyte.api.access import ACT, READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import (
    ContextDep,
    cursor_errors,
    decode_cursor,
    encode_cursor,
    job_of,
    page_size,
    v1_router,
)
from forgesyte.api.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from forgesyte.api.schemas import JobStatusOut
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobFinishedError, JobPageCursor, JobRecord, JobRunningError
from forgesyte.retention import remove_job
from forgesyte.storage.base import StorageError

router = v1_router()

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class JobListItemOut(JobStatusOut):
    """A job in the list: its status object and its pipeline."""

    pipeline_id: str


class JobListOut(BaseModel):
    """One page of the job list, newest first."""

    jobs: list[JobListItemOut]
    next_cursor: str | None


def job_cursor(job: JobRecord) -> str:
    """An opaque cursor naming the position of a page's last job."""
    return encode_cursor([job.created_at.isoformat(), str(job.job_id)])


def job_position(cursor: str) -> JobPageCursor:
    """The position an opaque cursor names; BadRequest for anything this server did not make."""
    values = decode_cursor(cursor)
    with cursor_errors():
        created_at, job_id = values
        position = JobPageCursor(datetime.fromisoformat(created_at), uuid.UUID(job_id))
        if position.created_at.tzinfo is None:
            raise ValueError("no time zone")
        return position


@router.get(
    "/video/jobs",
    response_model=JobListOut,
    response_model_exclude_none=True,
    responses={400: {"description": "Bad status, limit or cursor"}},
)
async def list_jobs(
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
    status: Annotated[str | None, Query(description="Only jobs in this state")] = None,
    pipeline_id: Annotated[str | None, Query(description="Only jobs of this pipeline")] = None,
    limit: Annotated[str | None, Query(description="Jobs per page, 1-200 (default 50)")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    """Jobs newest first, one page at a time; follow next_cursor (null on the last page)."""
    size = page_size(limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    wanted: JobStatus | None = None
    if status is not None:
        try:
            wanted = JobStatus(status)
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise BadRequest(f"status: must be one of {known}") from None
    after = job_position(cursor) if cursor is not None else None
    page = await run_in_threadpool(
        lambda: context.store.list_page(
            limit=size + 1,
            after=after,
            status=wanted,
            pipeline_id=pipeline_id,
            owner=caller.owner_filter,
        )
    )
    more = len(page) > size
    page = page[:size]
    jobs = [
        JobListItemOut(**JobStatusOut.of(job).model_dump(), pipeline_id=job.pipeline_id).model_dump(
            mode="json", exclude_none=True
        )
        for job in page
    ]
    next_cursor = job_cursor(page[-1]) if more else None
    return JSONResponse({"jobs": jobs, "next_cursor": next_cursor})


@router.post(
    "/video/cancel/{job_id}",
    response_model=JobStatusOut,
    response_model_exclude_none=True,
    responses={404: {"description": "Unknown job"}, 409: {"description": "The job has ended"}},
)
async def cancel_job(
    job_id: str, context: ContextDep, caller: Annotated[Caller, Depends(ACT)]
) -> JobStatusOut:
    """Cancel a pending job at once, or stop a running one's analysis (within 5 s)."""
    job_uuid = (await job_of(context, job_id, caller)).job_id  # another's: 404
    try:
        cancelled = await run_in_threadpool(context.store.cancel, job_uuid)
    except JobFinishedError as exc:
        raise Conflict(f"job {job_id} is already {exc.status.value}") from None
    if cancelled is None:
        raise NotFound(f"job {job_id} not found")
    return JobStatusOut.of(cancelled)


@router.delete(
    "/video/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        404: {"description": "Unknown job"},
        409: {"description": "The job is running: cancel it first"},
        503: {"description": "Storage could not delete the job's files; try again"},
    },
)
async def delete_job(
    job_id: str, context: ContextDep, caller: Annotated[Caller, Depends(ACT)]
) -> Response:
    """Remove a job that is not running: its row, its video and its results."""
    job_uuid = (await job_of(context, job_id, caller)).job_id  # another's: 404
    try:
        removed = await run_in_threadpool(remove_job, context.store, context.storage, job_uuid)
    except JobRunningError:
        raise Conflict(f"job {job_id} is running; cancel it first") from None
    except (StorageError, OSError):
        raise ServiceUnavailable(
            f"storage could not delete job {job_id}'s files; try again"
        ) from None
    if removed is None:
        raise NotFound(f"job {job_id} not found")
    return Response(status_code=204)
