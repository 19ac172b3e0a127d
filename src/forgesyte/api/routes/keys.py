"""The API keys: POST /v1/keys (the key shown this once), GET /v1/keys, DELETE
/v1/keys/{name} (admin keys only), and GET /v1/keys/me (any key: who am I, for the page).

The key is made here (api/auth.py) and only its SHA-256 digest reaches the store; the
answer to POST is the one place its text ever appears. A revoked key's name stays taken
(its jobs keep it as their owner), so POST answers 409 for it as for a live one; `admin`
is taken by FORGESYTE_API_KEY.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from forgesyte.api.access import ANY_KEY, KEYS
from forgesyte.api.auth import Caller, key_digest, new_key
from forgesyte.api.deps import ContextDep, v1_router
from forgesyte.api.errors import Conflict, NotFound
from forgesyte.jobs.keys import ADMIN_NAME, KEY_NAME_PATTERN, DuplicateKeyName, KeyRecord, Role

router = v1_router("keys")


class KeyIn(BaseModel):
    """A key to make: its name (what its jobs are owned by) and role."""

    name: str = Field(pattern=f"^{KEY_NAME_PATTERN.pattern}$", description="[a-z0-9_-]{1,64}")
    role: Literal["admin", "user", "viewer"]


class KeyOut(BaseModel):
    """A key as listed: never its text."""

    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: KeyRecord) -> KeyOut:
        """The listed form of a stored key."""
        return cls(
            name=key.name,
            role=key.role.value,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
        )


class KeyCreatedOut(BaseModel):
    """A key just made, with its text: shown this once, stored only as its digest."""

    name: str
    role: str
    key: str = Field(description="The key itself; it is not shown again.")
    created_at: datetime


class KeysOut(BaseModel):
    """Every live key."""

    keys: list[KeyOut]


class CallerOut(BaseModel):
    """Who the request's key is: its name and role (the page hides what a role may not do)."""

    name: str
    role: str


@router.post(
    "/keys",
    status_code=201,
    response_model=KeyCreatedOut,
    responses={
        400: {"description": "A bad name or role"},
        403: {"description": "Not an admin key"},
        409: {"description": "The name is taken (by a live or revoked key, or `admin`)"},
    },
)
async def create_key(
    body: KeyIn, context: ContextDep, caller: Annotated[Caller, Depends(KEYS)]
) -> KeyCreatedOut:
    """Make a key; its text is in this answer only."""
    if body.name == ADMIN_NAME:
        raise Conflict(f"key name {ADMIN_NAME} is taken (FORGESYTE_API_KEY acts as it)")
    key = new_key()
    try:
        stored = await run_in_threadpool(
            context.store.create_key, body.name, Role(body.role), key_digest(key)
        )
    except DuplicateKeyName:
        raise Conflict(f"key name {body.name} is taken (names of revoked keys too)") from None
    context.keys.forget()  # the first key closes an open server: at once in this process
    return KeyCreatedOut(
        name=stored.name, role=stored.role.value, key=key, created_at=stored.created_at
    )


@router.get("/keys", response_model=KeysOut, responses={403: {"description": "Not an admin key"}})
async def list_keys(context: ContextDep, caller: Annotated[Caller, Depends(KEYS)]) -> KeysOut:
    """Every live key, by name: name, role, when made and last used (to the minute)."""
    keys = await run_in_threadpool(context.store.list_keys)
    return KeysOut(keys=[KeyOut.of(key) for key in keys])


@router.get("/keys/me", response_model=CallerOut)
async def who_am_i(caller: Annotated[Caller, Depends(ANY_KEY)]) -> CallerOut:
    """The name and role the request's key acts as (an open server's callers: admin)."""
    return CallerOut(name=caller.name, role=caller.role.value)


@router.delete(
    "/keys/{name}",
    status_code=204,
    response_class=Response,
    responses={403: {"description": "Not an admin key"}, 404: {"description": "No such key"}},
)
async def revoke_key(
    name: str, context: ContextDep, caller: Annotated[Caller, Depends(KEYS)]
) -> Response:
    """Revoke a key: refused within 2 s by every API process. Its jobs stay (an admin and
    viewers still see them); its name is never given to another key."""
    if not await run_in_threadpool(context.store.revoke_key, name):
        raise NotFound(f"no key named {name}")
    context.keys.forget()
    return Response(status_code=204)
