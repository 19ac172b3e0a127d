"""The tables of ForgeSyte's database, as SQLAlchemy declarative models.

Only the job stores (`forgesyte.jobs.sql_store` and its parts), the search index
(`forgesyte.search.sql_index`) and the migrations read them. Status columns hold the
values of `forgesyte.jobs.models`' enums; this module knows nothing of jobs, so it sets
no defaults: the stores write every column.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

FILENAME_LENGTH = 255  # characters of a job's filename (the API cuts it there: jobs/records.py)
OWNER_LENGTH = 64  # characters of a key's name, which is what owns a job
SEARCH_ENTRY_IDS = "search_entry_ids"  # the sequence numbering search_text rows


class Base(DeclarativeBase):
    """Declarative base of ForgeSyte's tables."""


class Job(Base):
    """A video-analysis job and its place in the queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_idempotency_key", "idempotency_key", unique=True),
        Index("ix_jobs_created_at_job_id", "created_at", "job_id"),  # the newest-first list
        # and on PostgreSQL only (migration 0005): ix_jobs_status_owner_created_at, the
        # per-owner pending count; DuckDB counts from its column scan
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
    filename: Mapped[str | None] = mapped_column(String(FILENAME_LENGTH))  # the upload's base name
    owner: Mapped[str] = mapped_column(String(OWNER_LENGTH))  # the name of the key that submitted
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


class SearchJob(Base):
    """A completed job whose timeline is in the search index: written in the transaction
    that writes its entries, so the backfill of jobs completed before the index existed
    knows which are done, and indexing a job twice is refused by the key."""

    __tablename__ = "search_jobs"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SearchText(Base):
    """One text segment of a completed job's timeline, with its folded text (case folded,
    every space removed: what a search compares). On PostgreSQL a pg_trgm GIN index on
    `folded` finds candidates; on DuckDB the search_trigrams table does."""

    __tablename__ = "search_text"
    __table_args__ = (Index("ix_search_text_job_id_seq", "job_id", "seq", unique=True),)

    entry_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False
    )  # from SEARCH_ENTRY_IDS
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(Integer)  # its place in the job's timeline
    text: Mapped[str] = mapped_column(Text)
    folded: Mapped[str] = mapped_column(Text)
    start_s: Mapped[float] = mapped_column(Double)
    end_s: Mapped[float] = mapped_column(Double)
    confidence: Mapped[float] = mapped_column(Double)


class SearchObject(Base):
    """One object track of a completed job's timeline; class_folded is its class name
    case folded (what `kind=object` and `with=` compare)."""

    __tablename__ = "search_objects"
    __table_args__ = (Index("ix_search_objects_class_job", "class_folded", "job_id", "start_s"),)

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # its place in the timeline
    class_name: Mapped[str] = mapped_column(Text)
    class_folded: Mapped[str] = mapped_column(Text)
    start_s: Mapped[float] = mapped_column(Double)
    end_s: Mapped[float] = mapped_column(Double)
    confidence: Mapped[float] = mapped_column(Double)


class SearchTrigram(Base):
    """DuckDB only: each distinct three-character piece of a text segment's folded text.

    DuckDB has no trigram index; a search counts the pieces a segment shares with the
    query here. PostgreSQL uses pg_trgm's GIN index on search_text.folded instead, so the
    migration creates this table on DuckDB only. The ORM needs a key, so the mapping names
    (gram, entry_id); the table itself has neither key nor index: it is scanned (one
    narrow column, in parallel), and the search thread keeps it sorted by gram so that the
    scan skips most row groups.
    """

    __tablename__ = "search_trigrams"

    gram: Mapped[str] = mapped_column(String(3), primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class ApiKey(Base):
    """A named API key: its SHA-256 digest (never the key), its role, and when it was last
    used (written at most once a minute). A revoked key keeps its row, so its name, which
    its jobs still carry as their owner, is never given to another key."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_digest", "digest", unique=True),)

    name: Mapped[str] = mapped_column(String(OWNER_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the key
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QueueOwner(Base):
    """When each owner's job was last claimed: the fair claim serves the owner whose last
    claim is oldest. A job's create writes its owner's row if it has none, as never served
    (1970); an owner without a row is served first too."""

    __tablename__ = "queue_owners"
    __table_args__ = (Index("ix_queue_owners_last_claimed_at", "last_claimed_at", "owner"),)

    owner: Mapped[str] = mapped_column(String(OWNER_LENGTH), primary_key=True)
    last_claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
