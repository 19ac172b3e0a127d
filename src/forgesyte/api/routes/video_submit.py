"""POST /v1/video/submit: stream an MP4 to storage and enqueue a job, or refuse it cleanly."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from forgesyte.api.context import AppContext
from forgesyte.api.deps import ContextDep, require_api_key
from forgesyte.api.errors import BadRequest, Conflict, ServiceUnavailable
from forgesyte.api.schemas import JobCreatedOut
from forgesyte.api.upload import UploadAborted, receive_upload
from forgesyte.jobs.options import JobOptions
from forgesyte.jobs.store import DuplicateIdempotencyKeyError, JobRecord, NewJob
from forgesyte.pipelines.catalog import DEFAULT_PIPELINE_ID
from forgesyte.storage.base import StorageError, video_key
from forgesyte.webhooks.guard import UnsafeCallbackUrl, check_callback_url

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])
log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 256

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "pipeline_id": {"type": "string"},
                        "frame_stride": {"type": "integer", "minimum": 1},
                        "max_frames": {"type": "integer", "minimum": 1},
                        "sample_fps": {"type": "number", "exclusiveMinimum": 0},
                        "skip_unchanged": {"type": "boolean"},
                        "callback_url": {"type": "string", "format": "uri"},
                    },
                }
            }
        },
    }
}


def validate_submission(context: AppContext, raw: dict[str, Any]) -> tuple[str, JobOptions]:
    """Check the pipeline and the options; raise BadRequest naming what is wrong."""
    pipeline_id = str(raw.pop("pipeline_id", None) or DEFAULT_PIPELINE_ID)
    entry = context.catalog.get(pipeline_id)
    if entry is None:
        known = ", ".join(context.catalog.ids()) or "none"
        raise BadRequest(f"unknown pipeline {pipeline_id!r}; available pipelines: {known}")
    if not entry.available:
        raise BadRequest(f"pipeline {pipeline_id!r} is unavailable: {entry.unavailable_reason}")
    unknown = sorted(set(raw) - set(JobOptions.model_fields))
    if unknown:
        raise BadRequest(f"unknown option(s): {', '.join(unknown)}")
    try:
        options = JobOptions.model_validate({k: v for k, v in raw.items() if v != ""})
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(
                part
                for part in (
                    ".".join(str(p) for p in err["loc"]),
                    str(err["msg"]).removeprefix("Value error, "),
                )
                if part
            )
            for err in exc.errors()
        )
        raise BadRequest(f"invalid option: {problems}") from exc
    return pipeline_id, options


def check_callback(context: AppContext, callback_url: str) -> None:
    """Refuse a callback URL the server will not call (see forgesyte.webhooks.guard)."""
    if not context.settings.webhook_secret:
        raise BadRequest("callback_url needs the server's FORGESYTE_WEBHOOK_SECRET to be set")
    try:
        check_callback_url(callback_url, allow_private=context.settings.webhook_allow_private)
    except UnsafeCallbackUrl as exc:
        raise BadRequest(str(exc)) from None


def _delete_quietly(context: AppContext, key: str) -> None:
    """Remove a stored video no job will own.

    A failure is logged, not raised over the error that led here; the start-up sweep
    removes what is left.
    """
    try:
        context.storage.delete(key)
    except (StorageError, OSError) as exc:
        log.warning("could not remove %s: %s", key, exc)


def _same_request(job: JobRecord, pipeline_id: str, options: JobOptions) -> bool:
    return job.pipeline_id == pipeline_id and job.options == options.to_json()


@router.post(
    "/video/submit",
    response_model=JobCreatedOut,
    openapi_extra=_UPLOAD_BODY,
    responses={
        400: {"description": "Not an MP4, unknown pipeline, or a bad option"},
        409: {"description": "Idempotency-Key reused with other parameters"},
        413: {"description": "Upload over the size limit"},
        503: {"description": "Storage or database unavailable"},
    },
)
async def submit_video(
    request: Request,
    context: ContextDep,
    pipeline_id: Annotated[str | None, Query(description="Default: ocr_only")] = None,
    frame_stride: Annotated[str | None, Query(description="Analyse every Nth frame")] = None,
    max_frames: Annotated[str | None, Query(description="Analyse at most N frames")] = None,
    sample_fps: Annotated[
        str | None, Query(description="Analyse at most N frames per second of video")
    ] = None,
    skip_unchanged: Annotated[
        str | None, Query(description="Reuse results for frames that barely changed")
    ] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
    callback_url: Annotated[
        str | None, Query(description="POSTed a signed event when the job ends")
    ] = None,
) -> JobCreatedOut:
    """Accept an MP4 (multipart field `file`) and enqueue its analysis; returns the job id."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise BadRequest("Idempotency-Key must be 1 to 256 characters")
    query = {
        name: value
        for name, value in (
            ("pipeline_id", pipeline_id),
            ("frame_stride", frame_stride),
            ("max_frames", max_frames),
            ("sample_fps", sample_fps),
            ("skip_unchanged", skip_unchanged),
        )
        if value is not None
    }
    validate_submission(context, dict(query))  # fail fast, before reading the body
    if callback_url is not None:
        await run_in_threadpool(check_callback, context, callback_url)
    job_id = uuid.uuid4()
    key = video_key(job_id)
    try:
        writer = await run_in_threadpool(context.storage.open_writer, key)
    except StorageError as exc:
        raise ServiceUnavailable(f"storage is not accepting uploads: {exc}") from exc
    try:
        upload = await receive_upload(request, writer, context.settings.max_upload_bytes)
    except UploadAborted as exc:
        log.info("upload aborted by the client: %s", exc)
        raise BadRequest(str(exc)) from exc
    try:
        form_callback_url = upload.fields.pop("callback_url", None)
        if callback_url is None and form_callback_url:
            callback_url = form_callback_url
            await run_in_threadpool(check_callback, context, callback_url)
        chosen_pipeline, options = validate_submission(context, {**upload.fields, **query})
        if idempotency_key is not None:
            existing = await run_in_threadpool(
                context.store.get_by_idempotency_key, idempotency_key
            )
            if existing is not None:
                await run_in_threadpool(upload.writer.abort)
                if not _same_request(existing, chosen_pipeline, options):
                    raise Conflict("this Idempotency-Key was used with different parameters")
                return JobCreatedOut(job_id=existing.job_id)
        await run_in_threadpool(upload.writer.commit)
    except BaseException as exc:
        # whatever went wrong before the commit, the uploaded bytes must not stay behind
        with contextlib.suppress(Exception):
            await run_in_threadpool(upload.writer.abort)
        if isinstance(exc, StorageError):
            raise ServiceUnavailable(f"storage is not accepting uploads: {exc}") from exc
        if isinstance(exc, SQLAlchemyError):
            log.exception("could not look up the Idempotency-Key of a submit")
            raise ServiceUnavailable("the database is not answering; nothing was kept") from exc
        raise
    new_job = NewJob(
        job_id=job_id,
        pipeline_id=chosen_pipeline,
        options=options.to_json(),
        input_path=key,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
    )
    try:
        await run_in_threadpool(context.store.create, new_job)
    except DuplicateIdempotencyKeyError:
        await run_in_threadpool(_delete_quietly, context, key)
        assert idempotency_key is not None
        existing = await run_in_threadpool(context.store.get_by_idempotency_key, idempotency_key)
        if existing is None or not _same_request(existing, chosen_pipeline, options):
            raise Conflict("this Idempotency-Key was used with different parameters") from None
        log.info("job %s: a concurrent submit with its Idempotency-Key was merged", existing.job_id)
        return JobCreatedOut(job_id=existing.job_id)
    except Exception as exc:
        await run_in_threadpool(_delete_quietly, context, key)
        log.exception("could not record job %s", job_id)
        raise ServiceUnavailable("the job could not be recorded; nothing was kept") from exc
    log.info("job %s: accepted (%d bytes, pipeline %s)", job_id, upload.size, chosen_pipeline)
    return JobCreatedOut(job_id=job_id)
