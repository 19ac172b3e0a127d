"""The listeners of a job store: the idle workers' wake-up and the API's status cache."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import Engine

from forgesyte.api.status_cache import StatusCache
from forgesyte.jobs.changes import JobChange, JobWakeup
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import NewJob


def test_the_wakeup_hears_jobs_becoming_pending_and_nothing_else() -> None:
    wakeup = JobWakeup()
    seen = wakeup.generation()
    for status in (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED):
        wakeup.on_change(JobChange(uuid.uuid4(), status))
    assert wakeup.generation() == seen
    wakeup.on_change(JobChange(uuid.uuid4(), JobStatus.PENDING))
    assert wakeup.generation() == seen + 1
    assert wakeup.wait(seen, 5.0)  # a notification before the wait is not lost


def test_an_enqueue_wakes_a_waiting_worker_thread_at_once() -> None:
    store = InMemoryJobStore()
    wakeup = JobWakeup()
    store.add_change_listener(wakeup.on_change)
    seen = wakeup.generation()
    woken: list[float] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        if wakeup.wait(seen, 60.0):
            woken.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert waiting.wait(10)
    enqueued = time.monotonic()
    job_id = uuid.uuid4()
    store.create(NewJob(job_id, "ocr_only", {}, f"videos/{job_id}.mp4"))
    waiter.join(timeout=10)
    assert not waiter.is_alive() and len(woken) == 1
    assert woken[0] - enqueued < 1.0


def test_the_status_cache_forgets_a_job_the_store_changed() -> None:
    store = InMemoryJobStore()
    cache = StatusCache(ttl_s=60.0)
    store.add_change_listener(cache.on_change)
    job_id = uuid.uuid4()
    record = store.create(NewJob(job_id, "ocr_only", {}, f"videos/{job_id}.mp4"))
    cache.put(record, b"pending")
    assert cache.get(job_id) == b"pending"
    assert store.claim_next("w1", 30) is not None
    assert cache.get(job_id) is None


def test_a_listener_may_be_given_when_the_store_is_made(duckdb_engine: Engine) -> None:
    heard: list[JobChange] = []
    stores = [
        InMemoryJobStore(on_change=heard.append),
        SqlJobStore(duckdb_engine, on_change=heard.append),
    ]
    for store in stores:
        job_id = uuid.uuid4()
        store.create(NewJob(job_id, "ocr_only", {}, f"videos/{job_id}.mp4"))
        assert heard[-1] == JobChange(job_id, JobStatus.PENDING)
    assert len(heard) == len(stores)
