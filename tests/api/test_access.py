"""Every route against every role, table-driven, from the app's own list of routes.

`test_every_route_declares_one_rule_and_has_a_case` fails when a route under /v1 (or
/metrics) declares no access rule, or has no row in ROUTES here: a new route must say who
may call it, and be tried. `test_route_by_role` then calls each route as each caller and
checks the answer: what an admin gets (allowed), what an unknown job gets (another's job,
hidden), 403 or 401.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response

from forgesyte.api.access import ALLOWED, Access, AccessRule
from forgesyte.jobs.keys import Role
from forgesyte.jobs.store import JobStore
from forgesyte.results.media import PLAYBACK_FIELD, Playback
from forgesyte.results.storing import StagedUpload
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.storage.base import results_key, timeline_key
from forgesyte.storage.local import LocalStorage
from tests.api.conftest import MakeClient

ADMIN_KEY = "access-test-admin-key-0123456789"
VIDEO = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(4096)
CALLERS = ("admin", "stored_admin", "owner", "other_user", "viewer", "no_key", "revoked", "wrong")
ALLOWED_AS = "as admin"  # the answer an admin gets
HIDDEN = "as unknown"  # the answer a job that does not exist gets: 404
UNKNOWN_JOB = re.compile(r"job [0-9a-f-]{36} not found")


@dataclass
class World:
    """A server with keys of every role, alice's completed job, and a way to call it."""

    client: TestClient
    store: JobStore
    keys: dict[str, str | None]
    job_id: uuid.UUID  # alice's, completed, with results, a timeline and a playable upload

    def headers(self, caller: str) -> dict[str, str]:
        key = self.keys[caller]
        return {} if key is None else {"Authorization": f"Bearer {key}"}

    def submit(self, caller: str = "owner") -> uuid.UUID:
        answer = self.client.post(
            "/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=self.headers(caller)
        )
        assert answer.status_code == 200, answer.text
        return uuid.UUID(answer.json()["job_id"])


def _complete(world_store: JobStore, storage: LocalStorage, job_id: uuid.UUID, tmp: Path) -> None:
    """Results and a timeline written and stored as a worker does; the upload plays."""
    folder = tmp / str(job_id)
    folder.mkdir()
    with FrameResultsWriter(folder) as writer:
        writer.start((320, 180))
        writer.add({"frame_index": 0, "timestamp_s": 0.0, "result": {}})
        writer.finish(())
    with StagedUpload(storage) as upload:
        upload.upload(writer.results_path, results_key(job_id))
        upload.upload(writer.timeline_path, timeline_key(job_id))
        upload.commit()
    while (claimed := world_store.claim_next("w", 30)) is not None and claimed.job_id != job_id:
        pass
    assert claimed is not None
    summary = {
        "frames_analysed": 1,
        "video": {"fps": 10.0, "width": 320, "height": 180},
        PLAYBACK_FIELD: Playback("h264", copy=False).to_json(),
    }
    assert world_store.complete(job_id, "w", results_key(job_id), summary)


