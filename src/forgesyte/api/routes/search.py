"""GET /v1/search: moments across every completed job, text (OCR errors forgiven) or objects."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import (
    ContextDep,
    cursor_errors,
    decode_cursor,
    encode_cursor,
    page_size,
    v1_router,
)
from forgesyte.api.errors import BadRequest
from forgesyte.api.schemas import SearchOut
from forgesyte.search.values import MAX_LIMIT, InvalidSearch, SearchPosition, SearchQuery

router = v1_router("search")

DEFAULT_PAGE_SIZE = 20


def _fingerprint(query: SearchQuery) -> str:
    """What a cursor carries of its search, so it cannot page another one."""
    asked = f"{query.kind.value}\n{query.folded}\n{query.with_class or ''}"
    return hashlib.sha256(asked.encode()).hexdigest()[:16]


def position_cursor(query: SearchQuery, position: SearchPosition) -> str:
    """An opaque cursor naming a page's last match, for this search only."""
    return encode_cursor(
        [
            position.distance,
            position.created_at.isoformat(),
            str(position.job_id),
            position.start_s,
            position.seq,
            _fingerprint(query),
        ]
    )


def cursor_position(query: SearchQuery, cursor: str) -> SearchPosition:
    """The position a cursor of this search names; BadRequest for anything else."""
    values = decode_cursor(cursor)
    with cursor_errors():
        distance, created_at, job_id, start_s, seq, fingerprint = values
        if fingerprint != _fingerprint(query):
            raise BadRequest("cursor: it pages another search (q, kind or with differ)")
        position = SearchPosition(
            distance, datetime.fromisoformat(created_at), uuid.UUID(job_id), start_s, seq
        )
        whole = (type(position.distance), type(position.seq))
        if whole != (int, int) or min(position.distance, position.seq) < 0:
            raise ValueError("not a place in an answer")
        if not isinstance(start_s, int | float) or not math.isfinite(start_s):
            raise ValueError("not a time")
        if position.created_at.tzinfo is None:
            raise ValueError("no time zone")
        return dataclasses.replace(position, start_s=float(start_s))


@router.get(
    "/search",
    response_model=SearchOut,
    responses={400: {"description": "Bad q, kind, with, limit or cursor"}},
)
async def search(
    context: ContextDep,
    caller: Annotated[Caller, Depends(READ)],
    q: Annotated[
        str | None,
        Query(
            description="Text (2-200 characters; case, spaces and OCR slips forgiven), or a"
            " class name with kind=object"
        ),
    ] = None,
    kind: Annotated[
        str | None, Query(description="text (default): text segments; object: object tracks")
    ] = None,
    with_class: Annotated[
        str | None,
        Query(
            alias="with",
            description="kind=text only: keep segments that overlap in time a track of this"
            " class in the same job",
        ),
    ] = None,
    limit: Annotated[str | None, Query(description="Matches per page, 1-100 (default 20)")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    """Moments of every completed job that match, best first (score, then newest job, then
    start_s); follow next_cursor (null on the last page)."""
    size = page_size(limit, DEFAULT_PAGE_SIZE, MAX_LIMIT)
    try:
        query = SearchQuery.parse(q, kind, with_class, size + 1)
    except InvalidSearch as exc:
        raise BadRequest(str(exc)) from None
    if cursor is not None:
        query = dataclasses.replace(query, after=cursor_position(query, cursor))
    query = dataclasses.replace(query, owner=caller.owner_filter)
    hits = await run_in_threadpool(context.store.search, query)
    page = hits[:size]
    more = len(hits) > size
    return JSONResponse(
        {
            "matches": [hit.to_json() for hit in page],
            "next_cursor": position_cursor(query, page[-1].position) if more else None,
        }
    )
