"""Route dependencies as Annotated aliases."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

from fastapi import Depends, Request

from forgesyte.api.context import AppContext
from forgesyte.api.errors import NotFound, Unauthorized


async def get_context(request: Request) -> AppContext:
    """The application's wired context."""
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def require_api_key(request: Request, context: ContextDep) -> None:
    """When FORGESYTE_API_KEY is set, demand it as a Bearer token or an X-API-Key header."""
    expected = context.settings.api_key
    if not expected:
        return
    supplied = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if supplied is None and authorization[:7].lower() == "bearer ":
        supplied = authorization[7:].strip()
    if supplied is None or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)")


def parse_job_id(job_id: str) -> uuid.UUID:
    """A job id from the path; a malformed one is an unknown job."""
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"job {job_id} not found") from None
