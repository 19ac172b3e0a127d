"""GET /: the web page, and /static/...: its files (shipped inside the package).

The page is a thin client of the public API: it needs no key itself; every data request
it makes carries the key the user gives it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# the page loads nothing from elsewhere; previews and downloads are blob: URLs
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    """The page: pick a video and options, submit, watch the jobs, read a job's timeline."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


def static_files() -> StaticFiles:
    """The page's scripts, styles and icon, to mount at /static."""
    return StaticFiles(directory=STATIC_DIR)
