"""VideoFilePipelineService: decode an MP4's sampled frames and run a pipeline on each."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av.video
import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import Frame
from forgesyte.video.decoder import (
    DEFAULT_MAX_FRAME_PIXELS,
    SLOT_EPSILON,
    FrameTooLargeError,
    PacketIndex,
    VideoDecodeError,
    check_frame_size,
    decode_planned_frames,
    open_mp4,
    plan_decoding,
    read_packet_index,
    video_stream,
)

__all__ = [
    "DEFAULT_MAX_FRAME_PIXELS",
    "FrameAnalyser",
    "FrameResult",
    "FrameTooLargeError",
    "SamplingOptions",
    "VideoDecodeError",
    "VideoFilePipelineService",
    "VideoInfo",
    "VideoResults",
    "VideoSummary",
    "probe_video",
    "select_frames",
]

TIMESTAMP_DIGITS = 6
FPS_DIGITS = 6
MAX_REPORTED_FPS = 1000.0  # a declared rate above this is not believed; the packets' is used


class FrameAnalyser(Protocol):
    """Anything that turns one frame into its output nodes' outputs (a PipelineRunner)."""

    def run(self, frame: Frame) -> dict[str, Any]:
        """Analyse one frame."""


ProgressCallback = Callable[[int, int], None]
"""Called with (frames analysed so far, frames the job will analyse)."""

FrameCallback = Callable[["FrameResult"], None]
"""Called with each analysed frame's result, in frame order, as soon as it is known."""

VideoCallback = Callable[["VideoInfo"], None]
"""Called once with the video's metadata, before the first frame's result."""


