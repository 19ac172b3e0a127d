"""The lease keeper on its own: renewals, throttled progress, a lost lease, a clean stop."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from forgesyte.workers.lease import LeaseKeeper


class RecordingJobs:
    """Records every renewal; `held` says whether the worker still holds the job."""

    def __init__(self) -> None:
        self.held = True
        self.fail_next = 0
        self.writes: list[tuple[float, float | None]] = []  # (monotonic time, progress)
        self.changed = threading.Condition()

    def _record(self, progress: float | None) -> bool:
        with self.changed:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("the database went away")
            self.writes.append((time.monotonic(), progress))
            self.changed.notify_all()
            return self.held

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
        return self._record(None)

    def set_progress(
        self, job_id: uuid.UUID, worker_id: str, progress: float, lease_seconds: float
    ) -> bool:
        return self._record(progress)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout_s), self.writes


def keeper(jobs: RecordingJobs, lease_seconds: float = 0.3) -> LeaseKeeper:
    return LeaseKeeper(
        jobs, uuid.uuid4(), "w1", lease_seconds=lease_seconds, progress_interval_s=0.05
    )


def test_the_lease_is_renewed_every_third_of_a_lease_until_stopped() -> None:
    jobs = RecordingJobs()
    started = time.monotonic()  # before the keeper: its first renewal counts from its making
    with keeper(jobs, lease_seconds=0.6) as lease:
        jobs.wait_for(lambda: len(jobs.writes) >= 4)
    count = len(jobs.writes)
    assert all(progress is None for _, progress in jobs.writes)
    times = [started] + [moment for moment, _ in jobs.writes[:4]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(0.18 <= gap < 0.6 for gap in gaps), gaps  # every lease / 3, never a lease
    assert not lease.lost
    with jobs.changed:  # stopped: no renewal after stop() returned
        assert not jobs.changed.wait_for(lambda: len(jobs.writes) > count, 0.6)


def test_progress_is_written_at_most_once_per_interval_and_capped_below_100() -> None:
    jobs = RecordingJobs()
    with keeper(jobs, lease_seconds=60.0) as lease:
        started = time.monotonic()
        analysed = 0
        while len(jobs.writes) < 3:  # frames done as fast as they come, until 3 writes
            assert time.monotonic() - started < 10
            analysed = min(analysed + 1, 150)
            lease.report_progress(analysed, 200)
        lease.report_progress(200, 200)
        jobs.wait_for(lambda: jobs.writes[-1][1] == 99.0)
        elapsed = time.monotonic() - started
    progress = [value for _, value in jobs.writes]
    assert None not in progress  # progress writes renew the lease; no extra heartbeats
    assert progress == sorted(progress) and progress[-1] == 99.0
    assert 2 <= len(progress) <= elapsed / 0.05 + 2


def test_a_lost_lease_is_noticed_and_renewals_end() -> None:
    jobs = RecordingJobs()
    jobs.held = False
    lease = keeper(jobs, lease_seconds=0.15).start()
    assert lease.wait_lost(10.0) and lease.lost
    lease.stop()
    assert len(jobs.writes) == 1  # the thread ended at the first refusal


def test_a_database_error_does_not_end_the_renewals() -> None:
    jobs = RecordingJobs()
    jobs.fail_next = 2
    with keeper(jobs, lease_seconds=0.15) as lease:
        jobs.wait_for(lambda: len(jobs.writes) >= 2)
        assert not lease.lost


def test_bad_timings_are_refused() -> None:
    with pytest.raises(ValueError):
        LeaseKeeper(RecordingJobs(), uuid.uuid4(), "w1", lease_seconds=0, progress_interval_s=1)
