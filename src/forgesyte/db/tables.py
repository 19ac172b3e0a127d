"""The tables of ForgeSyte's database, as SQLAlchemy declarative models.

Only the job stores (`forgesyte.jobs.sql_store` and its parts) and the migrations read
them. Status columns hold the values of `forgesyte.jobs.models`' enums; this module knows
nothing of jobs, so it sets no defaults: the stores write every column.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Double, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of ForgeSyte's tables."""


class Job(Base):
    """A video-analysis job and its place in the queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_idempotency_key", "idempotency_key", unique=True),
        Index("ix_jobs_created_at_job_id", "created_at", "job_id"),  # the newest-first list
    )

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    pipeline_id: Mapped[str] = mapped_column(String(128))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_path: Mapped[str] = mapped_column(String(512))
    output_path: Mapped[str | None] = mapped_column(String(512))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Double)
    attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    result_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobWebhook(Base):
    """The outbox row of a job submitted with a callback_url: stored with the job, so a
    delivery still pending when the process dies is sent after a restart."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    callback_url: Mapped[str] = mapped_column(String(2048))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # the same on every retry
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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
    status: Mapped[str] = mapped_column(String(16))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    frames_done: Mapped[int] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
