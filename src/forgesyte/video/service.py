"""VideoFilePipelineService: decode an MP4 with OpenCV and run a pipeline on sampled frames."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import Frame

TIMESTAMP_DIGITS = 6
FPS_DIGITS = 6
TRUNCATION_TOLERANCE = 0.01  # fraction of the declared frame count that may be missing


class VideoDecodeError(Exception):
    """The video cannot be decoded, has no frames, or ends before its declared length."""


class FrameAnalyser(Protocol):
    """Anything that turns one frame into its output nodes' outputs (a PipelineRunner)."""

    def run(self, frame: Frame) -> dict[str, Any]:
        """Analyse one frame."""


ProgressCallback = Callable[[int, int], None]
"""Called with (frames analysed so far, frames the job will analyse)."""

FrameCallback = Callable[["FrameResult"], None]
"""Called with each analysed frame's result, in frame order, as soon as it is known."""


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


class FrameSelector:
    """Decides, frame by frame, which frames a job analyses."""

    def __init__(self, sampling: SamplingOptions, fps: float) -> None:
        self._sampling, self._fps = sampling, fps
        self._stride = sampling.frame_stride
        self._rate = sampling.sample_fps / fps if sampling.sample_fps is not None else None
        self._last_slot = -1

    def wants(self, frame_index: int) -> bool:
        """Whether this frame is analysed (call once per frame, in order)."""
        if self._rate is None:
            return frame_index % self._stride == 0
        if self._rate >= 1.0:
            return True
        # slot k covers [k / sample_fps, (k + 1) / sample_fps) seconds; the epsilon keeps
        # frames that sit exactly on a slot boundary in that slot despite float rounding
        slot = math.floor(frame_index * self._rate + 1e-9)
        if slot == self._last_slot:
            return False
        self._last_slot = slot
        return True

    def count(self, frame_count: int) -> int:
        """How many of frame_count frames this selector picks."""
        if self._rate is None:
            return math.ceil(frame_count / self._stride)
        fresh = FrameSelector(self._sampling, self._fps)
        return sum(1 for index in range(frame_count) if fresh.wants(index))


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
        """JSON-ready entry of the results list."""
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

    def to_json(self) -> dict[str, Any]:
        """JSON-ready results document body."""
        return {
            "video": self.video.to_json(),
            "frames_analysed": len(self.frames),
            "results": [frame.to_json() for frame in self.frames],
        }


@contextmanager
def open_capture(path: Path) -> Iterator[cv2.VideoCapture]:
    """Open a video file with OpenCV's FFmpeg backend; always released."""
    if not path.is_file():
        raise VideoDecodeError(f"video file not found: {path.name}")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise VideoDecodeError("the file could not be opened as a video (corrupt or not MP4)")
        yield capture
    finally:
        capture.release()


def _info(capture: cv2.VideoCapture) -> VideoInfo:
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if not math.isfinite(fps) or fps <= 0:
        raise VideoDecodeError("the video declares no frame rate (corrupt or not a video)")
    if width <= 0 or height <= 0:
        raise VideoDecodeError("the video has no decodable video track")
    return VideoInfo(frame_count=max(count, 0), fps=fps, width=width, height=height)


def probe_video(path: Path) -> VideoInfo:
    """Read a video's metadata without decoding its frames."""
    with open_capture(path) as capture:
        return _info(capture)


def planned_frame_count(info: VideoInfo, sampling: SamplingOptions) -> int:
    """How many frames a job will analyse, from the declared frame count."""
    planned = FrameSelector(sampling, info.fps).count(info.frame_count) if info.frame_count else 0
    if sampling.max_frames is not None:
        planned = min(planned, sampling.max_frames) if planned else sampling.max_frames
    return planned


class VideoFilePipelineService:
    """Runs a frame analyser on the sampled frames of a video file, in frame order."""

    def __init__(self, analyser: FrameAnalyser) -> None:
        self._analyser = analyser

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
    ) -> VideoSummary:
        """Decode the video and analyse every frame_stride-th frame, up to max_frames.

        Each analysed frame's result goes to on_frame as soon as it is known, in frame
        order; nothing is kept here, so memory does not grow with the video's length.
        Skipped frames are grabbed but never converted to images. Raises VideoDecodeError
        when the file cannot be decoded, yields no frame, or stops well before the frame
        count its container declares (a truncated file).
        """
        with open_capture(path) as capture:
            info = _info(capture)
            planned = planned_frame_count(info, sampling)
            selector = FrameSelector(sampling, info.fps)
            analysed = 0
            frame_index = -1
            decoded = 0
            reference: tuple[int, npt.NDArray[np.int16], dict[str, Any]] | None = None
            while sampling.max_frames is None or analysed < sampling.max_frames:
                if not capture.grab():
                    break
                frame_index += 1
                decoded += 1
                if not selector.wants(frame_index):
                    continue  # skipped frames are never converted to images
                ok, decoded_frame = capture.retrieve()
                if not ok or decoded_frame is None:
                    raise VideoDecodeError(f"frame {frame_index} could not be decoded")
                frame = cast(Frame, decoded_frame)
                timestamp_s = round(frame_index / info.fps, TIMESTAMP_DIGITS)
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
                    on_progress(analysed, max(planned, analysed))
        if not analysed:
            raise VideoDecodeError("the video yielded no decodable frames")
        reached_cap = sampling.max_frames is not None and analysed >= sampling.max_frames
        missing = info.frame_count - decoded
        if not reached_cap and missing > max(1, int(info.frame_count * TRUNCATION_TOLERANCE)):
            raise VideoDecodeError(
                f"the video stopped after {decoded} of its {info.frame_count} declared frames "
                "(truncated or corrupt)"
            )
        return VideoSummary(video=info, frames_analysed=analysed)
