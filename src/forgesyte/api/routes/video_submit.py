"""POST /v1/video/submit: the HTTP side of a submit; forgesyte.submission does the work,
filling its storage writer with api/upload.py's multipart reader."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from forgesyte.api.access import SUBMIT
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, v1_router
from forgesyte.api.schemas import JobCreatedOut
from forgesyte.api.upload import FILE_FIELD, receive_upload
from forgesyte.jobs.keys import Role
from forgesyte.jobs.options import JobOptions
from forgesyte.pipelines.catalog import DEFAULT_PIPELINE_ID
from forgesyte.submission.service import (
    CALLBACK_FIELD,
    PIPELINE_FIELD,
    SUBMIT_FIELDS,
    SubmitRequest,
)

router = v1_router()


def submit_openapi() -> dict[str, Any]:
    """The OpenAPI of a submit beyond its signature: the multipart body and query options.

    Derived from JobOptions, so a new option is documented where it is defined.
    """
    fields = {
        PIPELINE_FIELD: {"type": "string", "description": f"Default: {DEFAULT_PIPELINE_ID}"},
        **JobOptions.form_schema(),
        CALLBACK_FIELD: {
            "type": "string",
            "format": "uri",
            "description": "POSTed a signed event when the job ends (see the webhooks docs)",
        },
    }
    body = {
        "type": "object",
        "required": [FILE_FIELD],
        "properties": {FILE_FIELD: {"type": "string", "format": "binary"}, **fields},
    }
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in fields.items()
        ],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}},
    }


@router.post(
    "/video/submit",
    response_model=JobCreatedOut,
    openapi_extra=submit_openapi(),
    responses={
        400: {"description": "Not an MP4, unknown pipeline, or a bad option"},
        401: {"description": "No valid API key (when one is configured)"},
        403: {"description": "A viewer key: it may not submit"},
        408: {"description": "The upload stalled or passed FORGESYTE_UPLOAD_TIMEOUT_S"},
        409: {"description": "Idempotency-Key reused with other parameters"},
        413: {"description": "Upload over the size limit"},
        429: {
            "description": "Too many uploads under way, or the key has its cap of pending"
            " jobs (FORGESYTE_MAX_PENDING_PER_KEY); see Retry-After"
        },
        503: {"description": "Storage or database unavailable"},
        507: {"description": "Too little free disk for an upload of the size limit"},
    },
)
async def submit_video(
    request: Request,
    context: ContextDep,
    caller: Annotated[Caller, Depends(SUBMIT)],
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key and parameters make one job."),
    ] = None,
) -> JobCreatedOut:
    """Accept an MP4 (multipart field `file`) and enqueue its analysis; returns the job id.

    The pipeline and the options may come as query parameters or form fields; the query
    wins.
    """
    query = {k: v for k, v in request.query_params.items() if k in SUBMIT_FIELDS}
    settings = context.settings
    fill = partial(
        receive_upload,
        request,
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.upload_timeout_s,
    )
    cap = None if caller.role is Role.ADMIN else settings.max_pending_per_key
    submit = SubmitRequest(query, idempotency_key, owner=caller.name, pending_cap=cap)
    job_id = await context.submissions.submit(submit, fill)
    return JobCreatedOut(job_id=job_id)
