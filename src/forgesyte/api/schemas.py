"""Response schemas of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobRecord
from forgesyte.results.media import Playback


class JobCreatedOut(BaseModel):
    """The answer to a submit."""

    job_id: UUID


class JobStatusOut(BaseModel):
    """A job's state and progress."""

    job_id: UUID
    status: JobStatus
    progress: float = Field(description="Percent of the frames to analyse, 0-100.")
    created_at: datetime
    updated_at: datetime
    error_message: str | None = Field(default=None, description="Present when failed.")
    playable: bool = Field(
        default=False,
        description="Whether GET /v1/video/source/{job_id} has a video a browser plays: "
        "true once a completed job's upload (H.264) or its playable copy is stored.",
    )
    filename: str | None = Field(
        default=None,
        description="The uploaded file's base name (control characters removed, at most 255"
        " characters); absent when the upload named none.",
    )

    @classmethod
    def of(cls, job: JobRecord) -> JobStatusOut:
        """The status answer for a job snapshot (progress 100 once completed; the error
        only of a failed job; playable once completed with something to play)."""
        completed = job.status is JobStatus.COMPLETED
        return cls(
            job_id=job.job_id,
            status=job.status,
            progress=100.0 if completed else job.progress,
            created_at=job.created_at,
            updated_at=job.updated_at,
            error_message=job.error_message if job.status is JobStatus.FAILED else None,
            playable=completed and Playback.from_summary(job.result_summary) is not None,
            filename=job.filename,
        )


class FrameResultOut(BaseModel):
    """One analysed frame."""

    frame_index: int
    timestamp_s: float
    result: dict[str, Any]
    reused_from: int | None = Field(
        default=None, description="With skip_unchanged: the frame whose result this reuses."
    )


class JobResultsOut(BaseModel):
    """A completed job's results, one entry per analysed frame in frame order."""

    job_id: UUID
    pipeline_id: str
    options: dict[str, Any]
    video: dict[str, Any]
    frames_analysed: int = Field(description="All analysed frames, whatever the page.")
    next_offset: int | None = Field(
        default=None, description="The next page's offset; null at the end or without limit."
    )
    results: list[FrameResultOut]
    created_at: datetime
    updated_at: datetime


class SpanOut(BaseModel):
    """Analysed frames from the first to the last (what every timeline entry spans)."""

    start_s: float
    end_s: float
    first_frame: int
    last_frame: int


class TextSegmentOut(SpanOut):
    """One line of text on screen over consecutive analysed frames."""

    text: str
    frames: int = Field(description="Analysed frames that saw the line.")
    confidence: float = Field(description="Of the best reading.")
    box: list[list[float]] = Field(description="The best reading's four corners, pixels.")


class ObjectTrackOut(SpanOut):
    """One object followed across analysed frames."""

    track_id: int
    class_name: str
    frames: int
    confidence: float = Field(description="The best detection's confidence.")
    box: list[float] = Field(description="xyxy at the best confidence, pixels.")


class ShotOut(SpanOut):
    """One shot, from a cut (or a transition's middle) to the next: every frame of the
    video, not only the analysed ones."""

    index: int = Field(description="0, 1, 2... in order.")


class TimelineOut(BaseModel):
    """What happened in the video: text segments and object tracks, sorted by start_s, and
    the shots, covering the video end to end (empty unless submitted with detect_shots)."""

    job_id: UUID
    text: list[TextSegmentOut]
    objects: list[ObjectTrackOut]
    shots: list[ShotOut]


class PipelineNodeOut(BaseModel):
    """A pipeline node as listed by GET /v1/pipelines."""

    id: str
    plugin_type: str
    tool_type: str
    input_types: list[str]
    output_types: list[str]


class PipelineOut(BaseModel):
    """A pipeline and whether it can run here."""

    id: str
    description: str
    available: bool
    unavailable_reason: str | None
    entry_nodes: list[str]
    output_nodes: list[str]
    nodes: list[PipelineNodeOut]
    edges: list[dict[str, str]]


class PipelinesOut(BaseModel):
    """Every pipeline, and the files and plugins that were refused."""

    pipelines: list[PipelineOut]
    refused_pipelines: dict[str, str]
    broken_plugins: dict[str, str]


class SearchMatchOut(BaseModel):
    """A moment that matched: a text segment (`text`) or an object track (`class_name`)."""

    job_id: UUID
    filename: str | None = Field(description="The job's uploaded file's base name, or null.")
    kind: str = Field(description="text or object")
    text: str | None = Field(default=None, description="The segment's text (kind text).")
    class_name: str | None = Field(default=None, description="The track's class (kind object).")
    start_s: float
    end_s: float
    confidence: float = Field(description="Of the best reading or detection.")
    score: float = Field(description="In (0, 1]: 1 for an exact match, less per OCR error.")


class SearchOut(BaseModel):
    """One page of matches, best first; follow next_cursor (null on the last page)."""

    matches: list[SearchMatchOut]
    next_cursor: str | None
