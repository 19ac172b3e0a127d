"""GET /healthz: liveness and a queue summary; never needs an API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from forgesyte import __version__
from forgesyte.api.deps import ContextDep
from forgesyte.jobs.store import JobMonitoring

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(context: ContextDep) -> dict[str, Any]:
    """Whether the server and its database answer, with job counts by state.

    `child_memory_mb` is the memory cap of each analysis child this process runs (null
    when it runs no workers).
    """
    store: JobMonitoring = context.store
    counts = await run_in_threadpool(store.count_by_status)
    return {
        "status": "ok",
        "version": __version__,
        "jobs": counts,
        "child_memory_mb": context.child_memory_mb,
    }