@dataclass(frozen=True)
class SamplingOptions:
    """Which frames to analyse, and whether unchanged frames may reuse a result.

    frame_stride: every Nth frame. sample_fps: at most N frames per second of video (the
    first frame of each 1/N-second slot). max_frames: at most N analysed frames in all.
    skip_unchanged: a sampled frame whose 160x90 grey thumbnail has at most
    UNCHANGED_MAX_PIXELS pixels more than CHANGED_LEVELS grey levels away from the last
    analysed frame's reuses that frame's result.
    """

    frame_stride: int = 1
    max_frames: int | None = None
    sample_fps: float | None = None
    skip_unchanged: bool = False

    def __post_init__(self) -> None:
        if self.frame_stride < 1:
            raise ValueError("frame_stride must be >= 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        if self.sample_fps is not None:
            if not math.isfinite(self.sample_fps) or self.sample_fps <= 0:
                raise ValueError("sample_fps must be a positive number")
            if self.frame_stride != 1:
                raise ValueError("frame_stride and sample_fps cannot be combined")


def select_frames(index: PacketIndex, sampling: SamplingOptions) -> list[int]:
    """The frame indices a job analyses, in order, from the frames the file really holds.

    frame_stride keeps every Nth frame; sample_fps keeps the first frame of each
    1/sample_fps-second slot of presentation time (so variable frame rates sample
    evenly in time); max_frames keeps the first N of those.
    """
    count = index.frame_count
    if sampling.sample_fps is None:
        stop = count
        if sampling.max_frames is not None:
            stop = min(count, sampling.max_frames * sampling.frame_stride)
        return list(range(0, stop, sampling.frame_stride))
    slots = np.floor(index.seconds() * sampling.sample_fps + SLOT_EPSILON).astype(np.int64)
    firsts = np.flatnonzero(np.diff(slots, prepend=np.int64(-1)) > 0)
    if sampling.max_frames is not None:
        firsts = firsts[: sampling.max_frames]
    return [int(i) for i in firsts]


THUMBNAIL_WH = (160, 90)  # the grey thumbnail compared between frames
CHANGED_LEVELS = 24  # a thumbnail pixel changed if its grey level moved by more than this
UNCHANGED_MAX_PIXELS = 2  # a frame is unchanged if at most this many thumbnail pixels changed


def thumbnail(frame: Frame) -> npt.NDArray[np.int16]:
    """The frame downscaled (area average) to a small grey image, for a cheap change measure."""
    small = cv2.resize(frame, THUMBNAIL_WH, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16)


def changed_pixels(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> int:
    """How many thumbnail pixels differ by more than CHANGED_LEVELS grey levels.

    A count of strongly changed pixels, not a mean: a scoreboard digit that changes moves
    a few dozen pixels a lot while leaving the frame's mean almost where it was, and
    compression noise moves many pixels a little.
    """
    return int(np.count_nonzero(np.abs(a - b) > CHANGED_LEVELS))


@dataclass(frozen=True)
class VideoInfo:
    """What the container says of a video."""

    frame_count: int
    fps: float
    width: int
    height: int

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """Width and height in pixels."""
        return (self.width, self.height)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready metadata."""
        return {
            "frame_count": self.frame_count,
            "fps": round(self.fps, FPS_DIGITS),
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class FrameResult:
    """The pipeline's output for one analysed frame (or reused from an unchanged one)."""

    frame_index: int
    timestamp_s: float
    result: dict[str, Any]
    reused_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry of the results list; typed values in it become JSON when it is written."""
        entry: dict[str, Any] = {
            "frame_index": self.frame_index,
            "timestamp_s": self.timestamp_s,
            "result": self.result,
        }
        if self.reused_from is not None:
            entry["reused_from"] = self.reused_from
        return entry


@dataclass(frozen=True)
class VideoSummary:
    """What a streamed analysis ends with: the video's metadata and how many frames it gave."""

    video: VideoInfo
    frames_analysed: int


@dataclass(frozen=True)
class VideoResults:
    """Every analysed frame's result, in frame order, and the video's metadata."""

    video: VideoInfo
    frames: list[FrameResult]


def probe_video(path: Path) -> VideoInfo:
    """Read a video's metadata and packet index, without decoding any frame."""
    with open_mp4(path) as container:
        stream = video_stream(container)
        return _info(stream, read_packet_index(container, stream))


def _info(stream: av.video.VideoStream, index: PacketIndex) -> VideoInfo:
    """The video's metadata: size from the container, frames and rate from its packets."""
    declared = stream.average_rate or stream.guessed_rate
    fps = float(declared) if declared and 0 < float(declared) < MAX_REPORTED_FPS else 0.0
    return VideoInfo(
        frame_count=index.frame_count,
        fps=fps or index.mean_fps(),
        width=stream.codec_context.width,
        height=stream.codec_context.height,
    )


class VideoFilePipelineService:
    """Runs a frame analyser on the sampled frames of a video file, in frame order."""

    def __init__(
        self,
        analyser: FrameAnalyser,
        *,
        max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
        decode_threads: int = 1,
    ) -> None:
        """decode_threads: the decoder's own threads (see `decode_planned_frames`); more
        than 1 only when the analysis leaves cores idle."""
        if decode_threads < 1:
            raise ValueError("decode_threads must be >= 1")
        self._analyser = analyser
        self._max_frame_pixels = max_frame_pixels
        self._decode_threads = decode_threads

    def run(
        self,
        path: Path,
        sampling: SamplingOptions,
        on_progress: ProgressCallback | None = None,
    ) -> VideoResults:
        """Analyse the video and keep every frame's result in memory (short videos, tests).

        A job streams its frames instead: see `analyse`.
        """
        frames: list[FrameResult] = []
        summary = self.analyse(path, sampling, frames.append, on_progress)
        return VideoResults(video=summary.video, frames=frames)

    def analyse(
        self,
        path: Path,
        sampling: SamplingOptions,
        on_frame: FrameCallback,
        on_progress: ProgressCallback | None = None,
        frame_span: tuple[int, int] | None = None,
        on_video: VideoCallback | None = None,
    ) -> VideoSummary:
        """Decode the frames the sampling options select and analyse each, in frame order.

        The file is opened as MP4 only and its packets are indexed (read, not decoded)
        first: the frames to analyse, their indices and timestamps come from what the
        file holds, never from a count its header claims. Only the packets those frames
        need are decoded. With frame_span (first, end), only the selected frames with
        first <= frame_index < end are analysed (one segment of a split job). on_video
        gets the video's metadata once it is read, before any frame (the timeline needs
        the frame size); each analysed frame's result goes to on_frame as soon as it is
        known; nothing is kept here. Raises FrameTooLargeError for frames over the
        pixel limit (checked before decoding and on every decoded frame) and
        VideoDecodeError when the file cannot be decoded, yields no frame, or stops
        well before the packets its container declares (a truncated file).
        """
        with open_mp4(path, self._max_frame_pixels) as container:
            stream = video_stream(container)
            check_frame_size(
                stream.codec_context.width, stream.codec_context.height, self._max_frame_pixels
            )
            index = read_packet_index(container, stream)
            info = _info(stream, index)
            if not index.frame_count:
                raise VideoDecodeError("the video yielded no decodable frames")
            selected = select_frames(index, sampling)
            if sampling.max_frames is None or len(selected) < sampling.max_frames:
                index.check_complete()  # a capped job may end before the damage
            if frame_span is not None:
                selected = [i for i in selected if frame_span[0] <= i < frame_span[1]]
        if on_video is not None:
            on_video(info)
        plan = plan_decoding(index, selected)
        analysed = 0
        reference: tuple[int, npt.NDArray[np.int16], dict[str, Any]] | None = None
        frames = decode_planned_frames(
            path, plan, self._max_frame_pixels, threads=self._decode_threads
        )
        for frame_index, image in frames:
            frame: Frame = image
            timestamp_s = round(float(index.timestamp_s(frame_index)), TIMESTAMP_DIGITS)
            small = thumbnail(frame) if sampling.skip_unchanged else None
            if (
                small is not None
                and reference is not None
                and changed_pixels(small, reference[1]) <= UNCHANGED_MAX_PIXELS
            ):
                on_frame(FrameResult(frame_index, timestamp_s, reference[2], reference[0]))
            else:
                result = self._analyser.run(frame)
                on_frame(FrameResult(frame_index, timestamp_s, result))
                if small is not None:
                    reference = (frame_index, small, result)
            analysed += 1
            if on_progress is not None:
                on_progress(analysed, len(selected))
            del frame, image  # freed before the next is decoded: its memory is reused
        if not analysed:
            raise VideoDecodeError("the video yielded no decodable frames")
        return VideoSummary(video=info, frames_analysed=analysed)
