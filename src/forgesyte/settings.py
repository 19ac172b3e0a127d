"""One Settings object for the whole server, read from FORGESYTE_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    job_timeout_s: float = Field(default=3600.0, gt=0)
    child_memory_mb: int | None = Field(default=None, ge=64)
    max_frame_pixels: int = Field(
        default=8192 * 4320,
        ge=1,
        description="A video whose frames have more pixels than this fails its job.",
    )
    poll_interval_s: float = Field(default=0.2, gt=0)
    analysis_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads one analysis child may use for inference and image work; "
        "default: cores // workers, at least 1.",
    )
    progress_interval_s: float = Field(default=0.25, gt=0)
    status_cache_s: float = Field(
        default=0.2,
        ge=0,
        description="How long the API may serve a pending or running job's status from memory.",
    )
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    pipelines_dir: Path | None = None
    yolo_model: Path | None = None
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    log_file: str | None = Field(
        default=None,
        description="File that also receives the JSON log lines; default: data_dir/forgesyte.log; "
        "empty: stderr only.",
    )

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


def analysis_threads(configured: int | None, workers: int) -> int:
    """Threads per analysis child: the configured number, else an equal share of the cores.

    With as many workers as cores each child gets one thread, so jobs running side by side
    do not fight over the cores (ONNX Runtime, OpenCV and OpenBLAS would each start a
    thread per core in every child otherwise).
    """
    if configured is not None:
        return configured
    return max(1, (os.cpu_count() or 1) // max(1, workers))
