"""The status cache: final answers stay, unfinished ones expire or are dropped on change."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from forgesyte.api import status_cache
from forgesyte.api.status_cache import StatusCache
from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def record(status: JobStatus) -> JobRecord:
    return JobRecord(
        job_id=uuid.uuid4(),
        status=status,
        pipeline_id="ocr_only",
        options={},
        input_path="videos/x.mp4",
        output_path=None,
        error_message=None,
        progress=0.0,
        attempts=0,
        worker_id=None,
        lease_expires_at=None,
        idempotency_key=None,
        result_summary=None,
        created_at=NOW,
        updated_at=NOW,
    )


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        """The current reading."""
        return self.now


def test_unfinished_answers_expire_and_final_ones_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(status_cache, "time", clock)
    cache = StatusCache(ttl_s=0.05)
    running, done = record(JobStatus.RUNNING), record(JobStatus.COMPLETED)
    cache.put(running, b"running")
    cache.put(done, b"done")
    clock.now += 0.04
    assert cache.get(running.job_id) == b"running"
    clock.now += 0.08
    assert cache.get(running.job_id) is None
    assert cache.get(done.job_id) == b"done"


def test_invalidate_drops_an_answer_and_eviction_is_lru() -> None:
    cache = StatusCache(ttl_s=10, max_entries=2)
    first, second, third = (record(JobStatus.FAILED) for _ in range(3))
    cache.put(first, b"1")
    cache.put(second, b"2")
    cache.invalidate(second.job_id)
    assert cache.get(second.job_id) is None
    cache.put(second, b"2")
    cache.get(first.job_id)  # first is now the most recently used
    cache.put(third, b"3")
    assert cache.get(second.job_id) is None
    assert cache.get(first.job_id) == b"1" and cache.get(third.job_id) == b"3"


def test_a_zero_ttl_caches_only_final_answers() -> None:
    cache = StatusCache(ttl_s=0)
    pending = record(JobStatus.PENDING)
    cache.put(pending, b"p")
    assert cache.get(pending.job_id) is None
    done = replace(pending, status=JobStatus.COMPLETED)
    cache.put(done, b"d")
    assert cache.get(done.job_id) == b"d"
