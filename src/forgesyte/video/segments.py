"""Cutting a video's selected frames into segments at keyframes, for analysis side by side.

A segment is the selected frames with first_frame <= frame_index < end_frame. Each cut
falls on a keyframe, so decoding a segment starts where decoding must start anyway: no
frame before the cut is decoded twice (an open GOP's leading frames may still need the
keyframe before theirs; the decoder plans that for any list of frames).
"""

from __future__ import annotations

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

__all__ = ["FrameSpan", "cut_at_keyframes", "plan_segments"]

TAIL_FRACTION = 6  # the shortest span is segment_frames // this (at least one frame)


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


def plan_segments(
    path: Path,
    sampling: SamplingOptions,
    segment_frames: int,
    *,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
) -> list[FrameSpan]:
    """The spans a job on this video is cut into (one span: do not split).

    Reads the packet index only (nothing is decoded). A job that skips unchanged frames
    compares each frame with the last analysed one, across any cut: it is never split.
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
    return cut_at_keyframes(selected, keyframe_indices(index), index.frame_count, segment_frames)
