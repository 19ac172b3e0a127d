"""Cutting a video's selected frames into segments, for analysis side by side.

A segment is the selected frames with first_frame <= frame_index < end_frame. A long job
is cut at keyframes, so decoding a segment starts where decoding must start anyway: no
frame before the cut is decoded twice (an open GOP's leading frames may still need the
keyframe before theirs; the decoder plans that for any list of frames). A job too short
for that, or a video with no keyframe to cut at, may be cut at any frame into as many
equal parts as there are workers idle to take them: each part's decoding then starts at
the keyframe before its first frame, so the frames from there to the cut are decoded
twice, which a cut may cost only up to MAX_REDECODE_PER_FRAME.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forgesyte.video.decoder import (
    DEFAULT_MAX_FRAME_PIXELS,
    PacketIndex,
    open_mp4,
    read_packet_index,
    video_stream,
)
from forgesyte.video.service import SamplingOptions, select_frames

__all__ = ["FrameSpan", "cut_anywhere", "cut_at_keyframes", "plan_segments"]

TAIL_FRACTION = 6  # the shortest span is segment_frames // this (at least one frame)

MAX_REDECODE_PER_FRAME = 25
"""A cut at any frame makes its part decode again the frames from the keyframe before the
cut: at most this many per frame the part analyses. A part of 12 OCR frames (5 to 15 s of
work on one core) may decode up to 300 frames again, about 0.2 s at 720p (bench row p)."""


@dataclass(frozen=True)
class FrameSpan:
    """Selected frames with first_frame <= frame_index < end_frame; `frames` of them."""

    first_frame: int
    end_frame: int
    frames: int


def keyframe_indices(index: PacketIndex) -> list[int]:
    """The presentation-order frame indices of the keyframes, ascending."""
    shown_keyframe = index.keyframe[index.shown_order]
    return [int(i) for i in np.flatnonzero(shown_keyframe)]


def cut_at_keyframes(
    selected: list[int], keyframes: list[int], frame_count: int, segment_frames: int
) -> list[FrameSpan]:
    """Cut the selected frames into spans at keyframes: about segment_frames each, then
    shorter towards the end.

    Fewer than 1.5 x segment_frames selected frames give one span (not worth a split).
    While at least 3 x segment_frames frames remain, a span targets segment_frames; after
    that, a third of what remains (at least TAIL_FRACTION of segment_frames), so the last
    spans are short and the workers sharing a job finish close together instead of one
    waiting for another's long last span. A cut is made at the first keyframe at or after
    the selected frame that would start the next span; what would be left under the
    smallest span size joins the span before.
    """
    if segment_frames < 1:
        raise ValueError("segment_frames must be >= 1")
    smallest = max(1, segment_frames // TAIL_FRACTION)
    if len(selected) < segment_frames * 3 // 2:
        return [FrameSpan(0, frame_count, len(selected))]
    spans: list[FrameSpan] = []
    start_position = 0  # position in `selected` where the current span starts
    first_frame = 0
    keyframe_position = 0
    while True:
        remaining = len(selected) - start_position
        size = segment_frames if remaining >= 3 * segment_frames else remaining // 3
        target = start_position + max(smallest, size)
        if len(selected) - target < smallest:
            break
        # the first keyframe at or after the target frame, and after the span's start
        while keyframe_position < len(keyframes) and (
            keyframes[keyframe_position] < selected[target]
            or keyframes[keyframe_position] <= selected[start_position]
        ):
            keyframe_position += 1
        if keyframe_position == len(keyframes):
            break
        cut = keyframes[keyframe_position]
        cut_position = int(np.searchsorted(selected, cut, side="left"))
        if len(selected) - cut_position < smallest:
            break
        spans.append(FrameSpan(first_frame, cut, cut_position - start_position))
        first_frame, start_position = cut, cut_position
    spans.append(FrameSpan(first_frame, frame_count, len(selected) - start_position))
    return spans


def cut_anywhere(
    selected: list[int], keyframes: list[int], frame_count: int, parts: int, smallest: int
) -> list[FrameSpan]:
    """Cut the selected frames into `parts` spans of equal size (within a frame) at any
    frame; fewer parts when a part would hold under `smallest` frames.

    Each span starts at its first selected frame. One span (no split) when fewer than two
    parts fit, or when a cut would make its part decode again more than
    MAX_REDECODE_PER_FRAME frames per analysed frame (the frames from the keyframe before
    the cut to the cut).
    """
    parts = min(parts, len(selected) // max(1, smallest))
    whole = [FrameSpan(0, frame_count, len(selected))]
    if parts < 2:
        return whole
    starts = [len(selected) * part // parts for part in range(parts)] + [len(selected)]
    for position, end in itertools.pairwise(starts[1:]):
        cut = selected[position]
        before = bisect.bisect_right(keyframes, cut) - 1
        redecoded = cut - (keyframes[before] if before >= 0 else 0)
        if redecoded > MAX_REDECODE_PER_FRAME * (end - position):
            return whole
    firsts = [0] + [selected[position] for position in starts[1:-1]] + [frame_count]
    return [
        FrameSpan(firsts[part], firsts[part + 1], starts[part + 1] - starts[part])
        for part in range(parts)
    ]


def plan_segments(
    path: Path,
    sampling: SamplingOptions,
    segment_frames: int,
    *,
    parts: int = 1,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
) -> list[FrameSpan]:
    """The spans a job on this video is cut into (one span: do not split).

    Long jobs are cut at keyframes (`cut_at_keyframes`); a job that gets one span there
    (too short, or no keyframe to cut at) is cut at any frame into `parts` (the workers
    free to take them; `cut_anywhere`). Reads the packet index only (nothing is decoded).
    A job that skips unchanged frames compares each frame with the last analysed one,
    across any cut: it is never split.
    """
    if sampling.skip_unchanged:
        return []
    with open_mp4(path, max_frame_pixels) as container:
        index = read_packet_index(container, video_stream(container))
    if not index.frame_count:
        return []
    selected = select_frames(index, sampling)
    if not selected:
        return []
    keyframes = keyframe_indices(index)
    spans = cut_at_keyframes(selected, keyframes, index.frame_count, segment_frames)
    if len(spans) == 1 and parts > 1:
        smallest = max(1, segment_frames // TAIL_FRACTION)
        return cut_anywhere(selected, keyframes, index.frame_count, parts, smallest)
    return spans
