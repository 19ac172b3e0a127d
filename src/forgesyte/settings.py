"""One Settings object for the whole server, read from FORGESYTE_* environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration; every field can be set as FORGESYTE_<FIELD_NAME>."""

    model_config = SettingsConfigDict(env_prefix="FORGESYTE_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of the embedded defaults.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a DuckDB file under data_dir."
    )
    storage_url: str | None = Field(
        default=None, description="file:///path or s3://bucket/prefix; default: data_dir/storage."
    )
    s3_endpoint_url: str | None = None
    max_upload_mb: float = Field(default=512.0, gt=0)
    upload_timeout_s: float = Field(
        default=600.0, gt=0, description="Deadline for a whole upload; past it: 408."
    )
    max_concurrent_uploads: int = Field(
        default=8, ge=1, description="Uploads received at once; one more gets 429."
    )
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    job_timeout_s: float = Field(default=3600.0, gt=0)
    outage_tolerance_s: float = Field(
        default=300.0,
        gt=0,
        description="A job fails for unreachable storage or an unreachable database only "
        "once the fault has lasted this many seconds; until then its worker waits it out.",
    )
    child_memory_mb: int | None = Field(
        default=None,
        ge=64,
        description="Memory cap of one analysis child in MiB; default: "
        "child_memory_fraction of the machine's memory / workers, at least 256.",
    )
    child_memory_fraction: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Share of the machine's memory the analysis children may use together "
        "when child_memory_mb is not set.",
    )
    child_env_keep: str = Field(
        default="",
        description="Comma-separated names of extra environment variables analysis children "
        "get (plugin settings); never secrets.",
    )
    preload_pipelines: str = Field(
        default="ocr_only",
        description="Comma-separated pipelines each analysis child loads when it starts, so "
        "their first job does not wait for models; empty: every pipeline loads at its "
        "first job.",
    )
    max_frame_pixels: int = Field(
        default=8192 * 4320,
        ge=1,
        description="A video whose frames have more pixels than this fails its job.",
    )
    poll_interval_s: float = Field(default=0.2, gt=0)
    analysis_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads every analysis child uses for inference and image work; "
        "default: shared, a child alone takes the idle cores (up to 4 threads) and drops "
        "back to cores // workers (at least 1) as the other workers' children start.",
    )
    progress_interval_s: float = Field(default=0.25, gt=0)
    segment_frames: int = Field(
        default=30,
        ge=0,
        description="A job of at least 1.5x this many analysed frames is cut at keyframes "
        "into segments of about this many, analysed by idle workers side by side; 0: never.",
    )
    status_cache_s: float = Field(
        default=0.2,
        ge=0,
        description="How long the API may serve a pending or running job's status from memory.",
    )
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    pipelines_dir: Path | None = None
    yolo_model: Path | None = None
    api_key: str | None = None
    max_pending_per_key: int = Field(
        default=100,
        ge=1,
        description="Pending jobs a user key may have at once; one more is a 429 (admin: no cap).",
    )
    signing_secret: str | None = Field(
        default=None,
        min_length=16,
        description="Key of the HMAC that signs links to a job's video (source-url); "
        "default: derived from api_key. Set the same on every API replica.",
    )
    cors_origins: list[str] = Field(default_factory=list)
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Delete finished jobs (row, video, results) this many days after they "
        "ended; fractions allowed; default: keep forever.",
    )
    sweep_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between the periodic sweeps (retention, orphaned storage objects).",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="HMAC-SHA256 key of the webhook signatures; submits with a callback_url "
        "are refused while it is unset.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Delivery attempts of one webhook before it is abandoned."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow callback URLs that resolve to loopback, private or link-local "
        "addresses.",
    )
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, description="Connect and answer timeout of one webhook attempt."
    )
    log_file: str | None = Field(
        default=None,
        description="File that also receives the JSON log lines; default: data_dir/forgesyte.log; "
        "empty: stderr only.",
    )

    @field_validator("child_env_keep")
    @classmethod
    def _check_env_names(cls, value: str) -> str:
        """Every name in child_env_keep is an environment variable name."""
        for name in comma_separated(value):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"not an environment variable name: {name!r}")
        return value

    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one or the embedded DuckDB file."""
        if self.database_url:
            return self.database_url
        return f"duckdb:///{(self.data_dir / 'forgesyte.duckdb').resolve()}"

    def resolved_storage_url(self) -> str:
        """The storage URL in force: the configured one or the embedded local folder."""
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'storage').resolve()}"

    def resolved_log_file(self) -> Path | None:
        """The log file in force: the configured one, data_dir/forgesyte.log, or None (off)."""
        if self.log_file is None:
            return (self.data_dir / "forgesyte.log").resolve()
        return Path(self.log_file).resolve() if self.log_file else None

    @property
    def max_upload_bytes(self) -> int:
        """The upload size limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)


def default_worker_count() -> int:
    """The number of worker loops `serve` runs when not told: one per core."""
    return os.cpu_count() or 1


def comma_separated(text: str) -> tuple[str, ...]:
    """The names in a comma-separated setting, without blanks."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


CHILD_MEMORY_FLOOR_MB = 256  # the derived memory cap of an analysis child is never below this


def machine_memory_mb() -> int:
    """The machine's memory in MiB (MemTotal), 0 when it cannot be read."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) >> 20
    except (ValueError, OSError):
        return 0


def child_memory_cap_mb(configured: int | None, fraction: float, workers: int) -> int:
    """The memory cap of one analysis child in MiB: the configured one, else derived.

    Derived: `fraction` of the machine's memory shared equally by the workers' children,
    never below CHILD_MEMORY_FLOOR_MB (so one busy machine still runs a small job).
    """
    if configured is not None:
        return configured
    share = int(machine_memory_mb() * fraction) // max(1, workers)
    return max(CHILD_MEMORY_FLOOR_MB, share)
