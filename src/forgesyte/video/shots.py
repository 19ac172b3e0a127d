"""Shots: the video cut where its picture changes for good, found on every frame, small
and grey, whatever frames a job analyses.

The measure is PySceneDetect's AdaptiveDetector's (BSD-3-Clause; Castellano): a frame's
content change (mean absolute difference from the frame before, here of luma only) is
compared with the average change of its WINDOW neighbours on each side (here leaving
out the largest, so that another cut nearby does not hide it), and a ratio of
ADAPTIVE_RATIO or more, with a change of at least MIN_CHANGE grey levels, is a cut. Fast
camera motion changes every frame a lot, so its ratio stays near 1. PySceneDetect's BBC
benchmark puts AdaptiveDetector at F1 91.6 against ContentDetector's 86.7 (defaults,
about 256 px wide frames). What is added here:

- Gradual transitions (fades, dissolves) change each frame a little, so the same test
  is also run between frames TRANSITION_SPANS_S apart, on coarse pictures (blocks of
  COARSE_BLOCK pixels, so that a slow drift of a textured picture counts little): a
  dissolve shorter than such a span looks, at that distance, like a cut among steady
  neighbours, while a steady pan or zoom changes as much at every step.
- Such a candidate must look like a transition: the frames inside it are fitted, pixel
  by pixel, as a blend of the frames before and after it plus a constant (a dissolve, a
  fade through black), within BLEND_RESIDUAL of the change; a pan or a zoom is not.
- The change must last: the pictures PERSIST_S before and after the candidate must be
  like the old and the new one, each on its side, and unlike the other. A flash, an
  object passing in front, is over by then.
- The cut is put where the frames between the two pictures split best into those like
  the old and those like the new (inside a transition, about its middle); candidates
  closer than MIN_SHOT_S, or comparing overlapping stretches, keep the strongest, and a
  fade out to a blank picture and in again is one cut, where the new picture fades in.

The `scenedetect` package was not used: its detectors work on BGR frames of its own
video manager and have no gradual-transition test; these few array operations on the
frames we already decode do the same job. Decoding: `grey_frames` decodes every frame
of an MP4, opened as `decoder.open_mp4` does, straight to a small grey picture.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import av.video.reformatter
import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.video.decoder import (
    DEFAULT_MAX_FRAME_PIXELS,
    VideoDecodeError,
    check_frame_size,
    open_mp4,
    read_packet_index,
    video_stream,
)

GreyImage = npt.NDArray[np.uint8]

SHOT_FRAME_WIDTH = 160  # pixels: the grey pictures compared (height keeps the aspect ratio)
COARSE_BLOCK = 8  # pixels: the side of the blocks a coarse picture averages (160 -> 20)
ADAPTIVE_RATIO = 3.0  # a change this many times its neighbours' average (PySceneDetect's)
WINDOW = 2  # neighbours on each side the change is compared with (PySceneDetect's)
MIN_CHANGE = 12.0  # grey levels (0-255) of mean absolute change a cut needs at least
TRANSITION_SPANS_S = (0.25, 0.5, 1.0, 2.0)  # seconds between the frames compared for fades
BLEND_RESIDUAL = 0.35  # a transition's frames fit a blend within this share of the change
PERSIST_S = 0.3  # seconds a new picture must last (a flash or a passing object does not)
STEADY_SHARE = 0.8  # either side of a cut changes less than this share of the change across
FADE_STEPS = 1  # frames from a blank run where a fade's picture is still faint:
FADE_SHARE = 0.7  # it varies less than this share of the picture's PERSIST_S further away
BLANK_STD = 8.0  # grey levels: a picture varying less is blank (a fade's black)
MIN_SHOT_S = 0.6  # seconds: the shortest shot (PySceneDetect's command line default)
TIMESTAMP_DIGITS = 6


@dataclass(frozen=True)
class Shot:
    """One shot: its frames (first to last, inclusive) and their timestamps."""

    index: int
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int

    def to_json(self) -> dict[str, Any]:
        """The timeline's shot entry: these fields."""
        return asdict(self)


Stamp = tuple[int, float]
"""A frame's (frame_index, timestamp_s)."""


@dataclass(frozen=True)
class _Cut:
    position: int  # the new shot's first frame, counted from the first frame fed
    span: tuple[int, int]  # the old and the new picture compared (positions)
    strength: float  # its adaptive ratio
    first: Stamp  # the new shot's first frame
    last: Stamp  # the old shot's last frame


