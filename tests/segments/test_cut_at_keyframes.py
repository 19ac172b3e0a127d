"""Where a job's selected frames are cut: at keyframes, about segment_frames apart; or,
too short for that, at any frame into as many parts as there are workers to take them."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from forgesyte.video.segments import (
    MAX_REDECODE_PER_FRAME,
    FrameSpan,
    cut_anywhere,
    cut_at_keyframes,
    plan_segments,
)
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


def test_a_video_with_one_keyframe_is_not_split_at_keyframes(tmp_path: Path) -> None:
    video = write_counter_video(tmp_path / "one_keyframe.mp4", 90)  # OpenCV's mp4v: one sync
    assert len(plan_segments(video, SamplingOptions(), 10)) == 1
    # with another worker free, it is cut at any frame: the second half decodes from 0
    assert plan_segments(video, SamplingOptions(), 10, parts=2) == [
        FrameSpan(0, 45, 45),
        FrameSpan(45, 90, 45),
    ]


def test_a_short_job_is_cut_at_any_frame_into_equal_parts() -> None:
    selected = list(range(0, 48, 2))  # 24 frames
    assert cut_anywhere(selected, [0], 48, 2, 5) == [FrameSpan(0, 24, 12), FrameSpan(24, 48, 12)]
    assert cut_anywhere(selected, [0, 30], 48, 3, 5) == [
        FrameSpan(0, 16, 8),
        FrameSpan(16, 32, 8),
        FrameSpan(32, 48, 8),
    ]
    # at most one part per `smallest` frames: 24 frames in parts of at least 10 make 2
    assert [s.frames for s in cut_anywhere(selected, [0], 48, 8, 10)] == [12, 12]
    assert cut_anywhere(selected, [0], 48, 2, 13) == [FrameSpan(0, 48, 24)]
    assert cut_anywhere(selected, [0], 48, 1, 5) == [FrameSpan(0, 48, 24)]


def test_a_cut_far_from_its_keyframe_is_not_made() -> None:
    parts = 2
    sparse = list(range(0, 2000, 100))  # 20 frames, 10 a part: the cut at 1000
    limit = MAX_REDECODE_PER_FRAME * 10
    assert limit < 1000  # decoding frames 0-999 again for 10 analysed frames: no
    assert cut_anywhere(sparse, [0], 2000, parts, 5) == [FrameSpan(0, 2000, 20)]
    near = [1000 - limit]  # a keyframe close enough before the cut
    assert cut_anywhere(sparse, [0, *near], 2000, parts, 5) == [
        FrameSpan(0, 1000, 10),
        FrameSpan(1000, 2000, 10),
    ]


def test_a_long_job_is_cut_at_keyframes_whatever_the_parts(keyframed_video: Path) -> None:
    assert plan_segments(keyframed_video, SamplingOptions(), 12, parts=2) == plan_segments(
        keyframed_video, SamplingOptions(), 12
    )
    assert plan_segments(keyframed_video, SamplingOptions(skip_unchanged=True), 40, parts=2) == []


def test_segment_frames_must_be_positive() -> None:
    with pytest.raises(ValueError, match="segment_frames"):
        cut_at_keyframes([0, 1], [0], 2, 0)
