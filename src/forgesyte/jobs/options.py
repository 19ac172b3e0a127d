"""The options a client can set on a job, validated once at submit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SAMPLE_FPS = 1000.0


class JobOptions(BaseModel):
    """Which frames a job analyses, and whether it may reuse results of unchanged frames.

    frame_stride and sample_fps are two ways to thin the frames; a job uses one of them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_stride: int = Field(default=1, ge=1, description="Analyse every Nth frame.")
    max_frames: int | None = Field(default=None, ge=1, description="Analyse at most N frames.")
    sample_fps: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SAMPLE_FPS,
        allow_inf_nan=False,
        description="Analyse at most N frames per second of video, whatever its frame rate.",
    )
    skip_unchanged: bool = Field(
        default=False,
        description="Reuse the last analysed frame's result for frames that barely differ.",
    )

    @model_validator(mode="after")
    def _one_way_to_thin(self) -> JobOptions:
        if self.sample_fps is not None and self.frame_stride != 1:
            raise ValueError(
                "frame_stride and sample_fps cannot be combined: choose one way to sample frames"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        """The options as stored with the job (every field, stable keys)."""
        return self.model_dump(mode="json")
