"""GET /v1/video/results/{job_id}: a completed job's per-frame results, streamed from storage.

The stored results are JSON Lines; every answer (the whole document, a page, format=jsonl)
is written as the lines are read, so the API never holds a job's results whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, completed_job, document_route, open_results, v1_router
from forgesyte.api.schemas import JobResultsOut
from forgesyte.jobs.store import JobRecord
from forgesyte.results.reading import MAX_PAGE_LIMIT, Page, stream_document, stream_lines
from forgesyte.storage.base import StorageError

router = v1_router()

NDJSON_MEDIA_TYPE = "application/x-ndjson"


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, as the status endpoint writes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    caller: Annotated[Caller, Depends(READ)],
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
    job = await completed_job(context, job_id, caller)
    page = Page(offset, limit)
    handle = await open_results(context, job)
    if format == "jsonl":
        return StreamingResponse(_guarded(stream_lines(handle, page)), media_type=NDJSON_MEDIA_TYPE)
    document = stream_document(handle, results_header(job, page), page)
    return StreamingResponse(_guarded(document), media_type="application/json")
