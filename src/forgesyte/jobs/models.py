"""The Job model: one row per submitted video, which is also the queue entry."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Double, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of ForgeSyte's tables."""


class JobStatus(enum.StrEnum):
    """Where a job is in its life; states only move forward, except a lost worker's job."""

    PENDING = "pending"  # queued, waiting for a worker
    RUNNING = "running"  # claimed by a worker holding a lease
    COMPLETED = "completed"  # results stored; progress is 100
    FAILED = "failed"  # gave up; error_message says why
    CANCELLED = "cancelled"  # stopped on request; nothing writes to it afterwards


# States a job never leaves; retention and webhooks act on these.
FINISHED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(Base):
    """A video-analysis job and its place in the queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_idempotency_key", "idempotency_key", unique=True),
        Index("ix_jobs_created_at_job_id", "created_at", "job_id"),  # the newest-first list
    )

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    pipeline_id: Mapped[str] = mapped_column(String(128))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    input_path: Mapped[str] = mapped_column(String(512))
    output_path: Mapped[str | None] = mapped_column(String(512), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), default=None)
    result_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class WebhookState(enum.StrEnum):
    """Where a job's completion webhook is in its delivery."""

    PENDING = "pending"  # to send once the job has finished (or to retry at next_attempt_at)
    DELIVERED = "delivered"  # the receiver answered 2xx
    ABANDONED = "abandoned"  # every attempt failed


class JobWebhook(Base):
    """The outbox row of a job submitted with a callback_url: stored with the job, so a
    delivery still pending when the process dies is sent after a restart."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    callback_url: Mapped[str] = mapped_column(String(2048))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # the same on every retry
    state: Mapped[str] = mapped_column(String(16), default=WebhookState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SegmentStatus(enum.StrEnum):
    """Where one segment of a split job is; a lost segment goes back to pending."""

    PENDING = "pending"  # waiting for a worker
    RUNNING = "running"  # claimed by a worker holding its lease
    DONE = "done"  # its results object is stored
    FAILED = "failed"  # it gave up; error_message says why (the job then fails)


class JobSegment(Base):
    """One part of a long job's selected frames, cut at a keyframe, analysed on its own.

    The frames of the segment are the job's selected frames with
    first_frame <= frame_index < end_frame; `frames` counts them.
    """

    __tablename__ = "job_segments"
    __table_args__ = (Index("ix_job_segments_status", "status", "job_id", "seq"),)

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=SegmentStatus.PENDING)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
