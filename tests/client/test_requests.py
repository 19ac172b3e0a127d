"""The client's requests against scripted loopback servers: retries and their bounds, errors,
one kept connection, search's pages, a wait's timeout."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from forgesyte.client import (
    ApiError,
    Backoff,
    Client,
    JobStatus,
    SearchMatch,
    ServerUnreachable,
    WaitTimeout,
    transport,
)
from forgesyte.client import client as client_module
from tests.client.loopback import Reply, Seen, canned

QUICK = Backoff(first_s=0.01, factor=1.0, max_s=0.01)
JOB = "8c9b7598-c23f-4d30-af09-dc788ea9a1d3"


def status_body(status: str = "running", progress: float = 40.0, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": JOB,
        "status": status,
        "progress": progress,
        "created_at": "2026-11-26T11:25:19.715030Z",
        "updated_at": "2026-11-26T11:25:22.100913Z",
        **extra,
    }


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the client's retries take, recorded instead of slept."""
    taken: list[float] = []

    class Clock:
        @staticmethod
        def sleep(seconds: float) -> None:
            taken.append(seconds)

    monkeypatch.setattr(transport, "time", Clock)
    return taken


def test_a_read_is_retried_after_503_and_429_honouring_retry_after_capped(
    pauses: list[float],
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    answers = iter(
        [
            Reply(503, {"detail": "database unavailable"}, {"Retry-After": "3"}),
            Reply(429, {"detail": "busy"}, {"Retry-After": "3600"}),  # cut to 30 s
            Reply(503, {"detail": "database unavailable"}, {"Retry-After": later}),
            Reply(503, {"detail": "database unavailable"}),  # no Retry-After: the backoff
            Reply(200, status_body()),
        ]
    )
    with canned(lambda _: next(answers)) as (url, script), Client(url) as client:
        status = client.job(JOB).status()
    assert status.status == "running" and len(script.seen) == 5
    assert pauses[:2] == [3.0, transport.MAX_RETRY_AFTER_S]
    assert 18 < pauses[2] <= 20  # an HTTP date: the seconds until then
    assert pauses[3] == transport.RETRY_BACKOFF.first_s


def test_retries_are_bounded_and_the_last_answer_is_the_error(pauses: list[float]) -> None:
    busy = Reply(503, {"detail": "storage unavailable"})
    with (
        canned(lambda _: busy) as (url, script),
        Client(url, attempts=3) as client,
        pytest.raises(ApiError) as failed,
    ):
        client.job(JOB).timeline()
    assert (failed.value.status_code, failed.value.detail) == (503, "storage unavailable")
    assert len(script.seen) == 3 and pauses == [0.2, 0.4]  # the backoff doubles


def test_refusals_are_not_retried_and_changes_are_sent_once(pauses: list[float]) -> None:
    def reply(request: Seen) -> Reply:
        if request.method == "GET":
            return Reply(404, {"detail": f"job {JOB} not found"})
        return Reply(503, {"detail": "database unavailable"})

    with canned(reply) as (url, script), Client(url) as client:
        with pytest.raises(ApiError, match=r"HTTP 404: job .* not found"):
            client.job(JOB).status()
        with pytest.raises(ApiError) as cancel:
            client.job(JOB).cancel()
        with pytest.raises(ApiError):
            client.job(JOB).delete()
    assert cancel.value.status_code == 503
    assert [(r.method, r.path) for r in script.seen] == [
        ("GET", f"/v1/video/status/{JOB}"),
        ("POST", f"/v1/video/cancel/{JOB}"),
        ("DELETE", f"/v1/video/jobs/{JOB}"),
    ]
    assert pauses == []


def test_a_server_that_is_not_there_is_unreachable_after_the_attempts() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with (
        Client(f"http://127.0.0.1:{port}", retry=QUICK, attempts=3) as client,
        pytest.raises(ServerUnreachable, match=f"cannot reach http://127.0.0.1:{port}: "),
    ):
        client.health()
    assert time.monotonic() - started < 2


def test_one_connection_is_kept_and_the_key_goes_as_a_bearer_token() -> None:
    with canned(lambda _: Reply(200, status_body())) as (url, script):
        with Client(url, "s3cret") as client:
            for _ in range(3):
                client.job(JOB).status()
        with Client(url) as keyless:
            keyless.job(JOB).status()
    assert len({r.client_port for r in script.seen[:3]}) == 1  # kept alive
    assert [r.headers.get("Authorization") for r in script.seen] == ["Bearer s3cret"] * 3 + [None]
    assert repr(client) == f"Client({url!r})"  # never the key


def test_a_connection_the_server_closed_meanwhile_is_replaced_unnoticed(
    pauses: list[float],
) -> None:
    closing = Reply(200, status_body(), {"Connection": "close"})
    with canned(lambda _: closing) as (url, script), Client(url) as client:
        assert client.job(JOB).status().progress == 40.0
        assert client.job(JOB).status().progress == 40.0
    assert len({r.client_port for r in script.seen}) == 2 and pauses == []


def test_the_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with canned(lambda _: Reply(200, {"status": "ok"})) as (url, script):
        monkeypatch.setenv("FORGESYTE_URL", url + "/")
        monkeypatch.setenv("FORGESYTE_API_KEY", "from-env")
        with Client() as client:
            assert client.url == url and client.health() == {"status": "ok"}
        with Client(api_key="") as client:  # an explicit empty key: none
            client.health()
    assert [r.headers.get("Authorization") for r in script.seen] == ["Bearer from-env", None]
    monkeypatch.delenv("FORGESYTE_URL")
    assert Client().url == client_module.DEFAULT_URL


def test_search_pages_lazily_with_its_parameters_and_typed_matches() -> None:
    pages = {
        None: {
            "matches": [
                {
                    "job_id": JOB,
                    "filename": "match.mp4",
                    "kind": "text",
                    "text": "PLATFORM 9",
                    "start_s": 2.0,
                    "end_s": 5.5,
                    "confidence": 0.97,
                    "score": 1.0,
                    "a_field_of_a_newer_server": [1, 2],
                },
                {
                    "job_id": JOB,
                    "filename": "match.mp4",
                    "kind": "text",
                    "text": "PLATF0RM 9",
                    "start_s": 8.0,
                    "end_s": 9.0,
                    "confidence": 0.81,
                    "score": 0.9,
                },
            ],
            "next_cursor": "c2",
        },
        "c2": {
            "matches": [
                {
                    "job_id": "other",
                    "filename": None,
                    "kind": "text",
                    "text": "platform9",
                    "start_s": 0.0,
                    "end_s": 1.0,
                    "confidence": 0.5,
                    "score": 0.8,
                }
            ],
            "next_cursor": None,
        },
    }

    def reply(request: Seen) -> Reply:
        return Reply(200, pages[request.query.get("cursor")])

    with canned(reply) as (url, script), Client(url) as client:
        found = client.search("platform 9", with_="person", page_size=2)
        first = next(found)
        assert len(script.seen) == 1  # the second page is not fetched yet
        rest = list(found)
    assert [m.text for m in [first, *rest]] == ["PLATFORM 9", "PLATF0RM 9", "platform9"]
    assert first == SearchMatch(
        job_id=JOB,
        filename="match.mp4",
        kind="text",
        text="PLATFORM 9",
        start_s=2.0,
        end_s=5.5,
        confidence=0.97,
        score=1.0,
    )
    assert first.class_name is None and first.raw["a_field_of_a_newer_server"] == [1, 2]
    assert [r.path for r in script.seen] == ["/v1/search", "/v1/search"]
    assert script.seen[0].query == {
        "q": "platform 9",
        "kind": "text",
        "with": "person",
        "limit": "2",
    }
    assert script.seen[1].query["cursor"] == "c2"


def test_an_object_search_and_a_refused_one() -> None:
    track = {
        "job_id": JOB,
        "filename": "a.mp4",
        "kind": "object",
        "class_name": "person",
        "start_s": 1.0,
        "end_s": 4.0,
        "confidence": 0.9,
        "score": 1.0,
    }

    def reply(request: Seen) -> Reply:
        if len(request.query["q"]) < 2:
            return Reply(400, {"detail": "q: 2 to 200 characters"})
        return Reply(200, {"matches": [track], "next_cursor": None})

    with canned(reply) as (url, script), Client(url) as client:
        (match,) = client.search("person", kind="object")
        with pytest.raises(ApiError) as refused:
            list(client.search("p"))
    assert match.class_name == "person" and match.text is None
    assert script.seen[0].query == {"q": "person", "kind": "object", "limit": "100"}
    assert (refused.value.status_code, refused.value.detail) == (400, "q: 2 to 200 characters")


def test_wait_stops_at_its_timeout_with_the_last_status() -> None:
    running = Reply(200, status_body("running", 12.5))
    with canned(lambda _: running) as (url, script), Client(url) as client:
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as timed_out:
            client.job(JOB).wait(timeout=0.5, poll=Backoff(0.05, 1.0, 0.05))
        waited = time.monotonic() - started
    assert 0.5 <= waited < 1.5
    assert isinstance(timed_out.value, TimeoutError)
    assert timed_out.value.last.progress == 12.5
    assert str(timed_out.value) == f"job {JOB} did not end within 0.5 s (last seen running, 12%)"
    assert len(script.seen) >= 5


def test_wait_reports_each_status_and_ends_with_the_final_one() -> None:
    statuses = iter(
        [
            status_body("pending", 0.0),
            status_body("running", 50.0),
            status_body("failed", 50.0, error_message="video could not be decoded: x"),
        ]
    )
    seen: list[JobStatus] = []
    with canned(lambda _: Reply(200, next(statuses))) as (url, _script), Client(url) as client:
        final = client.job(JOB).wait(on_progress=seen.append, poll=QUICK)
    assert [s.status for s in seen] == ["pending", "running", "failed"]
    assert final is seen[-1] and final.finished
    assert final.error_message == "video could not be decoded: x"


def test_waits_poll_sooner_then_less_often() -> None:
    delays = list(itertools.islice(client_module.POLL_BACKOFF.delays(), 9))
    assert delays[0] == 0.2 and delays[-1] == 2.0
    assert delays == sorted(delays) and len(set(delays)) > 5


def test_a_client_serves_one_thread_at_a_time() -> None:
    inside = threading.Event()
    release = threading.Event()

    def reply(request: Seen) -> Reply:
        inside.set()
        release.wait(10)
        return Reply(200, status_body())

    with canned(reply) as (url, _script), Client(url) as client:
        first = threading.Thread(target=client.job(JOB).status)
        first.start()
        assert inside.wait(10)
        try:
            with pytest.raises(RuntimeError, match="one Client per thread"):
                client.job(JOB).status()
        finally:
            release.set()
            first.join(10)
        assert client.job(JOB).status().job_id == JOB  # free again
