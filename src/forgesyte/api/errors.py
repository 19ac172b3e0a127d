"""Errors turned into JSON responses in one place; nothing internal leaks. The routes raise
the ApiErrors below, the submit service its refusals; STATUSES gives each its status.

A storage or database fault that reaches here unanswered is a 503 when it is transient
(`forgesyte.faults`: the dependency may answer again) and a 500 when it is not. Every 503
carries `Retry-After` (OUTAGE_RETRY_AFTER_S), so a client waits an outage out.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from forgesyte.faults import FAULT_TYPES, transient_fault
from forgesyte.submission import errors as refusal

log = logging.getLogger(__name__)

OUTAGE_RETRY_AFTER_S = 2  # what a 503 tells a client to wait: an outage may pass by then


class ApiError(Exception):
    """An error a route raises; its message is the client-facing detail."""


class BadRequest(ApiError):
    """The request is malformed or asks for something that does not exist."""


class Unauthorized(ApiError):
    """No valid API key."""


class Forbidden(ApiError):
    """The key is valid, but its role may not do this."""


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
    Forbidden: 403,
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


def answer(error: Exception) -> JSONResponse:
    """The JSON answer of an ApiError or a SubmissionRefused, with the headers its status
    calls for: WWW-Authenticate on a 401, Retry-After on a 429 and every 503."""
    status = status_of(error)
    headers = None
    if isinstance(error, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(error, refusal.RetryLater):
        headers = {"Retry-After": str(error.retry_after_s)}
    elif status == 503:
        headers = {"Retry-After": str(OUTAGE_RETRY_AFTER_S)}
    return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map typed errors to JSON responses; never show a stack trace or a path."""

    async def _refused(_request: Request, exc: Exception) -> JSONResponse:
        return answer(exc)

    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        dependency = transient_fault(exc)
        if dependency is None:
            return await _unexpected(request, exc)
        log.warning("%s %s: %s unreachable: %s", request.method, request.url.path,
                    dependency, type(exc).__name__)  # fmt: skip
        return answer(ServiceUnavailable(f"the {dependency} is not answering; try again shortly"))

    app.add_exception_handler(ApiError, _refused)
    app.add_exception_handler(refusal.SubmissionRefused, _refused)
    for fault_type in FAULT_TYPES:
        app.add_exception_handler(fault_type, _fault)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(Exception, _unexpected)
