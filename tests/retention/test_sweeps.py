"""Retention and the orphan sweep on real stores and real storage (a folder and S3 on the
test's moto server): what a job owns goes with it, what no job owns goes after a grace
period, and nothing else is touched."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRunningError, JobStore, NewJob
from forgesyte.retention import (
    Housekeeper,
    job_keys,
    owned_folders,
    remove_expired_jobs,
    remove_job,
    remove_orphans,
)
from forgesyte.storage.base import (
    frame_tracks_key,
    playable_key,
    results_key,
    thumbnails_key,
    timeline_key,
    video_key,
)
from tests.support.storages import StorageBackend
from tests.support.stores import SteppingClock, make_store

LEASE_S = 30.0
DAY_S = 86400.0


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture(params=["duckdb", "postgresql"])
def store(request: pytest.FixtureRequest, clock: SteppingClock) -> JobStore:
    return make_store(request.param, request, clock)


def _stored_job(store: JobStore, backend: StorageBackend, end: JobStatus | None) -> uuid.UUID:
    """A job with its video stored; ended as `end` (with results when completed)."""
    job_id = uuid.uuid4()
    backend.storage.put_bytes(video_key(job_id), b"video")
    store.create(NewJob(job_id, "ocr_only", {}, video_key(job_id)))
    if end is None:
        return job_id
    if end is JobStatus.CANCELLED:
        store.cancel(job_id)
        return job_id
    claimed = store.claim_next("w1", LEASE_S)
    assert claimed is not None and claimed.job_id == job_id
    if end is JobStatus.COMPLETED:
        backend.storage.put_bytes(results_key(job_id), b"{}")
        assert store.complete(job_id, "w1", results_key(job_id), {})
    elif end is JobStatus.FAILED:
        assert store.fail(job_id, "w1", "boom")
    return job_id


def _keys(job_id: uuid.UUID) -> list[str]:
    """The keys _stored_job writes for a completed job."""
    return [video_key(job_id), results_key(job_id)]


def test_every_owned_key_is_listed_once() -> None:
    assert owned_folders() == [
        "playable",
        "results",
        "segments",
        "thumbnails",
        "timelines",
        "tracks",
        "videos",
    ]


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_remove_job_takes_everything_a_job_owns(
    store: JobStore, storage_backend: StorageBackend
) -> None:
    done = _stored_job(store, storage_backend, JobStatus.COMPLETED)
    kept = _stored_job(store, storage_backend, None)
    job = store.get(done)
    assert job is not None
    media = [playable_key(done), thumbnails_key(done), frame_tracks_key(done)]
    assert sorted(job_keys(job)) == sorted([*_keys(done), timeline_key(done), *media])
    for key in [timeline_key(done), *media]:  # the media a worker stores with the results
        storage_backend.storage.put_bytes(key, b"{}")
    running = _stored_job(store, storage_backend, None)
    assert store.claim_next("w1", LEASE_S) is not None  # `kept` is older: it is the one claimed
    with pytest.raises(JobRunningError):
        remove_job(store, storage_backend.storage, kept)
    assert remove_job(store, storage_backend.storage, done) is not None
    assert remove_job(store, storage_backend.storage, running) is not None  # pending: fine
    assert storage_backend.contents() == [video_key(kept)]
    assert remove_job(store, storage_backend.storage, uuid.uuid4()) is None


def test_retention_removes_jobs_that_ended_long_enough_ago(
    store: JobStore, storage_backend: StorageBackend, clock: SteppingClock
) -> None:
    old = [
        _stored_job(store, storage_backend, end)
        for end in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    ]
    old_pending = _stored_job(store, storage_backend, None)
    clock.advance(2 * DAY_S)
    recent = _stored_job(store, storage_backend, JobStatus.CANCELLED)  # no claim: FIFO
    storage_backend.storage.put_bytes(results_key(recent), b"{}")  # as if it had some
    clock.advance(0.5 * DAY_S)
    removed = remove_expired_jobs(store, storage_backend.storage, 1.5, now_fn=clock)
    assert sorted(removed) == sorted(old)
    for job_id in old:
        assert store.get(job_id) is None
    assert store.get(old_pending) is not None and store.get(recent) is not None
    assert storage_backend.contents() == sorted([video_key(old_pending), *_keys(recent)])
    assert remove_expired_jobs(store, storage_backend.storage, 1.5, now_fn=clock) == []
    # fractions of a day: six hours later the recent job is over 0.25 days old
    assert remove_expired_jobs(store, storage_backend.storage, 0.25, now_fn=clock) == [recent]


def _age(backend: StorageBackend, key: str, seconds: float) -> None:
    """Make a local file look `seconds` old (S3 objects cannot be aged: tests use min_age 0)."""
    assert backend.root is not None
    path = backend.root / key
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_orphans_go_after_the_grace_period_and_nothing_else(
    store: JobStore, storage_backend: StorageBackend, clock: SteppingClock
) -> None:
    clock.advance(-3600)  # the database's jobs began an hour ago
    owned = _stored_job(store, storage_backend, JobStatus.COMPLETED)
    orphan_video, orphan_results = uuid.uuid4(), uuid.uuid4()
    storage_backend.storage.put_bytes(video_key(orphan_video), b"a crash left me")
    storage_backend.storage.put_bytes(results_key(orphan_results), b"{}")
    if storage_backend.root is not None:
        (storage_backend.root / "videos" / "notes.txt").write_text("not a job's")
    # within the grace period (an upload whose row is being written): untouched
    assert remove_orphans(store, storage_backend.storage, min_age_s=600) == []
    if storage_backend.root is not None:
        for key in (video_key(orphan_video), results_key(orphan_results), *_keys(owned)):
            _age(storage_backend, key, 1200)
        min_age_s = 600.0
    else:
        min_age_s = 0.0
    removed = remove_orphans(store, storage_backend.storage, min_age_s=min_age_s)
    assert sorted(removed) == sorted([video_key(orphan_video), results_key(orphan_results)])
    expected = sorted(_keys(owned))
    if storage_backend.root is not None:
        expected = sorted([*expected, "videos/notes.txt"])
    assert storage_backend.contents() == expected


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
def test_objects_older_than_every_job_are_kept(
    store: JobStore, storage_backend: StorageBackend, caplog: pytest.LogCaptureFixture
) -> None:
    _stored_job(store, storage_backend, None)
    stray = uuid.uuid4()
    storage_backend.storage.put_bytes(video_key(stray), b"another database's?")
    _age(storage_backend, video_key(stray), 3 * DAY_S)
    assert remove_orphans(store, storage_backend.storage, min_age_s=600) == []
    assert "older than every job" in caplog.text


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_the_periodic_sweep_runs_until_stopped(
    store: JobStore, storage_backend: StorageBackend, clock: SteppingClock
) -> None:
    clock.advance(-DAY_S)  # the job ended a day ago, by the real clock the sweep reads
    expired = _stored_job(store, storage_backend, JobStatus.FAILED)
    housekeeper = Housekeeper(
        store,
        storage_backend.storage,
        interval_s=0.05,
        retention_days=0.5,
        orphan_min_age_s=600,
    )
    stop = threading.Event()
    thread = threading.Thread(target=housekeeper.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while store.get(expired) is not None:
        assert time.monotonic() < deadline, "the periodic sweep never removed the job"
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert storage_backend.contents() == []
