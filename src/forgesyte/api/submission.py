"""Submitting a video: validate, stream to storage, commit or abort, create the job row.

The route in api/routes/video_submit.py only adapts HTTP to ``submit_video``. The steps:

1. validate the Idempotency-Key and the query's pipeline and options (before the body);
2. stream the file part to a storage writer (api/upload.py);
3. validate the merged form and query fields, then commit the video, or abort it on any
   failure (the one ``except BaseException``: the uploaded bytes must not stay behind);
4. create the job row; if the Idempotency-Key is taken (a retry, or a concurrent submit),
   delete the new video and answer from the one idempotency lookup: the existing job's
   id for the same pipeline and options, else 409.

Every error is an ApiError with its status: 400, 408, 409, 413, 429, 503 or 507.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from forgesyte.api.context import AppContext
from forgesyte.api.errors import (
    BadRequest,
    Conflict,
    InsufficientStorage,
    ServiceUnavailable,
    TooManyRequests,
)
from forgesyte.api.upload import FILE_FIELD, UploadAborted, receive_upload
from forgesyte.jobs.options import InvalidOptions, JobOptions
from forgesyte.jobs.store import DuplicateIdempotencyKeyError, NewJob
from forgesyte.pipelines.catalog import DEFAULT_PIPELINE_ID
from forgesyte.storage import StorageError, StorageWriter
from forgesyte.storage.base import video_key
from forgesyte.webhooks.guard import UnsafeCallbackUrl, check_callback_url

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 256
UPLOAD_RETRY_AFTER_S = 5  # the Retry-After of a 429 when every upload slot is taken
PIPELINE_FIELD = "pipeline_id"
CALLBACK_FIELD = "callback_url"  # where to POST a signed event when the job ends
# every form or query field a submit reads besides the file: the pipeline, each option
# and the callback URL
SUBMIT_FIELDS = (PIPELINE_FIELD, *JobOptions.model_fields, CALLBACK_FIELD)


def submit_openapi() -> dict[str, Any]:
    """The OpenAPI of a submit beyond its signature: the multipart body and query options.

    Derived from JobOptions, so a new option is documented where it is defined.
    """
    pipeline = {"type": "string", "description": f"Default: {DEFAULT_PIPELINE_ID}"}
    options = {
        **JobOptions.form_schema(),
        CALLBACK_FIELD: {
            "type": "string",
            "format": "uri",
            "description": "POSTed a signed event when the job ends (see the webhooks docs)",
        },
    }
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in {PIPELINE_FIELD: pipeline, **options}.items()
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [FILE_FIELD],
                        "properties": {
                            FILE_FIELD: {"type": "string", "format": "binary"},
                            PIPELINE_FIELD: pipeline,
                            **options,
                        },
                    }
                }
            },
        },
    }


def validate_submission(context: AppContext, fields: Mapping[str, str]) -> tuple[str, JobOptions]:
    """The pipeline and options the fields ask for; BadRequest naming what is wrong."""
    options_fields = dict(fields)
    options_fields.pop(CALLBACK_FIELD, None)  # not an option: see check_callback
    pipeline_id = options_fields.pop(PIPELINE_FIELD, "") or DEFAULT_PIPELINE_ID
    entry = context.catalog.get(pipeline_id)
    if entry is None:
        known = ", ".join(context.catalog.ids()) or "none"
        raise BadRequest(f"unknown pipeline {pipeline_id!r}; available pipelines: {known}")
    if not entry.available:
        raise BadRequest(f"pipeline {pipeline_id!r} is unavailable: {entry.unavailable_reason}")
    try:
        return pipeline_id, JobOptions.from_form(options_fields)
    except InvalidOptions as exc:
        raise BadRequest(str(exc)) from None


def check_callback(context: AppContext, callback_url: str) -> None:
    """Refuse a callback URL the server will not call (see forgesyte.webhooks.guard)."""
    if not context.settings.webhook_secret:
        raise BadRequest("callback_url needs the server's FORGESYTE_WEBHOOK_SECRET to be set")
    try:
        check_callback_url(callback_url, allow_private=context.settings.webhook_allow_private)
    except UnsafeCallbackUrl as exc:
        raise BadRequest(str(exc)) from None


async def submit_video(
    context: AppContext, request: Request, idempotency_key: str | None
) -> uuid.UUID:
    """Store the request's video and enqueue its job; the job id (an earlier one on a retry).

    Options and the pipeline come from the query and the form fields (the query wins).
    Raises BadRequest, Conflict, PayloadTooLarge, RequestTimeout or ServiceUnavailable;
    on any error nothing is kept.
    """
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    query = {k: v for k, v in request.query_params.items() if k in SUBMIT_FIELDS}
    validate_submission(context, query)  # fail fast, before reading the body
    if query.get(CALLBACK_FIELD):
        await run_in_threadpool(check_callback, context, query[CALLBACK_FIELD])
    await run_in_threadpool(_check_free_disk, context)
    job_id = uuid.uuid4()
    key = video_key(job_id)
    with _upload_slot(request, context.settings.max_concurrent_uploads):
        try:
            writer = await run_in_threadpool(context.storage.open_writer, key)
            pipeline_id, options, size, callback_url = await _store_video(
                context, request, writer, query
            )
        except StorageError as exc:
            log.warning("job %s: storage refused the upload: %s", job_id, exc.reason)
            raise ServiceUnavailable("storage is not accepting uploads; nothing was kept") from exc
        except UploadAborted as exc:
            log.info("job %s: upload aborted by the client: %s", job_id, exc)
            raise BadRequest(str(exc)) from exc
    new_job = NewJob(
        job_id=job_id,
        pipeline_id=pipeline_id,
        options=options.to_json(),
        input_path=key,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
    )
    try:
        await run_in_threadpool(context.store.create, new_job)
    except DuplicateIdempotencyKeyError:
        await run_in_threadpool(_delete_quietly, context, key)
        assert idempotency_key is not None  # only a key can be a duplicate
        return await _earlier_job(context, idempotency_key, pipeline_id, options)
    except Exception as exc:
        await run_in_threadpool(_delete_quietly, context, key)
        log.exception("could not record job %s", job_id)
        raise ServiceUnavailable("the job could not be recorded; nothing was kept") from exc
    log.info("job %s: accepted (%d bytes, pipeline %s)", job_id, size, pipeline_id)
    return job_id


class _UploadSlots:
    """How many uploads this process is receiving; touched only on the event loop."""

    def __init__(self) -> None:
        self.in_use = 0


@contextlib.contextmanager
def _upload_slot(request: Request, limit: int) -> Iterator[None]:
    """Hold one of `limit` upload slots while the body streams in; 429 when none is free."""
    slots: _UploadSlots | None = getattr(request.app.state, "upload_slots", None)
    if slots is None:
        slots = _UploadSlots()
        request.app.state.upload_slots = slots
    if slots.in_use >= limit:
        raise TooManyRequests(
            f"{limit} uploads are already under way; retry in {UPLOAD_RETRY_AFTER_S} s",
            UPLOAD_RETRY_AFTER_S,
        )
    slots.in_use += 1
    try:
        yield
    finally:
        slots.in_use -= 1


def _check_free_disk(context: AppContext) -> None:
    """InsufficientStorage when local storage has less free space than the size limit.

    Only storage on the local disk is checked (it says how much is free); an upload to
    S3 streams to the bucket and does not use the local disk.
    """
    free_bytes = getattr(context.storage, "free_bytes", None)
    free = free_bytes() if callable(free_bytes) else None
    needed = context.settings.max_upload_bytes
    if free is not None and free < needed:
        log.warning("refused an upload: %d bytes free in storage, %d needed", free, needed)
        raise InsufficientStorage("the server has too little free disk space to take an upload now")


async def _store_video(
    context: AppContext, request: Request, writer: StorageWriter, query: Mapping[str, str]
) -> tuple[str, JobOptions, int, str | None]:
    """Stream the body into writer, validate all fields, commit; abort on anything else.

    Returns the pipeline, the options, the size and the callback URL (None without one).
    """
    try:
        upload = await receive_upload(
            request,
            writer,
            context.settings.max_upload_bytes,
            context.settings.upload_timeout_s,
        )
        fields = {**upload.fields, **query}
        pipeline_id, options = validate_submission(context, fields)
        callback_url = fields.get(CALLBACK_FIELD) or None
        if callback_url is not None and CALLBACK_FIELD not in query:
            await run_in_threadpool(check_callback, context, callback_url)
        await run_in_threadpool(writer.commit)
    except BaseException:
        # whatever went wrong before the commit (a cancelled request too), the uploaded
        # bytes must not stay behind; abort() is harmless on an aborted writer
        with contextlib.suppress(Exception):
            await run_in_threadpool(writer.abort)
        raise
    return pipeline_id, options, upload.size, callback_url


async def _earlier_job(
    context: AppContext, idempotency_key: str, pipeline_id: str, options: JobOptions
) -> uuid.UUID:
    """The job already holding this Idempotency-Key, if it asked for the same analysis."""
    try:
        earlier = await run_in_threadpool(context.store.get_by_idempotency_key, idempotency_key)
    except SQLAlchemyError as exc:
        log.exception("could not look up the Idempotency-Key of a submit")
        raise ServiceUnavailable("the database is not answering; nothing was kept") from exc
    if earlier is None or not _same_analysis(
        earlier.pipeline_id, earlier.options, pipeline_id, options
    ):
        raise Conflict("this Idempotency-Key was used with different parameters")
    log.info("job %s: a submit with its Idempotency-Key was answered with it", earlier.job_id)
    return earlier.job_id


def _same_analysis(
    stored_pipeline: str, stored: Mapping[str, Any], pipeline_id: str, options: JobOptions
) -> bool:
    """Whether a stored job asked for this pipeline and these options."""
    try:
        return stored_pipeline == pipeline_id and JobOptions.from_stored(stored) == options
    except InvalidOptions:
        return False


def _delete_quietly(context: AppContext, key: str) -> None:
    """Remove a stored video no job will own.

    A failure is logged, not raised over the error that led here; the start-up sweep
    removes what is left.
    """
    try:
        context.storage.delete(key)
    except (StorageError, OSError) as exc:
        log.warning("could not remove %s: %s", key, exc)
