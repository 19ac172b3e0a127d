"""The options a client can set on a job, validated once at submit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobOptions(BaseModel):
    """How a job samples its video: every frame_stride-th frame, at most max_frames frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_stride: int = Field(default=1, ge=1, description="Analyse every Nth frame.")
    max_frames: int | None = Field(default=None, ge=1, description="Analyse at most N frames.")

    def to_json(self) -> dict[str, Any]:
        """The options as stored with the job (stable keys, no unset extras)."""
        return self.model_dump(mode="json")
