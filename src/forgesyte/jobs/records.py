"""The values that cross the job store's seam, and the errors it raises.

Plain frozen values (no ORM object leaves a store), so every side of the store reads
them without SQLAlchemy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Required, TypedDict

from forgesyte.jobs.keys import ADMIN_NAME
from forgesyte.jobs.models import JobStatus, WebhookState

FILENAME_MAX_CHARACTERS = 255  # of a job's filename (db/tables.py's column holds as many)


@dataclass(frozen=True)
class JobRecord:
    """An immutable snapshot of a job."""

    job_id: uuid.UUID
    status: JobStatus
    pipeline_id: str
    options: dict[str, Any]
    input_path: str
    output_path: str | None
    error_message: str | None
    progress: float
    attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    idempotency_key: str | None
    result_summary: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    filename: str | None = None  # the uploaded file's base name, as the API cleaned it
    owner: str = ADMIN_NAME  # the name of the key that submitted it (jobs/keys.py)


@dataclass(frozen=True)
class NewJob:
    """What the API knows of a job when it accepts an upload."""

    job_id: uuid.UUID
    pipeline_id: str
    options: dict[str, Any]
    input_path: str
    idempotency_key: str | None = None
    callback_url: str | None = None  # checked by the API; the store keeps its outbox row
    filename: str | None = None  # the uploaded file's base name (api/upload.py cleans it)
    owner: str = ADMIN_NAME  # the name of the key that submits it


@dataclass(frozen=True)
class JobPageCursor:
    """Where a newest-first page of the job list stopped: its last job's position."""

    created_at: datetime
    job_id: uuid.UUID


class JobPageQuery(TypedDict, total=False):
    """Which page of the job list to read: the keyword arguments of `list_page`."""

    limit: Required[int]  # at most this many jobs
    after: JobPageCursor | None  # only jobs strictly behind this position
    status: JobStatus | None  # only jobs in this state
    pipeline_id: str | None  # only jobs of this pipeline
    owner: str | None  # only jobs of this owner (a user key's list)


@dataclass(frozen=True)
class WebhookDelivery:
    """One claimed attempt to tell a finished job's callback_url how it ended."""

    job_id: uuid.UUID
    event_id: uuid.UUID
    callback_url: str
    attempt: int  # 1 for the first try
    status: JobStatus
    error_message: str | None
    updated_at: datetime


@dataclass(frozen=True)
class WebhookOutcome:
    """What one delivery attempt leaves in the outbox (built by the named constructors)."""

    state: WebhookState  # still PENDING when it is to be retried
    last_error: str | None
    next_attempt_at: datetime | None = None  # set when it is retried

    @classmethod
    def delivered(cls) -> WebhookOutcome:
        """The receiver answered 2xx: nothing more to send."""
        return cls(WebhookState.DELIVERED, None)

    @classmethod
    def retry(cls, at: datetime, error: str) -> WebhookOutcome:
        """The attempt failed with error; the next one is due at `at`."""
        return cls(WebhookState.PENDING, error, at)

    @classmethod
    def abandoned(cls, error: str) -> WebhookOutcome:
        """The last attempt failed with error: the delivery is given up."""
        return cls(WebhookState.ABANDONED, error)


@dataclass(frozen=True)
class RecoveryReport:
    """What a sweep of expired leases did."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]


class DuplicateIdempotencyKeyError(Exception):
    """Another job already holds this idempotency key."""


class JobFinishedError(Exception):
    """The job has already ended (completed, failed or cancelled); it cannot be cancelled."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job is already {status.value}")
        self.status = status


class JobRunningError(Exception):
    """The job is running; it cannot be deleted (cancel it first)."""
