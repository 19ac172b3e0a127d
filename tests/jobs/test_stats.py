"""The monitoring reads of the jobs table, on a real DuckDB file and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from forgesyte.db.tables import Job
from forgesyte.jobs.models import ACTIVE_STATUSES, FINISHED_STATUSES, JobStatus, utcnow
from forgesyte.jobs.sql_store import SqlJobStore

# the SQL store's queries; the in-memory store's answers are in the contract suite
SQL_ONLY = pytest.mark.parametrize("store", ["duckdb", "postgresql"], indirect=True)

BASE = utcnow().replace(microsecond=0) - timedelta(hours=1)


def _insert(
    store: SqlJobStore,
    status: JobStatus,
    *,
    pipeline_id: str = "ocr_only",
    created_after_s: float = 0.0,
    took_s: float = 0.0,
    frames: int | None = None,
) -> None:
    created = BASE + timedelta(seconds=created_after_s)
    row: dict[str, Any] = {
        "job_id": uuid.uuid4(),
        "status": status.value,
        "pipeline_id": pipeline_id,
        "options": {},
        "input_path": "videos/x.mp4",
        "progress": 0.0,
        "attempts": 1,
        "result_summary": None if frames is None else {"frames_analysed": frames, "video": {}},
        "created_at": created,
        "updated_at": created + timedelta(seconds=took_s),
    }
    with store.engine.begin() as connection:
        connection.execute(Job.__table__.insert(), [row])


@SQL_ONLY
def test_durations_are_cumulative_histograms_per_pipeline_and_final_status(
    store: SqlJobStore,
) -> None:
    for took_s in (0.5, 3.0, 3.0, 100.0):
        _insert(store, JobStatus.COMPLETED, took_s=took_s, frames=2)
    _insert(store, JobStatus.FAILED, took_s=7.25)
    _insert(store, JobStatus.COMPLETED, pipeline_id="detect", took_s=9000.0, frames=5)
    _insert(store, JobStatus.PENDING, took_s=1.0)  # unfinished jobs are not in the histogram
    _insert(store, JobStatus.RUNNING, took_s=1.0)

    histograms = store.finished_job_durations(bounds=(1.0, 5.0, 10.0, 3600.0))

    found = {(h.pipeline_id, h.status): h for h in histograms}
    assert sorted(found) == [
        ("detect", "completed"),
        ("ocr_only", "completed"),
        ("ocr_only", "failed"),
    ]
    completed = found[("ocr_only", "completed")]
    assert completed.bucket_counts == (1, 3, 3, 4)
    assert completed.count == 4
    assert abs(completed.sum_s - 106.5) < 1e-6
    failed = found[("ocr_only", "failed")]
    assert (failed.bucket_counts, failed.count) == ((0, 0, 1, 1), 1)
    assert abs(failed.sum_s - 7.25) < 1e-6
    slow = found[("detect", "completed")]
    assert (slow.bucket_counts, slow.count) == ((0, 0, 0, 0), 1)  # beyond the last bound: +Inf


@SQL_ONLY
def test_frames_analysed_sums_the_completed_jobs_summaries(store: SqlJobStore) -> None:
    assert store.frames_analysed_total() == 0
    _insert(store, JobStatus.COMPLETED, frames=12)
    _insert(store, JobStatus.COMPLETED, frames=30)
    _insert(store, JobStatus.FAILED)
    _insert(store, JobStatus.PENDING)
    assert store.frames_analysed_total() == 42


@SQL_ONLY
def test_oldest_pending_ignores_jobs_that_left_the_queue(store: SqlJobStore) -> None:
    assert store.oldest_pending_created_at() is None
    _insert(store, JobStatus.COMPLETED, created_after_s=0)  # older, but not waiting
    _insert(store, JobStatus.RUNNING, created_after_s=5)
    _insert(store, JobStatus.PENDING, created_after_s=20)
    _insert(store, JobStatus.PENDING, created_after_s=10)
    oldest = store.oldest_pending_created_at()
    assert oldest is not None
    assert oldest.utcoffset() == timedelta(0)
    assert oldest == BASE + timedelta(seconds=10)


def test_final_statuses_are_every_status_but_pending_and_running() -> None:
    assert set(ACTIVE_STATUSES) == {JobStatus.PENDING, JobStatus.RUNNING}
    assert JobStatus.PENDING not in FINISHED_STATUSES and JobStatus.RUNNING not in FINISHED_STATUSES
    assert set(FINISHED_STATUSES) | set(ACTIVE_STATUSES) == set(JobStatus)
