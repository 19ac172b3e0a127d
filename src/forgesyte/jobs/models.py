"""A job's states and their groups, written once: what every part of the server compares with.

Plain Python, so the store protocol, the in-memory store and the API read them without
loading SQLAlchemy; the tables that store them are in `forgesyte.db.tables`.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class JobStatus(enum.StrEnum):
    """Where a job is in its life; states only move forward, except a lost worker's job."""

    PENDING = "pending"  # queued, waiting for a worker
    RUNNING = "running"  # claimed by a worker holding a lease
    COMPLETED = "completed"  # results stored; progress is 100
    FAILED = "failed"  # gave up; error_message says why
    CANCELLED = "cancelled"  # stopped on request; nothing writes to it afterwards


# States a job still moves on from: in the queue or held by a worker.
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
# States a job never leaves (every other one, a new one included); retention, webhooks,
# the status cache and the duration histogram act on these.
FINISHED_STATUSES = tuple(status for status in JobStatus if status not in ACTIVE_STATUSES)

PROGRESS_CAP = 99.0  # percent a job may show while it runs; 100 is written only on completion


class WebhookState(enum.StrEnum):
    """Where a job's completion webhook is in its delivery."""

    PENDING = "pending"  # to send once the job has finished (or to retry at next_attempt_at)
    DELIVERED = "delivered"  # the receiver answered 2xx
    ABANDONED = "abandoned"  # every attempt failed


class SegmentStatus(enum.StrEnum):
    """Where one segment of a split job is; a lost segment goes back to pending."""

    PENDING = "pending"  # waiting for a worker
    RUNNING = "running"  # claimed by a worker holding its lease
    DONE = "done"  # its results object is stored
    FAILED = "failed"  # it gave up; error_message says why (the job then fails)
