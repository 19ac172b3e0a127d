"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from forgesyte import __version__
from forgesyte.api import deadline
from forgesyte.api.context import AppContext
from forgesyte.api.errors import OUTAGE_RETRY_AFTER_S, install_error_handlers
from forgesyte.api.routes import (
    health,
    job_results,
    job_status,
    jobs,
    keys,
    media,
    metrics,
    page,
    pipelines,
    preview,
    search,
    source,
    timeline,
    video_submit,
)


def create_app(context: AppContext) -> FastAPI:
    """Build the API around an already wired context (see forgesyte.runtime)."""
    app = FastAPI(
        title="ForgeSyte",
        version=__version__,
        description=(
            "Self-hosted video analysis: submit an MP4, poll the job, fetch per-frame results."
        ),
    )
    app.state.context = context  # the one thing kept on the app: see api/deps.py
    context.store.add_change_listener(context.status_cache.on_change)
    install_error_handlers(app)
    # every answer starts within its deadline (a submit's: its upload's, and then some);
    # added before CORS, so that CORS headers go on its 503 too
    upload_deadline_s = context.settings.upload_timeout_s + deadline.REQUEST_DEADLINE_S
    app.add_middleware(
        deadline.RequestDeadline,
        deadline_s=deadline.REQUEST_DEADLINE_S,
        longer={
            route.path: upload_deadline_s
            for route in video_submit.router.routes
            if isinstance(route, APIRoute)
        },
        retry_after_s=OUTAGE_RETRY_AFTER_S,
    )
    if context.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=context.settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Idempotency-Key", "Content-Type"],
        )
    app.include_router(health.router)
    app.include_router(video_submit.router)
    app.include_router(job_status.router)
    app.include_router(job_results.router)
    app.include_router(timeline.router)
    app.include_router(preview.router)
    app.include_router(source.router)
    app.include_router(media.router)
    app.include_router(pipelines.router)
    app.include_router(jobs.router)
    app.include_router(search.router)
    app.include_router(keys.router)
    app.include_router(metrics.router)
    app.include_router(page.router)
    app.mount("/static", page.static_files(), name="static")
    return app
