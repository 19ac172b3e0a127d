"""GET /v1/video/results/{job_id}: a completed job's per-frame results, streamed from storage.

The stored results are JSON Lines; every answer (the whole document, a page, format=jsonl)
is written as the lines are read, so the API never holds a job's results whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from fastapi.types import DecoratedCallable
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from forgesyte.api.context import AppContext
from forgesyte.api.deps import ContextDep, parse_job_id, require_api_key
from forgesyte.api.errors import NotFound, ServiceUnavailable
from forgesyte.api.schemas import JobResultsOut
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord
from forgesyte.results.reading import (
    MAX_PAGE_LIMIT,
    Page,
    open_lines,
    stream_document,
    stream_lines,
)
from forgesyte.storage.base import Storage, StorageError

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])

NDJSON_MEDIA_TYPE = "application/x-ndjson"
NOT_COMPLETED_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown job, or a job that is not completed"}
}


def document_route(
    router: APIRouter, path: str, model: type[BaseModel], media_type: str, format_name: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """GET path on router: a completed job's document, as model in JSON or (asked for with
    `format`) in media_type; 404 for an unknown or not completed job."""
    ok = {"content": {media_type: {}}, "description": f"JSON, or {format_name}"}
    return router.get(path, response_model=model, responses={**NOT_COMPLETED_RESPONSES, 200: ok})


T = TypeVar("T")


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, as the status endpoint writes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def completed_job(context: AppContext, job_id: str) -> JobRecord:
    """The completed job, or a 404 that says whether it is unknown, failed or not done yet."""
    job = await run_in_threadpool(context.store.get, parse_job_id(job_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.status is JobStatus.FAILED:
        raise NotFound(f"job {job_id} failed, so it has no results: {job.error_message}")
    if job.status is not JobStatus.COMPLETED or job.output_path is None:
        raise NotFound(f"job {job_id} is {job.status.value}; results exist once it is completed")
    return job


def open_results(storage: Storage, key: str) -> BinaryIO:
    """A job's stored results as JSON Lines (older jobs' whole documents converted)."""
    return open_lines(storage.open(key), key)


async def read_storage(action: Callable[..., T], *args: Any) -> T:
    """Run a storage read in the thread pool; a storage failure is a 503 that names nothing."""
    try:
        return await run_in_threadpool(action, *args)
    except (StorageError, OSError) as exc:
        raise ServiceUnavailable("the results could not be read from storage") from exc


def _guarded(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Chunks of a streamed answer; a storage failure mid-stream ends the connection."""
    try:
        yield from chunks
    except (StorageError, OSError) as exc:
        # the status line is sent already: cut the body short so the client sees an error
        raise RuntimeError("the results could not be read from storage") from exc


def results_header(job: JobRecord, page: Page) -> dict[str, Any]:
    """The document's fields besides `results`: identity, options, video, totals, paging."""
    summary = job.result_summary or {}
    total = int(summary.get("frames_analysed", 0))
    return {
        "job_id": str(job.job_id),
        "pipeline_id": job.pipeline_id,
        "options": job.options,
        "video": summary.get("video", {}),
        "frames_analysed": total,
        "next_offset": page.next_offset(total),
        "created_at": iso_utc(job.created_at),
        "updated_at": iso_utc(job.updated_at),
    }


@document_route(router, "/video/results/{job_id}", JobResultsOut, NDJSON_MEDIA_TYPE, "JSON Lines")
async def job_results(
    job_id: str,
    context: ContextDep,
    offset: Annotated[int, Query(ge=0, description="First entry of the page.")] = 0,
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_PAGE_LIMIT, description="Entries in the page.")
    ] = None,
    format: Annotated[
        Literal["json", "jsonl"], Query(description="json (default) or jsonl.")
    ] = "json",
) -> StreamingResponse:
    """The results of a completed job: one entry per analysed frame, in frame order.

    offset/limit select entries [offset, offset+limit); `next_offset` is the next page's
    offset or null. format=jsonl streams the entries as JSON Lines.
    """
    job = await completed_job(context, job_id)
    page = Page(offset, limit)
    assert job.output_path is not None  # completed_job checked it
    handle = await read_storage(open_results, context.storage, job.output_path)
    if format == "jsonl":
        return StreamingResponse(_guarded(stream_lines(handle, page)), media_type=NDJSON_MEDIA_TYPE)
    document = stream_document(handle, results_header(job, page), page)
    return StreamingResponse(_guarded(document), media_type="application/json")
