"""Every route's access rule, declared once: a dependency that resolves the caller and
checks the role against the rule (`ALLOWED`), answering 401 or 403.

A route takes its caller as `caller: Annotated[Caller, Depends(READ)]` (or SUBMIT, ACT,
KEYS, METRICS, ANY_KEY); the source route takes a key or its signed token
(`SOURCE`). tests/api/test_access.py walks the app's routes and fails for one under /v1
(or /metrics) that declares no rule, then calls every route with every role.

What a role may do with one job (a user: only its own; another's answers 404, like an
unknown one) is `Caller.may_read`, checked by deps.py's `job_of` once the job is read.
"""

from __future__ import annotations

import enum
import time
from typing import Annotated

from fastapi import Query, Request
from starlette.concurrency import run_in_threadpool

from forgesyte.api.auth import Caller
from forgesyte.api.context import AppContext
from forgesyte.api.deps import ContextDep, parse_job_id
from forgesyte.api.errors import Forbidden, Unauthorized
from forgesyte.api.source_tokens import TokenRefused
from forgesyte.jobs.keys import Role

NEED_KEY = "a valid API key is required (Authorization: Bearer <key>)"
TOKEN_DESCRIPTION = (
    "A token from GET /v1/video/source-url/{job_id}, for clients that cannot send the key "
    "header (a <video> element)."
)


class Access(enum.StrEnum):
    """What a route does, as far as keys are concerned; the value completes the 403's
    "a viewer key may not ..."."""

    READ = "read jobs"  # read jobs (a user: its own), pipelines, search
    SUBMIT = "submit jobs"  # make a job
    ACT = "cancel or delete jobs"  # cancel or delete a job (a user: its own)
    KEYS = "make, list or revoke keys"  # make, list and revoke keys
    METRICS = "read metrics"  # the Prometheus scrape
    ANY_KEY = "ask who it is"  # who am I


ALLOWED: dict[Access, frozenset[Role]] = {
    Access.READ: frozenset(Role),
    Access.SUBMIT: frozenset({Role.ADMIN, Role.USER}),
    Access.ACT: frozenset({Role.ADMIN, Role.USER}),
    Access.KEYS: frozenset({Role.ADMIN}),
    Access.METRICS: frozenset({Role.ADMIN, Role.VIEWER}),
    Access.ANY_KEY: frozenset(Role),
}


def presented_key(request: Request) -> str | None:
    """The key a request carries: X-API-Key, else an Authorization Bearer token."""
    supplied = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if supplied is None and authorization[:7].lower() == "bearer ":
        supplied = authorization[7:].strip()
    return supplied or None


async def resolve_caller(request: Request, context: AppContext) -> Caller | None:
    """The request's caller, or None when it has no valid key where one is needed."""
    return await run_in_threadpool(context.keys.caller, presented_key(request))


class AccessRule:
    """A route's rule: resolve the caller (401 without a valid key), check its role (403)."""

    def __init__(self, access: Access) -> None:
        self.access = access

    def check(self, caller: Caller | None) -> Caller:
        """The caller, if the rule lets it through; else Unauthorized or Forbidden."""
        if caller is None:
            raise Unauthorized(NEED_KEY)
        if caller.role not in ALLOWED[self.access]:
            raise Forbidden(f"a {caller.role.value} key may not {self.access.value}")
        return caller

    async def __call__(self, request: Request, context: ContextDep) -> Caller:
        return self.check(await resolve_caller(request, context))

    def __repr__(self) -> str:
        return f"AccessRule({self.access.value})"


class KeyOrTokenRule(AccessRule):
    """READ, or (without a key header) a signed token for the path's job: then no caller,
    the token is the job's own permission."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        context: ContextDep,
        job_id: str,
        token: Annotated[str | None, Query(description=TOKEN_DESCRIPTION)] = None,
    ) -> Caller | None:
        if token is not None and presented_key(request) is None:
            try:
                context.source_tokens.check(parse_job_id(job_id), token, time.time())
                return None
            except TokenRefused as exc:
                caller = await resolve_caller(request, context)
                if caller is None:  # a closed server: say what is wrong with the token
                    raise Unauthorized(str(exc)) from None
                return self.check(caller)
        caller = await resolve_caller(request, context)
        if caller is None:
            raise Unauthorized(
                "a valid API key or a token from /v1/video/source-url/{job_id} is required"
            )
        return self.check(caller)


READ = AccessRule(Access.READ)
SUBMIT = AccessRule(Access.SUBMIT)
ACT = AccessRule(Access.ACT)
KEYS = AccessRule(Access.KEYS)
METRICS = AccessRule(Access.METRICS)
ANY_KEY = AccessRule(Access.ANY_KEY)
SOURCE = KeyOrTokenRule(Access.READ)