@pytest.fixture
def world(make_client: MakeClient, store: JobStore, tmp_path: Path) -> World:
    storage = LocalStorage(tmp_path / "storage")
    client = make_client(storage=storage, api_key=ADMIN_KEY)
    keys: dict[str, str | None] = {"admin": ADMIN_KEY, "no_key": None, "wrong": "fsk_nope"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for caller, name, role in (
        ("stored_admin", "olga", "admin"),
        ("owner", "alice", "user"),
        ("other_user", "bob", "user"),
        ("viewer", "vera", "viewer"),
        ("revoked", "gone", "user"),
    ):
        made = client.post("/v1/keys", json={"name": name, "role": role}, headers=admin)
        assert made.status_code == 201, made.text
        keys[caller] = made.json()["key"]
    assert client.delete("/v1/keys/gone", headers=admin).status_code == 204
    world = World(client, store, keys, uuid.UUID(int=0))
    world.job_id = world.submit("owner")
    _complete(store, storage, world.job_id, tmp_path)
    return world


Call = Callable[[World, str, str], Response]  # (world, caller, job id) -> the answer


def _get(path: str, **params: Any) -> Call:
    return lambda w, caller, job: w.client.get(
        path.format(job=job), params=params, headers=w.headers(caller)
    )


def _fresh_job(method: str, path: str) -> Call:
    """A route that changes the job: called on a fresh pending job of alice each time."""

    def call(w: World, caller: str, job: str) -> Response:
        target = job if job != str(w.job_id) else str(w.submit("owner"))
        return w.client.request(method, path.format(job=target), headers=w.headers(caller))

    return call


def _submit(w: World, caller: str, _job: str) -> Response:
    return w.client.post(
        "/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=w.headers(caller)
    )


def _make_key(w: World, caller: str, _job: str) -> Response:
    name = f"k{uuid.uuid4().hex[:12]}"
    return w.client.post(
        "/v1/keys", json={"name": name, "role": "viewer"}, headers=w.headers(caller)
    )


def _revoke_key(w: World, caller: str, _job: str) -> Response:
    name = f"k{uuid.uuid4().hex[:12]}"
    made = w.client.post(
        "/v1/keys", json={"name": name, "role": "viewer"}, headers=w.headers("admin")
    )
    assert made.status_code == 201
    return w.client.delete(f"/v1/keys/{name}", headers=w.headers(caller))


# (method, path) -> (its rule, how to call it, whether it takes a job id)
ROUTES: dict[tuple[str, str], tuple[Access, Call, bool]] = {
    ("POST", "/v1/video/submit"): (Access.SUBMIT, _submit, False),
    ("GET", "/v1/video/status/{job_id}"): (Access.READ, _get("/v1/video/status/{job}"), True),
    ("GET", "/v1/video/results/{job_id}"): (Access.READ, _get("/v1/video/results/{job}"), True),
    ("GET", "/v1/video/timeline/{job_id}"): (Access.READ, _get("/v1/video/timeline/{job}"), True),
    ("GET", "/v1/video/preview/{job_id}"): (
        Access.READ,
        _get("/v1/video/preview/{job}", frame_index=7),  # a frame it did not analyse
        True,
    ),
    ("GET", "/v1/video/thumbnail/{job_id}"): (
        Access.READ,
        _get("/v1/video/thumbnail/{job}", kind="text", index=0),
        True,
    ),
    ("GET", "/v1/video/track-ids/{job_id}"): (
        Access.READ,
        _get("/v1/video/track-ids/{job}"),
        True,
    ),
    ("GET", "/v1/video/source/{job_id}"): (Access.READ, _get("/v1/video/source/{job}"), True),
    ("GET", "/v1/video/source-url/{job_id}"): (
        Access.READ,
        _get("/v1/video/source-url/{job}"),
        True,
    ),
    ("POST", "/v1/video/cancel/{job_id}"): (
        Access.ACT,
        _fresh_job("POST", "/v1/video/cancel/{job}"),
        True,
    ),
    ("DELETE", "/v1/video/jobs/{job_id}"): (
        Access.ACT,
        _fresh_job("DELETE", "/v1/video/jobs/{job}"),
        True,
    ),
    ("GET", "/v1/video/jobs"): (Access.READ, _get("/v1/video/jobs"), False),
    ("GET", "/v1/search"): (Access.READ, _get("/v1/search", q="score"), False),
    ("GET", "/v1/pipelines"): (Access.READ, _get("/v1/pipelines"), False),
    ("GET", "/metrics"): (Access.METRICS, _get("/metrics"), False),
    ("POST", "/v1/keys"): (Access.KEYS, _make_key, False),
    ("GET", "/v1/keys"): (Access.KEYS, _get("/v1/keys"), False),
    ("DELETE", "/v1/keys/{name}"): (Access.KEYS, _revoke_key, False),
    ("GET", "/v1/keys/me"): (Access.ANY_KEY, _get("/v1/keys/me"), False),
}
OPEN_ROUTES = {("GET", "/healthz"), ("GET", "/")}  # no key, by design


def _rules(route: APIRoute) -> list[AccessRule]:
    found: list[AccessRule] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, AccessRule):
            found.append(dependant.call)
        pending.extend(dependant.dependencies)
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, through the routers FastAPI keeps wrapped when included."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        if hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
    return found


def test_every_route_declares_one_rule_and_has_a_case(world: World) -> None:
    seen = set()
    for route in _api_routes(world.client.app.routes):  # type: ignore[attr-defined]
        for method in route.methods:
            key = (method, route.path)
            rules = _rules(route)
            if key in OPEN_ROUTES:
                assert not rules, key
                continue
            assert len(rules) == 1, f"{method} {route.path} declares {len(rules)} access rules"
            assert key in ROUTES, f"{method} {route.path} has no row in ROUTES"
            assert rules[0].access is ROUTES[key][0], key
            seen.add(key)
    assert seen == set(ROUTES)


def expected(access: Access, caller: str, takes_job: bool) -> str | int:
    """What a caller should get from a route with this rule (a job route: on alice's job)."""
    if caller in ("no_key", "revoked", "wrong"):
        return 401
    role = {
        "admin": Role.ADMIN,
        "stored_admin": Role.ADMIN,
        "owner": Role.USER,
        "other_user": Role.USER,
        "viewer": Role.VIEWER,
    }[caller]
    if role not in ALLOWED[access]:
        return 403
    if takes_job and caller == "other_user":
        return HIDDEN
    return ALLOWED_AS


def _outcome(answer: Response, admin: Response) -> str | int:
    if answer.status_code == 403:  # it says what the role may not do, in words
        assert re.fullmatch(r"a (user|viewer) key may not [a-z ,]+", answer.json()["detail"])
    if answer.status_code in (401, 403):
        return answer.status_code
    if answer.status_code == 404 and UNKNOWN_JOB.fullmatch(answer.json()["detail"]):
        return HIDDEN
    if answer.status_code == admin.status_code:
        return ALLOWED_AS
    return f"{answer.status_code}: {answer.text[:200]}"


