"""POST /v1/video/submit: the HTTP side of a submit; api/submission.py does the work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from forgesyte.api import submission
from forgesyte.api.deps import ContextDep, require_api_key
from forgesyte.api.schemas import JobCreatedOut

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_api_key)])


@router.post(
    "/video/submit",
    response_model=JobCreatedOut,
    openapi_extra=submission.submit_openapi(),
    responses={
        400: {"description": "Not an MP4, unknown pipeline, or a bad option"},
        401: {"description": "No valid API key (when one is configured)"},
        408: {"description": "The upload stalled or passed FORGESYTE_UPLOAD_TIMEOUT_S"},
        409: {"description": "Idempotency-Key reused with other parameters"},
        413: {"description": "Upload over the size limit"},
        429: {"description": "Too many uploads under way; see Retry-After"},
        503: {"description": "Storage or database unavailable"},
        507: {"description": "Too little free disk for an upload of the size limit"},
    },
)
async def submit_video(
    request: Request,
    context: ContextDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key and parameters make one job."),
    ] = None,
) -> JobCreatedOut:
    """Accept an MP4 (multipart field `file`) and enqueue its analysis; returns the job id.

    The pipeline and the options may come as query parameters or form fields; the query
    wins.
    """
    job_id = await submission.submit_video(context, request, idempotency_key)
    return JobCreatedOut(job_id=job_id)
