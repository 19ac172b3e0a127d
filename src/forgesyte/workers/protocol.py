"""What a worker and its analysis child say to each other over their pipe: one class per kind.

Parent to child: `AnalysisRequest` (analyse one video), `MediaRequest` (make what the page
shows of a job analysed: thumbnails, each detection's track id, a playable copy),
`StopChild` (exit cleanly). Child to parent: `ChildReady` once its models are loaded, then
for each analysis any number of `Progress` messages and one `AnalysisDone` or
`AnalysisFailed` (or `SegmentsPlanned` when the request asked for a split and the video is
long enough); for each media request one `MediaDone` or `AnalysisFailed`.

Every message is a frozen dataclass (pickled by multiprocessing), so both sides match on
types, never on string tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from forgesyte.jobs.options import JobOptions
from forgesyte.results.media import PLAYBACK_FIELD, THUMBNAILS_FIELD, Playback
from forgesyte.video.service import SamplingOptions


class FailureReason(StrEnum):
    """Why an analysis ended without results."""

    VIDEO_DECODE = "video_decode"
    """The video could not be decoded."""
    UNKNOWN_PIPELINE = "unknown_pipeline"
    """No pipeline with the job's id exists in the child's catalog."""
    PIPELINE_UNAVAILABLE = "pipeline_unavailable"
    """The pipeline exists but one of its tools cannot run here (a missing model)."""
    PLUGIN_ERROR = "plugin_error"
    """A plugin's tool raised while loading or analysing a frame."""
    INTERNAL = "internal"
    """Anything else that went wrong inside the child."""
    CHILD_START = "child_start"
    """The analysis child could not be started (the job is not at fault)."""
    STORAGE = "storage"
    """The job's video could not be read from storage (missing, or unreachable after retries)."""
    CRASHED = "crashed"
    """The child died while working (a signal, a native crash)."""
    TIMED_OUT = "timed_out"
    """The analysis ran past the job timeout and the child was killed."""
    MEMORY_CAP = "memory_cap"
    """The child went over its memory cap and was killed."""


@dataclass(frozen=True)
class AnalysisRequest:
    """Parent to child: analyse one job's video with one pipeline."""

    pipeline_id: str
    video_path: str
    options: dict[str, Any] = field(default_factory=dict)
    scratch_dir: str = ""  # where the child writes results.jsonl and timeline.json
    # a job's whole video: answer SegmentsPlanned instead when it cuts into several spans
    # of about this many selected frames (None: never split)
    segment_frames: int | None = None
    # with segment_frames: a job too short to cut at keyframes may be cut at any frame
    # into this many parts (its worker and the idle workers of its process)
    split_parts: int = 1
    # a job split already (its segments are stored): answer SegmentsPlanned with the
    # video's metadata and no spans, whatever the plan would be now
    known_split: bool = False
    # one segment of a split job: only the selected frames with first <= index < end
    frame_span: tuple[int, int] | None = None
    # a split job's coordinator: the whole video's shots only, no frame analysed (the
    # results file is empty, the timeline file holds the shots)
    shots_only: bool = False

    @property
    def finds_shots(self) -> bool:
        """Whether the child finds the video's shots: a whole job that asked for them
        (detect_shots), or a coordinator's shots_only request; never a segment."""
        wanted = self.shots_only or JobOptions.from_stored(self.options).detect_shots
        return wanted and self.frame_span is None

    def sampling(self) -> SamplingOptions:
        """The job's stored options (read by JobOptions) as the video layer takes them."""
        options = JobOptions.from_stored(self.options)
        return SamplingOptions(
            frame_stride=options.frame_stride,
            max_frames=options.max_frames,
            sample_fps=options.sample_fps,
            skip_unchanged=options.skip_unchanged,
        )


@dataclass(frozen=True)
class StopChild:
    """Parent to child: finish and exit."""


@dataclass(frozen=True)
class ChildReady:
    """Child to parent: plugins and preloaded pipelines are loaded; requests are welcome."""

    pid: int


@dataclass(frozen=True)
class Progress:
    """Child to parent: `analysed` of `planned` frames are done (throttled by the child)."""

    analysed: int
    planned: int


@dataclass(frozen=True)
class AnalysisDone:
    """Child to parent: the analysis finished; its local results and timeline files.

    The child writes them in the request's scratch folder as it goes; the parent uploads
    them (the child has no storage credentials).
    """

    results_path: str
    timeline_path: str
    video: dict[str, Any]
    frames_analysed: int

    def summary(self) -> dict[str, Any]:
        """The small summary kept on the job row."""
        return {"frames_analysed": self.frames_analysed, "video": self.video}


@dataclass(frozen=True)
class SegmentsPlanned:
    """Child to parent: the job's video is long enough to split; nothing was analysed.

    spans: (first_frame, end_frame, frames) of each segment, in frame order (none when the
    request said the job was split already).
    """

    spans: list[tuple[int, int, int]]
    video: dict[str, Any]


@dataclass(frozen=True)
class AnalysisFailed:
    """The analysis ended without results: why, and a message for the job's error."""

    reason: FailureReason
    message: str
    detail: str = ""  # the full cause (exception text, traceback) for the log, never the job


@dataclass(frozen=True)
class MediaRequest:
    """Parent to child: make a job's media from its video and its (merged) results files.

    The child writes them in scratch_dir: the thumbnails pack, the track ids of each
    frame's detections and, when the upload is not browser-playable H.264, a copy that is.
    """

    video_path: str
    results_path: str
    timeline_path: str
    scratch_dir: str


@dataclass(frozen=True)
class MediaDone:
    """Child to parent: a job's media, as local files for the parent to store.

    codec: the upload's video codec; copy_path: the playable copy (None when the upload
    plays as it is, or when no copy could be made: then `playable` is False and `note`
    says why); thumbnails: how many of each kind the pack indexes (`ThumbnailCounts`).
    """

    tracks_path: str
    thumbnails_path: str
    thumbnails: dict[str, int]
    codec: str
    playable: bool
    copy_path: str | None = None
    note: str = ""

    def summary(self) -> dict[str, Any]:
        """What the job row's summary keeps of it: what plays, and the thumbnails' counts."""
        summary: dict[str, Any] = {THUMBNAILS_FIELD: dict(self.thumbnails)}
        if self.playable:
            summary[PLAYBACK_FIELD] = Playback(self.codec, self.copy_path is not None).to_json()
        return summary


@dataclass(frozen=True)
class AnalysisInterrupted:
    """The parent stopped the analysis (shutdown, lost lease): the job is not at fault."""


ChildRequest: TypeAlias = AnalysisRequest | MediaRequest
"""What the parent asks a child to do."""

ParentMessage: TypeAlias = ChildRequest | StopChild
"""What the parent sends."""

ChildMessage: TypeAlias = (
    ChildReady | Progress | AnalysisDone | AnalysisFailed | SegmentsPlanned | MediaDone
)
"""What the child sends."""

AnalysisOutcome: TypeAlias = AnalysisDone | AnalysisFailed | AnalysisInterrupted | SegmentsPlanned
"""How one analysis ended, as the executor tells the worker."""
