"""Video files: open an MP4 (and nothing else), decode the frames a job samples, analyse each."""

from forgesyte.video.service import (
    DEFAULT_MAX_FRAME_PIXELS,
    FrameResult,
    FrameTooLargeError,
    SamplingOptions,
    VideoDecodeError,
    VideoFilePipelineService,
    VideoInfo,
    VideoResults,
    probe_video,
)

__all__ = [
    "DEFAULT_MAX_FRAME_PIXELS",
    "FrameResult",
    "FrameTooLargeError",
    "SamplingOptions",
    "VideoDecodeError",
    "VideoFilePipelineService",
    "VideoInfo",
    "VideoResults",
    "probe_video",
]
