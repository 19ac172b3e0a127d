"""Where a job's selected frames are cut: at keyframes, about segment_frames apart."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from forgesyte.video.segments import FrameSpan, cut_at_keyframes, plan_segments
from forgesyte.video.service import SamplingOptions
from tests.support.videos import write_counter_video


def test_cuts_fall_on_the_first_keyframe_after_each_target() -> None:
    selected = list(range(100))
    spans = cut_at_keyframes(selected, [0, 25, 50, 75, 90], 100, 20)
    assert spans == [
        FrameSpan(0, 25, 25),  # target 20: the next keyframe is 25
        FrameSpan(25, 50, 25),
        FrameSpan(50, 75, 25),  # 50 left (< 3 x 20): target a third, 16 -> keyframe 75
        FrameSpan(75, 90, 15),
        FrameSpan(90, 100, 10),  # no keyframe after 93: the rest is one span
    ]


def test_spans_shorten_towards_the_end() -> None:
    spans = cut_at_keyframes(list(range(300)), list(range(0, 300, 5)), 300, 30)
    sizes = [span.frames for span in spans]
    assert sizes == [30] * 8 + [20, 15, 10, 5, 5, 5]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 300


def test_a_short_tail_joins_the_span_before() -> None:
    spans = cut_at_keyframes(list(range(48)), [0, 20, 46], 48, 20)
    assert spans == [FrameSpan(0, 20, 20), FrameSpan(20, 48, 28)]  # 2 after 46: joined


def test_too_few_frames_or_keyframes_give_one_span() -> None:
    assert cut_at_keyframes(list(range(29)), list(range(0, 29, 2)), 29, 20) == [
        FrameSpan(0, 29, 29)
    ]
    assert cut_at_keyframes(list(range(200)), [0], 200, 20) == [FrameSpan(0, 200, 200)]


def test_strided_frames_are_counted_not_indices() -> None:
    selected = list(range(0, 90, 3))  # 30 frames
    spans = cut_at_keyframes(selected, [0, 30, 61], 90, 10)
    assert spans == [FrameSpan(0, 30, 10), FrameSpan(30, 61, 11), FrameSpan(61, 90, 9)]
    assert sum(span.frames for span in spans) == len(selected)


def test_spans_cover_every_selected_frame_once(keyframed_video: Path) -> None:
    for sampling in (
        SamplingOptions(),
        SamplingOptions(frame_stride=4),
        SamplingOptions(sample_fps=7.0, max_frames=20),
    ):
        spans = plan_segments(keyframed_video, sampling, 6)
        assert len(spans) > 1
        assert spans[0].first_frame == 0 and spans[-1].end_frame == 95
        for before, after in itertools.pairwise(spans):
            assert before.end_frame == after.first_frame


def test_jobs_that_skip_unchanged_frames_are_never_split(keyframed_video: Path) -> None:
    assert plan_segments(keyframed_video, SamplingOptions(skip_unchanged=True), 6) == []


def test_a_video_with_one_keyframe_is_not_split(tmp_path: Path) -> None:
    video = write_counter_video(tmp_path / "one_keyframe.mp4", 90)  # OpenCV's mp4v: one sync
    assert len(plan_segments(video, SamplingOptions(), 10)) == 1


def test_segment_frames_must_be_positive() -> None:
    with pytest.raises(ValueError, match="segment_frames"):
        cut_at_keyframes([0, 1], [0], 2, 0)
