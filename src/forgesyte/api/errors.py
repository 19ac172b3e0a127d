"""Typed API errors, turned into JSON responses in one place; nothing internal leaks."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a client-facing detail."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ApiError):
    """The request is malformed or asks for something that does not exist."""

    status_code = 400


class Unauthorized(ApiError):
    """No valid API key."""

    status_code = 401


class NotFound(ApiError):
    """The job does not exist, or has no results yet."""

    status_code = 404


class RequestTimeout(ApiError):
    """The client stopped sending the request body."""

    status_code = 408


class Conflict(ApiError):
    """The idempotency key was used with other parameters."""

    status_code = 409


class PayloadTooLarge(ApiError):
    """The upload exceeds the size limit."""

    status_code = 413


class ServiceUnavailable(ApiError):
    """Storage or the database cannot take the request now."""

    status_code = 503


class TooManyRequests(ApiError):
    """Too many uploads are under way; the client may retry after `retry_after_s`."""

    status_code = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class InsufficientStorage(ApiError):
    """The server's disk has too little free space for an upload of the size limit."""

    status_code = 507


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map typed errors to JSON responses; never show a stack trace or a path."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

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
