"""A short-lived cache of status answers for the status route, the API's hot path.

A job in a final state (completed, failed) never changes again, so its snapshot is kept
until evicted. A pending or running job's snapshot is served for at most `ttl_s`
seconds (less than a worker's progress interval), then read again; a change made by a
worker in the same process (`forgesyte serve`) drops the job's answer at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict

from forgesyte.jobs.changes import JobChange
from forgesyte.jobs.models import FINISHED_STATUSES, JobStatus
from forgesyte.jobs.store import JobRecord

FINAL_STATE_CACHE_S = 30.0  # seconds: a final state never changes, but a job may be deleted


class StatusCache:
    """Least-recently-used status answers (JSON bodies), fresh for ttl_s unless final.

    A final answer is kept for FINAL_STATE_CACHE_S: its state cannot change, but the job may
    be deleted through another API process, which this one hears of only by reading again.
    """

    def __init__(self, ttl_s: float, max_entries: int = 20_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # job id -> (read at, status, answer, owner)
        self._entries: OrderedDict[uuid.UUID, tuple[float, JobStatus, bytes, str]] = OrderedDict()
        self._lock = threading.Lock()  # the event loop reads; worker threads invalidate

    def get(self, job_id: uuid.UUID, owner: str | None = None) -> bytes | None:
        """A status answer that is still good to serve, or None; with owner, only an answer
        about a job of that owner (a user key's: another's job is read, and refused, anew)."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None:
                return None
            read_at, status, body, job_owner = entry
            if owner is not None and owner != job_owner:
                return None
            fresh_s = FINAL_STATE_CACHE_S if status in FINISHED_STATUSES else self.ttl_s
            if time.monotonic() - read_at > fresh_s:
                del self._entries[job_id]
                return None
            self._entries.move_to_end(job_id)
            return body

    def put(self, record: JobRecord, body: bytes) -> None:
        """Remember the answer built from a snapshot just read from the store."""
        if self.ttl_s <= 0 and record.status not in FINISHED_STATUSES:
            return
        with self._lock:
            self._entries[record.job_id] = (time.monotonic(), record.status, body, record.owner)
            self._entries.move_to_end(record.job_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, job_id: uuid.UUID) -> None:
        """Forget a job's answer: it just changed."""
        with self._lock:
            self._entries.pop(job_id, None)

    def on_change(self, change: JobChange) -> None:
        """A job store listener: forget the answer of the job that changed."""
        self.invalidate(change.job_id)
