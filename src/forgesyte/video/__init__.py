"""Video files: open an MP4, sample its frames, run a pipeline on each, aggregate results."""

from forgesyte.video.service import (
    FrameResult,
    SamplingOptions,
    VideoDecodeError,
    VideoFilePipelineService,
    VideoInfo,
    VideoResults,
    probe_video,
)

__all__ = [
    "FrameResult",
    "SamplingOptions",
    "VideoDecodeError",
    "VideoFilePipelineService",
    "VideoInfo",
    "VideoResults",
    "probe_video",
]
