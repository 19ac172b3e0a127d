"""The JobStore contract, continued: the job list, cancel, delete, retention and the webhook
outbox, run on every store (in memory, a DuckDB file, PostgreSQL) like test_store_contract."""

from __future__ import annotations

import threading
import uuid

import pytest

from forgesyte.jobs.models import JobStatus, WebhookState
from forgesyte.jobs.store import (
    JobFinishedError,
    JobPageCursor,
    JobRecord,
    JobRunningError,
    JobStore,
    WebhookOutcome,
)
from tests.jobs.test_store_contract import LEASE_S, new_job, run_together
from tests.support.stores import SteppingClock

RACE_ROUNDS = 12
HOOK_URL = "http://127.0.0.1:9/hook"


def _cursor(job: JobRecord) -> JobPageCursor:
    return JobPageCursor(job.created_at, job.job_id)


def _page_through(store: JobStore, limit: int, **filters: object) -> list[JobRecord]:
    seen: list[JobRecord] = []
    after: JobPageCursor | None = None
    while True:
        page = store.list_page(limit=limit, after=after, **filters)  # type: ignore[arg-type]
        seen.extend(page)
        if len(page) < limit:
            return seen
        after = _cursor(page[-1])


# -- the list ---------------------------------------------------------------------------------


def test_list_is_newest_first_and_filters(store: JobStore) -> None:
    jobs = [store.create(new_job(pipeline_id="ocr_only" if i % 2 else "detect")) for i in range(6)]
    listed = store.list_page(limit=50)
    assert [job.job_id for job in listed] == [job.job_id for job in reversed(jobs)]
    ocr = store.list_page(limit=50, pipeline_id="ocr_only")
    assert [job.job_id for job in ocr] == [
        job.job_id for job in reversed(jobs) if job.pipeline_id == "ocr_only"
    ]
    claimed = store.claim_next("w1", LEASE_S)
    assert claimed is not None
    running = store.list_page(limit=50, status=JobStatus.RUNNING)
    assert [job.job_id for job in running] == [claimed.job_id]
    assert store.list_page(limit=50, status=JobStatus.CANCELLED) == []
    assert store.list_page(limit=50, pipeline_id="nothing") == []


def test_paging_visits_every_job_once_while_jobs_arrive(store: JobStore) -> None:
    first = [store.create(new_job()) for _ in range(23)]
    seen: list[JobRecord] = []
    after: JobPageCursor | None = None
    while True:
        page = store.list_page(limit=5, after=after)
        seen.extend(page)
        store.create(new_job())  # arrives between pages: newer, so never in this walk
        if len(page) < 5:
            break
        after = _cursor(page[-1])
    assert [job.job_id for job in seen] == [job.job_id for job in reversed(first)]


def test_paging_a_filtered_list(store: JobStore) -> None:
    for i in range(12):
        store.create(new_job(pipeline_id="a" if i % 3 else "b"))
    walked = _page_through(store, 2, pipeline_id="a")
    assert len(walked) == 8 and len({job.job_id for job in walked}) == 8
    assert all(job.pipeline_id == "a" for job in walked)


# -- cancel -----------------------------------------------------------------------------------


