"""Webhook delivery to a real receiver on loopback: signed, retried with backoff after
500s, never redirected, abandoned after the last attempt; and callback_url at submit."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobStore, NewJob, WebhookDelivery
from forgesyte.webhooks.sender import WebhookSender, retry_delay_s
from tests.api.conftest import MakeClient
from tests.webhooks.receiver import Receiver, running_receiver
from tests.webhooks.test_signing_and_guard import SECRET, documented_verify

LEASE_S = 30.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture(params=["memory", "duckdb", "postgresql"])
def store(request: pytest.FixtureRequest) -> JobStore:
    from tests.support.stores import make_store

    return make_store(request.param, request)


@pytest.fixture
def sender(store: JobStore) -> Iterator[WebhookSender]:
    """A sender thread on the store (loopback allowed), stopped afterwards."""
    webhooks = WebhookSender(
        store, secret=SECRET, max_attempts=3, allow_private=True, timeout_s=2.0
    )
    store.add_change_listener(webhooks.on_change)
    stop = threading.Event()
    thread = threading.Thread(target=webhooks.run, args=(stop,), daemon=True)
    thread.start()
    yield webhooks
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def _job_that_ends(store: JobStore, url: str, status: JobStatus) -> uuid.UUID:
    job_id = uuid.uuid4()
    store.create(NewJob(job_id, "ocr_only", {}, f"videos/{job_id}.mp4", callback_url=url))
    if status is JobStatus.CANCELLED:
        store.cancel(job_id)
        return job_id
    assert store.claim_next("w1", LEASE_S) is not None
    if status is JobStatus.COMPLETED:
        assert store.complete(job_id, "w1", f"results/{job_id}.json", {})
    else:
        assert store.fail(job_id, "w1", "the video could not be decoded")
    return job_id


def test_retried_after_500s_with_backoff_then_delivered_once(
    store: JobStore, sender: WebhookSender, receiver: Receiver
) -> None:
    receiver.answers = [500, 500]
    job_id = _job_that_ends(store, receiver.url, JobStatus.FAILED)
    got = receiver.wait_for(3)
    verify = documented_verify()
    bodies = {request.body for request in got}
    assert len(bodies) == 1, "every retry carries the same body"
    for request in got:
        assert verify(SECRET, request.headers, request.body)
        assert request.path == "/hook"
    event = json.loads(got[0].body)
    job = store.get(job_id)
    assert job is not None
    assert set(event) == {"event_id", "job_id", "status", "error_message", "updated_at"}
    assert event["job_id"] == str(job_id) and event["status"] == "failed"
    assert event["error_message"] == "the video could not be decoded"
    uuid.UUID(event["event_id"])
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
    assert gaps[0] >= retry_delay_s(1) * 0.9 and gaps[1] >= retry_delay_s(2) * 0.9, gaps
    assert gaps[1] > gaps[0]
    _wait_state(store, job_id, "delivered")
    assert store.webhook_state(job_id) == ("delivered", 3)
    assert len(receiver.received) == 3


def _wait_state(store: JobStore, job_id: uuid.UUID, state: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (store.webhook_state(job_id) or ("", 0))[0] != state:
        assert time.monotonic() < deadline, store.webhook_state(job_id)
        time.sleep(0.01)


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_completed_and_cancelled_jobs_are_told_too(
    store: JobStore, sender: WebhookSender, receiver: Receiver
) -> None:
    done = _job_that_ends(store, receiver.url, JobStatus.COMPLETED)
    cancelled = _job_that_ends(store, receiver.url, JobStatus.CANCELLED)
    events = {json.loads(r.body)["job_id"]: json.loads(r.body) for r in receiver.wait_for(2)}
    assert events[str(done)]["status"] == "completed"
    assert events[str(cancelled)]["status"] == "cancelled"
    assert "error_message" not in events[str(done)]
    assert events[str(done)]["event_id"] != events[str(cancelled)]["event_id"]


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_redirects_are_not_followed_and_the_last_attempt_abandons(
    store: JobStore, sender: WebhookSender, receiver: Receiver
) -> None:
    receiver.default = 302
    receiver.redirect_to = receiver.url.replace("/hook", "/elsewhere")
    job_id = _job_that_ends(store, receiver.url, JobStatus.COMPLETED)
    _wait_state(store, job_id, "abandoned")
    assert store.webhook_state(job_id) == ("abandoned", 3)
    assert [request.path for request in receiver.received] == ["/hook"] * 3


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_a_target_that_became_private_is_refused_at_delivery(store: JobStore) -> None:
    strict = WebhookSender(store, secret=SECRET, max_attempts=1, allow_private=False)
    job_id = _job_that_ends(store, "http://127.0.0.1:9/hook", JobStatus.COMPLETED)
    (delivery,) = store.claim_webhooks(1, 30.0)
    assert not strict.deliver(delivery)  # no connection is attempted
    assert store.webhook_state(job_id) == ("abandoned", 1)


# -- callback_url at submit -------------------------------------------------------------------


def _submit(client: TestClient, video: Path, **params: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/v1/video/submit",
        params=params,
        files={"file": ("clip.mp4", video.read_bytes(), "video/mp4")},
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://127.0.0.1/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "ftp://example.com/hook",
    ],
)
@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_submit_refuses_private_callbacks_with_400_and_keeps_nothing(
    make_client: MakeClient, score_video: Path, store: JobStore, tmp_path: Path, url: str
) -> None:
    client = make_client(webhook_secret=SECRET)
    status, body = _submit(client, score_video, callback_url=url)
    assert status == 400 and "callback_url" in str(body["detail"])
    form = client.post(
        "/v1/video/submit",
        data={"callback_url": url},
        files={"file": ("clip.mp4", score_video.read_bytes(), "video/mp4")},
    )
    assert form.status_code == 400
    assert sum(store.count_by_status().values()) == 0
    assert not any(p.is_file() for p in (tmp_path / "storage").rglob("*"))


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_submit_with_a_callback(
    make_client: MakeClient, score_video: Path, store: JobStore
) -> None:
    no_secret = make_client(webhook_allow_private=True)
    status, body = _submit(no_secret, score_video, callback_url="http://127.0.0.1:9/hook")
    assert status == 400 and "FORGESYTE_WEBHOOK_SECRET" in str(body["detail"])
    client = make_client(webhook_secret=SECRET, webhook_allow_private=True)
    status, body = _submit(client, score_video, callback_url="http://127.0.0.1:9/hook")
    assert status == 200
    assert store.webhook_state(uuid.UUID(str(body["job_id"]))) == ("pending", 0)
    form = client.post(
        "/v1/video/submit",
        data={"callback_url": "http://localhost:9/form"},
        files={"file": ("clip.mp4", score_video.read_bytes(), "video/mp4")},
    )
    assert form.status_code == 200
    assert store.webhook_state(uuid.UUID(form.json()["job_id"])) == ("pending", 0)


def test_an_outbox_the_database_cannot_read_is_told_once_then_delivered(
    receiver: Receiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryJobStore()
    claim = store.claim_webhooks
    failures = itertools.count()

    def database_away(limit: int, lease_s: float) -> list[WebhookDelivery]:
        if next(failures) < 5:  # five reads in a row meet a database that is away
            away = psycopg.errors.AdminShutdown("terminating connection")
            raise OperationalError("SELECT", {}, away)
        return claim(limit, lease_s)

    monkeypatch.setattr(store, "claim_webhooks", database_away)
    webhooks = WebhookSender(store, secret=SECRET, allow_private=True, poll_interval_s=0.05)
    job_id = _job_that_ends(store, receiver.url, JobStatus.COMPLETED)
    stop = threading.Event()
    thread = threading.Thread(target=webhooks.run, args=(stop,), daemon=True)
    with caplog.at_level("WARNING", logger="forgesyte.webhooks.sender"):
        thread.start()
        got = receiver.wait_for(1, timeout_s=10)
        stop.set()
        thread.join(timeout=30)
    assert [json.loads(r.body)["job_id"] for r in got] == [str(job_id)]
    told = [r for r in caplog.records if "webhook outbox" in r.getMessage()]
    assert len(told) == 1 and told[0].exc_info is None
    assert "the database is not answering (OperationalError)" in told[0].getMessage()
