"""What the routes share: dependencies as Annotated aliases, the completed-job lookup,
storage reads (a storage failure is a 503, translated here only) and the document routes."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any, BinaryIO, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.types import DecoratedCallable
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from forgesyte.api.auth import Caller
from forgesyte.api.context import AppContext
from forgesyte.api.errors import BadRequest, NotFound, ServiceUnavailable
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord
from forgesyte.results.reading import open_lines
from forgesyte.storage.base import StorageError

T = TypeVar("T")

MAX_CURSOR_LENGTH = 512  # characters of a paging cursor a route accepts
NOT_A_CURSOR = "cursor: not a cursor this server gave out"


async def get_context(request: Request) -> AppContext:
    """The application's wired context."""
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def v1_router(tag: str = "jobs") -> APIRouter:
    """A router for routes under /v1; each route declares its access rule (api/access.py)."""
    return APIRouter(prefix="/v1", tags=[tag])


def page_size(limit: str | None, default: int, maximum: int) -> int:
    """A page size from the query string (default when absent); BadRequest unless 1-maximum."""
    if limit is None:
        return default
    try:
        size = int(limit)
    except ValueError:
        size = 0
    if not 1 <= size <= maximum:
        raise BadRequest(f"limit: must be a whole number from 1 to {maximum}")
    return size


def encode_cursor(values: list[Any]) -> str:
    """An opaque paging cursor holding values (JSON in URL-safe base64, unpadded)."""
    raw = json.dumps(values, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The values an opaque cursor holds; BadRequest for anything that is not one.

    The caller checks what the values are and raises ValueError or TypeError when they
    are not what it gave out: wrap that check in `cursor_errors()`.
    """
    with cursor_errors():
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list):
            raise ValueError("not a list")
        return values


@contextlib.contextmanager
def cursor_errors() -> Iterator[None]:
    """Turn what a malformed cursor raises while it is read into one 400."""
    try:
        yield
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise BadRequest(NOT_A_CURSOR) from None


def parse_job_id(job_id: str) -> uuid.UUID:
    """A job id from the path; a malformed one is an unknown job."""
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"job {job_id} not found") from None


async def job_of(context: AppContext, job_id: str, caller: Caller | None) -> JobRecord:
    """The job, if the caller may see it; a 404 for an unknown job and for another's alike
    (a user key's). caller None: a token holder, whose token was checked for this job."""
    job = await run_in_threadpool(context.store.get, parse_job_id(job_id))
    if job is None or (caller is not None and not caller.may_read(job)):
        raise NotFound(f"job {job_id} not found")
    return job


async def completed_job(context: AppContext, job_id: str, caller: Caller | None) -> JobRecord:
    """The completed job the caller may see (`job_of`), or a 404 that says whether it is
    unknown, failed or not done yet."""
    job = await job_of(context, job_id, caller)
    if job.status is JobStatus.FAILED:
        raise NotFound(f"job {job_id} failed, so it has no results: {job.error_message}")
    if job.status is not JobStatus.COMPLETED or job.output_path is None:
        raise NotFound(f"job {job_id} is {job.status.value}; results exist once it is completed")
    return job


async def open_results(context: AppContext, job: JobRecord) -> BinaryIO:
    """A completed job's results as JSON Lines (older whole documents converted), or 503."""
    key = job.output_path
    assert key is not None  # completed_job checked it
    return await read_storage(lambda: open_lines(context.storage.open(key), key))


async def read_storage(action: Callable[..., T], *args: Any, what: str = "the results") -> T:
    """Run a storage read in the thread pool; a storage failure is a 503 that names nothing
    but `what` was being read."""
    try:
        return await run_in_threadpool(action, *args)
    except (StorageError, OSError) as exc:
        raise ServiceUnavailable(f"{what} could not be read from storage") from exc


def document_route(
    router: APIRouter, path: str, model: type[BaseModel], media_type: str, format_name: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """GET path on router: a completed job's document, as model in JSON or (asked for with
    `format`) in media_type; 404 for an unknown or not completed job."""
    ok = {"content": {media_type: {}}, "description": f"JSON, or {format_name}"}
    not_completed = {"description": "Unknown job, or a job that is not completed"}
    return router.get(path, response_model=model, responses={404: not_completed, 200: ok})