def test_a_pending_job_is_cancelled_at_once(store: JobStore) -> None:
    job = store.create(new_job())
    cancelled = store.cancel(job.job_id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert store.get(job.job_id) == cancelled
    assert store.claim_next("w1", LEASE_S) is None  # no longer in the queue
    with pytest.raises(JobFinishedError) as raised:
        store.cancel(job.job_id)
    assert raised.value.status is JobStatus.CANCELLED
    assert store.cancel(uuid.uuid4()) is None
    assert store.count_by_status()["cancelled"] == 1


def test_a_cancelled_running_job_refuses_every_write_of_its_worker(
    store: JobStore, clock: SteppingClock
) -> None:
    store.create(new_job())
    job = store.claim_next("w1", LEASE_S)
    assert job is not None
    cancelled = store.cancel(job.job_id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert not store.heartbeat(job.job_id, "w1", LEASE_S)
    assert not store.set_progress(job.job_id, "w1", 50.0, LEASE_S)
    assert not store.complete(job.job_id, "w1", "results/x.json", {})
    assert not store.fail(job.job_id, "w1", "boom")
    assert not store.release(job.job_id, "w1")
    clock.advance(LEASE_S + 1)
    assert store.recover_expired(3).requeued == []
    after = store.get(job.job_id)
    assert after is not None and after.status is JobStatus.CANCELLED
    with pytest.raises(JobFinishedError):
        store.cancel(job.job_id)


def test_finished_jobs_cannot_be_cancelled(store: JobStore) -> None:
    for end in ("complete", "fail"):
        store.create(new_job())
        job = store.claim_next("w1", LEASE_S)
        assert job is not None
        if end == "complete":
            assert store.complete(job.job_id, "w1", "results/x.json", {})
        else:
            assert store.fail(job.job_id, "w1", "boom")
        with pytest.raises(JobFinishedError):
            store.cancel(job.job_id)


@pytest.mark.parametrize("finish", ["complete", "fail"])
def test_cancel_racing_the_worker_ends_one_way_only(store: JobStore, finish: str) -> None:
    """Cancel and the worker's last write at the same moment: exactly one of them wins,
    and the stored job agrees with the winner (a cancelled job never becomes anything else)."""
    outcomes: set[str] = set()
    for _ in range(RACE_ROUNDS):
        store.create(new_job())
        job = store.claim_next("w1", LEASE_S)
        assert job is not None
        answers: dict[str, object] = {}

        def act(
            index: int, job_id: uuid.UUID = job.job_id, answers: dict[str, object] = answers
        ) -> None:
            if index == 0:
                try:
                    answers["cancel"] = store.cancel(job_id)
                except JobFinishedError as exc:
                    answers["cancel"] = exc
            elif finish == "complete":
                answers["worker"] = store.complete(job_id, "w1", "results/x.json", {})
            else:
                answers["worker"] = store.fail(job_id, "w1", "boom")

        assert run_together(2, act) == []
        stored = store.get(job.job_id)
        assert stored is not None
        if answers["worker"] is True:
            assert isinstance(answers["cancel"], JobFinishedError)
            assert stored.status is (
                JobStatus.COMPLETED if finish == "complete" else JobStatus.FAILED
            )
            outcomes.add("worker")
        else:
            assert isinstance(answers["cancel"], JobRecord)
            assert stored.status is JobStatus.CANCELLED
            assert stored.output_path is None
            outcomes.add("cancel")
    assert outcomes  # every round ended one way; which way is up to the scheduler


# -- delete and retention ---------------------------------------------------------------------


def test_delete_removes_a_job_unless_it_is_running(store: JobStore) -> None:
    pending = store.create(new_job(idempotency_key="k1"))
    removed = store.delete(pending.job_id)
    assert removed is not None and removed.job_id == pending.job_id
    assert store.get(pending.job_id) is None
    assert store.get_by_idempotency_key("k1") is None
    assert store.delete(pending.job_id) is None
    store.create(new_job())
    running = store.claim_next("w1", LEASE_S)
    assert running is not None
    with pytest.raises(JobRunningError):
        store.delete(running.job_id)
    assert store.get(running.job_id) is not None
    assert store.complete(running.job_id, "w1", "results/x.json", {})
    assert store.delete(running.job_id) is not None
    assert store.list_page(limit=10) == []


def test_finished_before_lists_old_finished_jobs_oldest_first(
    store: JobStore, clock: SteppingClock
) -> None:
    ended = []
    for _ in range(3):
        store.create(new_job())
        job = store.claim_next("w1", LEASE_S)
        assert job is not None and store.complete(job.job_id, "w1", "results/x.json", {})
        ended.append(job.job_id)
    cancelled = store.create(new_job())
    store.cancel(cancelled.job_id)
    store.create(new_job())  # pending: never swept
    clock.advance(3600)
    cutoff = clock()
    store.create(new_job())
    late = store.claim_next("w1", LEASE_S)
    assert late is not None and store.fail(late.job_id, "w1", "late")  # ended after the cutoff
    old = store.finished_before(cutoff, 100)
    assert [job.job_id for job in old] == [*ended, cancelled.job_id]
    assert [job.job_id for job in store.finished_before(cutoff, 2)] == ended[:2]


# -- the webhook outbox -----------------------------------------------------------------------


def _finish(store: JobStore, job_id: uuid.UUID) -> None:
    job = store.claim_next("w1", LEASE_S)
    assert job is not None and job.job_id == job_id
    assert store.complete(job_id, "w1", "results/x.json", {})


def test_a_webhook_is_due_once_the_job_has_ended(store: JobStore, clock: SteppingClock) -> None:
    job = store.create(new_job(callback_url=HOOK_URL))
    store.create(new_job())  # no callback: never in the outbox
    assert store.webhook_state(job.job_id) == ("pending", 0)
    assert store.claim_webhooks(10, 30.0) == []  # pending job: nothing to say yet
    _finish(store, job.job_id)
    (first,) = store.claim_webhooks(10, 30.0)
    assert (first.job_id, first.callback_url, first.attempt) == (job.job_id, HOOK_URL, 1)
    assert first.status is JobStatus.COMPLETED and first.error_message is None
    assert store.claim_webhooks(10, 30.0) == []  # claimed: not due again for 30 s
    assert store.finish_webhook(first, WebhookOutcome.retry(clock(), "HTTP 500"))
    (second,) = store.claim_webhooks(10, 30.0)
    assert second.attempt == 2 and second.event_id == first.event_id
    assert second.updated_at == first.updated_at
    assert not store.finish_webhook(
        first, WebhookOutcome.delivered()
    )  # a stale attempt changes nothing
    assert store.finish_webhook(second, WebhookOutcome.delivered())
    assert store.webhook_state(job.job_id) == (WebhookState.DELIVERED.value, 2)
    assert store.claim_webhooks(10, 30.0) == []


def test_an_unfinished_claim_is_due_again_and_abandon_is_final(
    store: JobStore, clock: SteppingClock
) -> None:
    job = store.create(new_job(callback_url=HOOK_URL))
    store.cancel(job.job_id)
    (first,) = store.claim_webhooks(10, 5.0)
    assert first.status is JobStatus.CANCELLED
    clock.advance(6.0)  # the sender died mid-attempt: the claim lapses
    (second,) = store.claim_webhooks(10, 5.0)
    assert second.attempt == 2
    assert store.finish_webhook(second, WebhookOutcome.abandoned("gave up"))
    assert store.webhook_state(job.job_id) == (WebhookState.ABANDONED.value, 2)
    clock.advance(60.0)
    assert store.claim_webhooks(10, 5.0) == []
    assert store.delete(job.job_id) is not None
    assert store.webhook_state(job.job_id) is None


def test_concurrent_senders_claim_a_delivery_once(store: JobStore) -> None:
    jobs = [store.create(new_job(callback_url=HOOK_URL)) for _ in range(6)]
    for job in jobs:
        _finish(store, job.job_id)
    claimed: list[uuid.UUID] = []
    lock = threading.Lock()

    def claim(_index: int) -> None:
        for delivery in store.claim_webhooks(2, 30.0):
            with lock:
                claimed.append(delivery.job_id)

    for _ in range(3):
        assert run_together(4, claim) == []
    assert sorted(claimed) == sorted(job.job_id for job in jobs)


def test_holds_is_a_read_that_a_cancel_turns_false(store: JobStore) -> None:
    store.create(new_job())
    job = store.claim_next("w1", LEASE_S)
    assert job is not None
    before = store.get(job.job_id)
    assert store.holds(job.job_id, "w1")
    assert not store.holds(job.job_id, "w2")
    assert not store.holds(uuid.uuid4(), "w1")
    assert store.get(job.job_id) == before  # nothing written
    store.cancel(job.job_id)
    assert not store.holds(job.job_id, "w1")
