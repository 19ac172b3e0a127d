"""Errors turned into JSON responses in one place; nothing internal leaks. The routes raise
the ApiErrors below, the submit service its refusals; STATUSES gives each its status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from forgesyte.submission import errors as refusal

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a route raises; its message is the client-facing detail."""


class BadRequest(ApiError):
    """The request is malformed or asks for something that does not exist."""


class Unauthorized(ApiError):
    """No valid API key."""


class NotFound(ApiError):
    """The job does not exist, or has no results yet."""


class Conflict(ApiError):
    """The job's state does not allow it: cancelling an ended job, deleting a running one."""


class ServiceUnavailable(ApiError):
    """Storage or the database cannot take the request now."""


STATUSES: dict[type[Exception], int] = {
    BadRequest: 400,
    refusal.InvalidSubmission: 400,
    Unauthorized: 401,  # answered with WWW-Authenticate: Bearer
    NotFound: 404,
    refusal.UploadStalled: 408,
    Conflict: 409,
    refusal.IdempotencyConflict: 409,
    refusal.UploadTooLarge: 413,
    refusal.RetryLater: 429,  # answered with Retry-After
    ServiceUnavailable: 503,
    refusal.StorageRefused: 503,
    refusal.CouldNotRecord: 503,
    refusal.NotEnoughSpace: 507,
}


def status_of(error: Exception) -> int:
    """The status of an ApiError or a SubmissionRefused: that of its nearest type in STATUSES."""
    return next((STATUSES[kind] for kind in type(error).__mro__ if kind in STATUSES), 500)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map typed errors to JSON responses; never show a stack trace or a path."""

    async def _refused(_request: Request, exc: Exception) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, refusal.RetryLater):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=headers)

    app.add_exception_handler(ApiError, _refused)
    app.add_exception_handler(refusal.SubmissionRefused, _refused)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
