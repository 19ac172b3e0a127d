"""GET /healthz: whether the server, its database and its storage answer, with a queue
summary; never needs an API key, so it answers from a cache (api/health.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from forgesyte.api.deps import ContextDep
from forgesyte.api.errors import OUTAGE_RETRY_AFTER_S

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    responses={503: {"description": "The database or storage does not answer (see checks)"}},
)
async def healthz(context: ContextDep) -> Response:
    """Whether the database and storage answer (`checks`), with job counts by state.

    200 with `status` "ok" when both answer; 503 otherwise, with `status` "degraded"
    (storage down: job states can still be read) or "unavailable" (the database down:
    `jobs` is null), so a load balancer can act. Checked at most once a second per
    process. `child_memory_mb` is the memory cap of each analysis child this process
    runs (null when it runs no workers).
    """
    answer = await context.health.answer()
    headers = None if answer.status_code == 200 else {"Retry-After": str(OUTAGE_RETRY_AFTER_S)}
    return Response(answer.body, answer.status_code, headers, media_type="application/json")