@pytest.mark.parametrize("route", list(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_by_role(world: World, route: tuple[str, str]) -> None:
    access, call, takes_job = ROUTES[route]
    job = str(world.job_id)
    admin = call(world, "admin", job)
    # allowed: a 2xx, or (preview of a frame not analysed, the media the job has not) a 404
    # that says so: never the unknown job's
    assert _outcome(admin, admin) == ALLOWED_AS and admin.status_code in (200, 201, 204, 404)
    if takes_job:  # an unknown job's answer is what another's job must look like
        assert _outcome(call(world, "admin", str(uuid.uuid4())), admin) == HIDDEN
    table = {caller: _outcome(call(world, caller, job), admin) for caller in CALLERS}
    wanted = {caller: expected(access, caller, takes_job) for caller in CALLERS}
    assert table == wanted


def test_a_user_lists_and_finds_only_its_own_jobs(world: World) -> None:
    bobs = world.submit("other_user")
    listed = {
        caller: {
            j["job_id"]
            for j in world.client.get("/v1/video/jobs", headers=world.headers(caller)).json()[
                "jobs"
            ]
        }
        for caller in ("owner", "other_user", "viewer", "admin")
    }
    assert listed["other_user"] == {str(bobs)}
    assert str(world.job_id) in listed["owner"] and str(bobs) not in listed["owner"]
    assert {str(bobs), str(world.job_id)} <= listed["viewer"] == listed["admin"]


def test_a_link_is_issued_only_to_who_may_read_the_job_and_opens_it_alone(world: World) -> None:
    job = world.job_id
    issued = world.client.get(f"/v1/video/source-url/{job}", headers=world.headers("owner"))
    assert issued.status_code == 200
    url = issued.json()["url"]
    assert world.keys["owner"] not in url  # type: ignore[operator]
    assert world.client.get(url).status_code == 200  # no key: the token is enough
    refused = world.client.get(f"/v1/video/source-url/{job}", headers=world.headers("other_user"))
    assert refused.status_code == 404
    token = url.split("token=")[1]
    other = world.submit("other_user")
    moved = world.client.get(f"/v1/video/source/{other}", params={"token": token})
    assert moved.status_code == 401


def test_a_user_past_its_pending_cap_gets_429_and_the_admin_does_not(
    make_client: MakeClient, store: JobStore
) -> None:
    client = make_client(api_key=ADMIN_KEY, max_pending_per_key=2)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    key = client.post("/v1/keys", json={"name": "alice", "role": "user"}, headers=admin).json()
    alice = {"Authorization": f"Bearer {key['key']}"}
    for _ in range(2):
        made = client.post("/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=alice)
        assert made.status_code == 200
    refused = client.post("/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=alice)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert key["key"] not in refused.text
    for _ in range(3):
        made = client.post("/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=admin)
        assert made.status_code == 200
    assert store.count_pending("alice") == 2
    while (started := store.claim_next("w", 30)) is not None and started.owner != "alice":
        pass  # the admin's and alice's are claimed in turn: until one of alice's starts
    assert store.count_pending("alice") == 1
    again = client.post("/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=alice)
    assert again.status_code == 200


def test_an_open_server_stays_open_until_its_first_key(make_client: MakeClient) -> None:
    client = make_client()
    assert client.get("/v1/keys/me").json() == {"name": "admin", "role": "admin"}
    made = client.post("/v1/keys", json={"name": "alice", "role": "user"})
    assert made.status_code == 201
    key = made.json()["key"]
    assert key.startswith("fsk_") and len(key) >= 4 + 43
    assert client.get("/v1/video/jobs").status_code == 401
    me = client.get("/v1/keys/me", headers={"X-API-Key": key})
    assert me.json() == {"name": "alice", "role": "user"}


def test_key_names_are_checked_and_taken_for_good(world: World) -> None:
    admin = world.headers("admin")
    for body in (
        {"name": "Bad Name", "role": "user"},
        {"name": "x" * 65, "role": "user"},
        {"name": "ok", "role": "owner"},
    ):
        assert world.client.post("/v1/keys", json=body, headers=admin).status_code == 400
    for name in ("alice", "gone", "admin"):
        taken = world.client.post("/v1/keys", json={"name": name, "role": "user"}, headers=admin)
        assert taken.status_code == 409, name
    listed = world.client.get("/v1/keys", headers=admin).json()["keys"]
    assert {k["name"] for k in listed} == {"olga", "alice", "bob", "vera"}
    assert all(set(k) == {"name", "role", "created_at", "last_used_at"} for k in listed)
    alice = next(k for k in listed if k["name"] == "alice")
    assert alice["last_used_at"] is not None  # used to submit
    assert world.client.delete("/v1/keys/nobody", headers=admin).status_code == 404


def test_a_refusal_says_what_the_role_may_not_do(world: World) -> None:
    viewer, user = world.headers("viewer"), world.headers("owner")
    refused = world.client.delete(f"/v1/video/jobs/{world.job_id}", headers=viewer)
    assert refused.json()["detail"] == "a viewer key may not cancel or delete jobs"
    refused = world.client.get("/v1/keys", headers=user)
    assert refused.json()["detail"] == "a user key may not make, list or revoke keys"