def _change(a: GreyImage, b: GreyImage) -> float:
    """Mean absolute grey-level difference of two pictures."""
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size


class ShotDetector:
    """Finds the cuts in a stream of small grey frames: feed every frame in order with
    `add`, then `finish` gives the shots, covering the stream end to end.

    fps sets the frame distances of the spans, the persistence and the shortest shot.
    Memory holds two small frames, a few seconds of coarse ones (about 2 x WINDOW + 1
    times the longest span) and the cuts found.
    """

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ValueError("fps must be positive")
        self.spans = sorted({1} | {max(2, round(s * fps)) for s in TRANSITION_SPANS_S})
        self.persist = max(1, round(PERSIST_S * fps))
        self.min_shot = max(1, round(MIN_SHOT_S * fps))
        # a pair `span` apart is tested once its WINDOW later neighbours and the frame
        # `persist` after it are in
        self._delay = {span: max(WINDOW * span, self.persist) for span in self.spans}
        self._changes = {
            span: deque[float](maxlen=WINDOW * span + self._delay[span] + 1) for span in self.spans
        }
        longest = max(self.spans)
        kept = self._delay[longest] + longest + self.persist + 1
        self._fine: deque[GreyImage] = deque(maxlen=2)  # compared at span 1 only
        self._coarse: deque[GreyImage] = deque(maxlen=kept)
        self._stamps: deque[Stamp] = deque(maxlen=kept)
        self._first: Stamp | None = None
        self._count = 0  # frames fed
        self._cuts: list[_Cut] = []
        self._fades: list[tuple[int, int]] = []  # (first, last) positions of a fade's blank
        self._blank_from: int | None = None  # where the blank run going on began

    def add(self, frame_index: int, timestamp_s: float, grey: GreyImage) -> None:
        """Feed the next frame (every frame of the video, in order)."""
        if grey.ndim != 2 or min(grey.shape) < COARSE_BLOCK:
            raise ValueError(f"a grey picture at least {COARSE_BLOCK} pixels a side is needed")
        if self._fine and grey.shape != self._fine[-1].shape:
            raise ValueError(f"frame of shape {grey.shape} after {self._fine[-1].shape}")
        if self._first is None:
            self._first = (frame_index, timestamp_s)
        self._fine.append(grey)
        self._coarse.append(_coarse(grey))
        self._stamps.append((frame_index, timestamp_s))
        self._follow_blanks()
        self._count += 1
        for span in self.spans:
            if len(self._coarse) > span:
                pictures = self._pictures(span)
                self._changes[span].append(_change(pictures[-1], pictures[-1 - span]))
                self._test(span)

    def finish(self) -> list[Shot]:
        """The shots, in order, from the first frame fed to the last ([] if none was).

        The last frames are tested as if their picture went on: it is fed again for the
        look-ahead the tests need, and no cut is put among those repeats."""
        if self._first is None:
            return []
        count, last = self._count, self._stamps[-1]
        for _ in range(max(self._delay.values())):
            self.add(*last, self._fine[-1])
        kept: list[_Cut] = []
        for cut in sorted(self._cuts, key=lambda c: (-c.strength, c.position)):
            if self.min_shot <= cut.position <= count - self.min_shot and all(
                abs(cut.position - other.position) >= self.min_shot
                and (cut.span[1] <= other.span[0] or other.span[1] <= cut.span[0])
                for other in kept
            ):
                kept.append(cut)
        kept.sort(key=lambda c: c.position)
        # a fade out to a blank picture and in again is one transition: one cut, the
        # fade-in's (the blank picture is no shot)
        kept = [
            cut
            for n, cut in enumerate(kept)
            if n + 1 == len(kept) or not self._blank_between(cut.position, kept[n + 1].position)
        ]
        firsts = [self._first, *(cut.first for cut in kept)]
        lasts = [*(cut.last for cut in kept), last]
        return [
            Shot(
                n,
                round(first[1], TIMESTAMP_DIGITS),
                round(end[1], TIMESTAMP_DIGITS),
                first[0],
                end[0],
            )
            for n, (first, end) in enumerate(zip(firsts, lasts, strict=True))
        ]

    def _follow_blanks(self) -> None:
        """Note the runs of blank pictures a fade passes through: pictures fade in and out
        of them (a few frames away they are still faint), unlike a flash's."""
        position, blank = self._count, _is_blank(self._coarse[-1])
        if blank and self._blank_from is None:
            self._blank_from = position
        elif not blank and self._blank_from is not None:
            first, last = self._blank_from, position - 1
            self._blank_from = None
            self._fades.append((first, last))  # checked once its far side is in
        if self._fades and self._fades[-1][1] + self.persist == position:
            first, last = self._fades.pop()
            at = len(self._coarse) - 1 - position  # buffer position of stream position 0
            if first + at - self.persist >= 0 and _faded(
                [self._coarse[at + p] for p in (first - self.persist, first - FADE_STEPS)],
                [self._coarse[at + p] for p in (last + FADE_STEPS, last + self.persist)],
            ):
                self._fades.append((first, last))

    def _blank_between(self, start: int, end: int) -> bool:
        """Whether a fade's blank picture lies between these positions, less than the
        longest span apart."""
        return end - start <= max(self.spans) and any(
            first < end and last >= start for first, last in self._fades
        )

    def _pictures(self, span: int) -> deque[GreyImage]:
        """The pictures compared at a span: the small ones between neighbouring frames,
        the coarse ones further apart (a camera drifting a few pixels a second moves a
        textured picture a lot in a second, a coarse one little)."""
        return self._fine if span == 1 else self._coarse

    def _test(self, span: int) -> None:
        """The adaptive test of the pair `span` apart whose neighbours are all in now."""
        changes = self._changes[span]
        if len(changes) < (changes.maxlen or 0):
            return
        middle = WINDOW * span
        change = changes[middle]
        neighbours = sorted(changes[middle + k * span] for k in range(-WINDOW, WINDOW + 1) if k)
        ratio = change / max(sum(neighbours[:-1]) / (len(neighbours) - 1), 1.0)
        if change >= MIN_CHANGE and ratio >= ADAPTIVE_RATIO:
            self._check(span, len(self._coarse) - 1 - self._delay[span], ratio)

    def _check(self, span: int, after: int, ratio: float) -> None:
        """Keep the candidate between buffer positions after - span and after if it
        lasts and, across a span, looks like a transition."""
        frames, before = self._coarse, after - span
        if before < self.persist:
            return  # too near the start to tell
        old, new = frames[before], frames[after]
        across = _change(old, new)
        earlier, later = frames[before - self.persist], frames[after + self.persist]
        lasting = _change(earlier, later)
        if max(_change(earlier, old), _change(new, later)) >= STEADY_SHARE * lasting:
            return  # a side changes as much as the pictures around: a flash, a fade's end
        if min(_change(old, later), _change(earlier, new)) < across / 2:
            return  # the old picture came back, or the new one was there before
        inside = [frames[p] for p in range(before + 1, after)]
        if inside and not _is_blend(old, new, inside[len(inside) // 2]):
            return
        position = before + 1 + _split(old, new, inside)
        start = self._count - len(frames)  # the stream position of the buffer's first
        self._cuts.append(
            _Cut(
                start + position,
                (start + before, start + after),
                ratio,
                self._stamps[position],
                self._stamps[position - 1],
            )
        )


def _faded(before: list[GreyImage], after: list[GreyImage]) -> bool:
    """Whether pictures (far, near) before and (near, far) after a blank run fade: the
    near ones vary less than FADE_SHARE as much as the far ones."""
    far_before, near_before = (_spread(p) for p in before)
    near_after, far_after = (_spread(p) for p in after)
    return near_before < FADE_SHARE * far_before and near_after < FADE_SHARE * far_after


def _is_blank(picture: GreyImage) -> bool:
    """Whether a picture is about one grey level all over (black, white)."""
    return _spread(picture) < BLANK_STD


def _split(old: GreyImage, new: GreyImage, inside: list[GreyImage]) -> int:
    """How many of the frames between old and new go with old: the split that makes each
    frame's change from its side's picture least in sum (a flash among them, as far
    from both, does not move it)."""
    to_old = np.array([_change(frame, old) for frame in inside])
    to_new = np.array([_change(frame, new) for frame in inside])
    costs = np.concatenate([[0.0], np.cumsum(to_old)]) + np.concatenate(
        [np.cumsum(to_new[::-1])[::-1], [0.0]]
    )
    return int(np.argmin(costs))


def _coarse(grey: GreyImage) -> GreyImage:
    """The picture averaged over COARSE_BLOCK x COARSE_BLOCK pixel blocks (OpenCV's area
    resize of whole blocks: the rounded block means, a tenth of numpy's cost)."""
    height, width = (side // COARSE_BLOCK for side in grey.shape)
    whole = grey[: height * COARSE_BLOCK, : width * COARSE_BLOCK]
    coarse = cv2.resize(whole, (width, height), interpolation=cv2.INTER_AREA)
    return np.asarray(coarse, dtype=np.uint8)


def _spread(picture: GreyImage) -> float:
    """The standard deviation of a picture's grey levels."""
    return float(cv2.meanStdDev(picture)[1][0, 0])


def _is_blend(before: GreyImage, after: GreyImage, inside: GreyImage) -> bool:
    """Whether `inside` is, within BLEND_RESIDUAL of the change, a blend of the two
    pictures plus a constant (least squares over the pixels)."""
    basis = np.stack([before.ravel(), after.ravel(), np.ones(before.size)], axis=1).astype(
        np.float64
    )
    target = inside.ravel().astype(np.float64)
    weights, *_ = np.linalg.lstsq(basis, target, rcond=None)
    residual = float(np.sqrt(np.mean((basis @ weights - target) ** 2)))
    change = float(np.sqrt(np.mean((after.astype(np.float64) - before) ** 2)))
    return residual <= BLEND_RESIDUAL * change


@dataclass(frozen=True)
class GreyFrame:
    """One decoded frame, small and grey, with its place and time in the video."""

    frame_index: int
    timestamp_s: float
    grey: GreyImage


def grey_frames(
    path: Path,
    width: int = SHOT_FRAME_WIDTH,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    thread_type: str = "SLICE",
) -> Iterator[GreyFrame]:
    """Decode every frame of an MP4 to a grey picture `width` pixels wide, in order.

    Opened with `decoder.open_mp4` (MP4/MOV only, the frame pixel limit); frame indices
    and timestamps are those the video service gives (presentation order, from the packet
    index: what the file holds, never what its header claims). The decoder's scaler
    makes the small grey picture from the luma plane straight away (area averaging), so
    no full-size colour image is ever made. thread_type: FFmpeg's codec threading,
    PyAV's default "SLICE" as the job decoder has it; "AUTO" adds frame threads (faster
    on idle cores, more CPU and memory in all: bench row v).
    """
    with open_mp4(path, max_frame_pixels) as container:
        index = read_packet_index(container, video_stream(container))
    if index.frame_count == 0:
        return
    seconds = index.seconds()
    frame_of_packet = {int(packet): frame for frame, packet in enumerate(index.shown_order)}
    with open_mp4(path, max_frame_pixels) as container:
        stream = video_stream(container)
        codec = stream.codec_context
        # the small picture needs no deblocking (H.264, HEVC): about a quarter less CPU
        codec.options = {"max_pixels": str(max_frame_pixels), "skip_loop_filter": "all"}
        codec.thread_type = thread_type
        check_frame_size(codec.width, codec.height, max_frame_pixels)
        height = max(2, round(width * codec.height / codec.width / 2) * 2)
        scaler = av.video.reformatter.VideoReformatter()
        packets = _numbered(container.demux(stream))
        try:
            for packet in packets:
                for frame in codec.decode(packet):
                    check_frame_size(frame.width, frame.height, max_frame_pixels)
                    frame_index = frame_of_packet.get(-1 if frame.pts is None else int(frame.pts))
                    if frame_index is None:
                        continue  # decoded for reference only (edit list)
                    small = scaler.reformat(
                        frame, width, height, format="gray", interpolation="AREA", threads=1
                    )
                    yield GreyFrame(
                        frame_index,
                        round(float(seconds[frame_index]), TIMESTAMP_DIGITS),
                        np.asarray(small.to_ndarray(), dtype=np.uint8),
                    )
        except av.FFmpegError as exc:
            raise VideoDecodeError("the video's frame data is corrupt") from exc


def _numbered(packets: Iterator[av.Packet[Any]]) -> Iterator[av.Packet[Any] | None]:
    """The stream's packets, each stamped with its decode-order number as its pts (the
    frame it gives comes back with it), then None (the decoder gives what it holds)."""
    number = 0
    for packet in packets:
        if packet.size == 0 and packet.dts is None:
            continue  # the demuxer's end-of-stream marker
        packet.pts = number
        number += 1
        yield packet
    yield None


def find_shots(
    path: Path, fps: float, max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
) -> list[Shot]:
    """The shots of an MP4, end to end: every frame decoded small and grey (`grey_frames`)
    through a ShotDetector at the video's frame rate (fps; a video too short to have one,
    0, is one shot whatever the rate)."""
    detector = ShotDetector(fps if fps > 0 else 1.0)
    for frame in grey_frames(path, max_frame_pixels=max_frame_pixels):
        detector.add(frame.frame_index, frame.timestamp_s, frame.grey)
    return detector.finish()
