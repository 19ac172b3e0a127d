"""GET /v1/video/results/{job_id}: a completed job's per-frame results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from forgesyte.api.deps import ContextDep, parse_job_id, require_api_key
from forgesyte.api.errors import NotFound, ServiceUnavailable
from forgesyte.api.schemas import JobResultsOut
from forgesyte.jobs.models import JobStatus
from forgesyte.storage.base import Storage, StorageError

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, as the status endpoint writes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_document(storage: Storage, key: str) -> dict[str, Any]:
    with storage.open(key) as handle:
        document: dict[str, Any] = json.load(handle)
    return document


@router.get(
    "/video/results/{job_id}",
    response_model=JobResultsOut,
    responses={404: {"description": "Unknown job, or a job that is not completed"}},
)
async def job_results(job_id: str, context: ContextDep) -> Response:
    """The results of a completed job: one entry per analysed frame, in frame order."""
    job = await run_in_threadpool(context.store.get, parse_job_id(job_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.status is JobStatus.FAILED:
        raise NotFound(f"job {job_id} failed, so it has no results: {job.error_message}")
    if job.status is not JobStatus.COMPLETED or job.output_path is None:
        raise NotFound(f"job {job_id} is {job.status.value}; results exist once it is completed")
    try:
        document = await run_in_threadpool(_read_document, context.storage, job.output_path)
    except (StorageError, OSError) as exc:
        raise ServiceUnavailable("the results could not be read from storage") from exc
    document["created_at"] = iso_utc(job.created_at)
    document["updated_at"] = iso_utc(job.updated_at)
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Response(body, media_type="application/json")
