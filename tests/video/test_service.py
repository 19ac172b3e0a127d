"""VideoFilePipelineService on real MP4 files made by the tests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from forgesyte.plugins.base import Frame
from forgesyte.video.service import (
    SamplingOptions,
    VideoDecodeError,
    VideoFilePipelineService,
    probe_video,
)
from tests.support.videos import (
    garbage_after_ftyp_mp4,
    header_only_mp4,
    truncated_mp4,
    write_counter_video,
)


class GreyLevel:
    """A frame analyser that reports the frame's mean grey level and its shape."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def run(self, frame: Frame) -> dict[str, Any]:
        self.frames.append(frame)
        return {"grey": {"mean": round(float(frame.mean())), "shape": list(frame.shape)}}


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_counter_video(tmp_path_factory.mktemp("v") / "counter.mp4", 30, fps=30.0)


def test_every_frame_in_order_with_exact_timestamps(counter_video: Path) -> None:
    analyser = GreyLevel()
    results = VideoFilePipelineService(analyser).run(counter_video, SamplingOptions())
    assert [f.frame_index for f in results.frames] == list(range(30))
    assert [f.timestamp_s for f in results.frames] == [round(i / 30, 6) for i in range(30)]
    means = [f.result["grey"]["mean"] for f in results.frames]
    assert means == sorted(set(means)), "each frame is brighter than the one before"
    # the analyser got decoded BGR arrays, never encoded bytes
    assert all(isinstance(f, np.ndarray) and f.dtype == np.uint8 for f in analyser.frames)
    assert analyser.frames[0].shape == (48, 64, 3)
    assert results.video.to_json() == {"frame_count": 30, "fps": 30.0, "height": 48, "width": 64}


def test_stride_and_max_frames_select_frames(counter_video: Path) -> None:
    service = VideoFilePipelineService(GreyLevel())
    strided = service.run(counter_video, SamplingOptions(frame_stride=7))
    assert [f.frame_index for f in strided.frames] == [0, 7, 14, 21, 28]
    assert strided.frames[1].timestamp_s == round(7 / 30, 6)
    capped = service.run(counter_video, SamplingOptions(frame_stride=4, max_frames=3))
    assert [f.frame_index for f in capped.frames] == [0, 4, 8]


def test_progress_reports_rise_to_the_planned_count(counter_video: Path) -> None:
    calls: list[tuple[int, int]] = []
    VideoFilePipelineService(GreyLevel()).run(
        counter_video,
        SamplingOptions(frame_stride=10),
        on_progress=lambda a, p: calls.append((a, p)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_progress_counts_the_frames_the_job_will_analyse(counter_video: Path) -> None:
    for sampling, planned in [
        (SamplingOptions(), 30),
        (SamplingOptions(frame_stride=7), 5),
        (SamplingOptions(max_frames=2), 2),
        (SamplingOptions(sample_fps=7.5), 8),
    ]:
        calls: list[tuple[int, int]] = []
        VideoFilePipelineService(GreyLevel()).run(
            counter_video, sampling, on_progress=lambda a, p, c=calls: c.append((a, p))
        )
        assert calls == [(i + 1, planned) for i in range(planned)]


def test_results_are_deterministic(counter_video: Path) -> None:
    service = VideoFilePipelineService(GreyLevel())
    first = service.run(counter_video, SamplingOptions(frame_stride=3))
    second = service.run(counter_video, SamplingOptions(frame_stride=3))
    assert first == second


def test_invalid_sampling_is_refused() -> None:
    with pytest.raises(ValueError, match="frame_stride"):
        SamplingOptions(frame_stride=0)
    with pytest.raises(ValueError, match="max_frames"):
        SamplingOptions(max_frames=0)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda src, dst: header_only_mp4(dst), id="header-only"),
        pytest.param(lambda src, dst: truncated_mp4(src, dst, 0.5), id="truncated-half"),
        pytest.param(lambda src, dst: truncated_mp4(src, dst, 0.9), id="truncated-90pc"),
        pytest.param(lambda src, dst: garbage_after_ftyp_mp4(dst), id="garbage-after-ftyp"),
        pytest.param(lambda src, dst: dst.write_bytes(b"") and dst, id="empty"),
    ],
)
def test_undecodable_files_raise_a_clear_error(
    make: Any, counter_video: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    make(counter_video, broken)
    with pytest.raises(VideoDecodeError) as caught:
        VideoFilePipelineService(GreyLevel()).run(broken, SamplingOptions())
    assert str(caught.value)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="not found"):
        probe_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize(
    ("fps", "sample_fps", "expected"),
    [
        (30.0, 10.0, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]),
        (30.0, 1.0, [0]),
        (30.0, 60.0, list(range(30))),
        (30.0, 7.5, [0, 4, 8, 12, 16, 20, 24, 28]),
        (25.0, 10.0, [0, 3, 5, 8, 10, 13, 15, 18, 20, 23]),
    ],
)
def test_sample_fps_takes_the_first_frame_of_each_slot(
    tmp_path: Path, fps: float, sample_fps: float, expected: list[int]
) -> None:
    frame_count = 30 if fps == 30.0 else 25
    video = write_counter_video(tmp_path / "v.mp4", frame_count, fps=fps)
    sampling = SamplingOptions(sample_fps=sample_fps)
    results = VideoFilePipelineService(GreyLevel()).run(video, sampling)
    indexes = [f.frame_index for f in results.frames]
    assert indexes == expected
    assert [f.timestamp_s for f in results.frames] == [round(i / fps, 6) for i in indexes]
    # never more than sample_fps frames in any one second of video
    for second in range(int(frame_count / fps) + 1):
        in_second = [i for i in indexes if second <= i / fps < second + 1]
        assert len(in_second) <= math.ceil(sample_fps)


def test_sample_fps_and_stride_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        SamplingOptions(frame_stride=2, sample_fps=5.0)
    with pytest.raises(ValueError, match="positive"):
        SamplingOptions(sample_fps=0.0)


def write_scoreboard(path: Path, changes_at: list[int], frame_count: int) -> Path:
    """A static picture whose number changes at the given frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 90))
    score = 0
    for index in range(frame_count):
        if index in changes_at:
            score += 1
        frame = np.full((90, 160, 3), 255, np.uint8)
        cv2.putText(frame, f"{score}-0", (30, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3)
        writer.write(frame)
    writer.release()
    return path


def test_skip_unchanged_reuses_results_of_static_frames(tmp_path: Path) -> None:
    video = write_scoreboard(tmp_path / "board.mp4", changes_at=[10, 25], frame_count=40)
    analyser = GreyLevel()
    service = VideoFilePipelineService(analyser)
    full = service.run(video, SamplingOptions(frame_stride=5))
    analyser.frames.clear()
    skipping = service.run(video, SamplingOptions(frame_stride=5, skip_unchanged=True))
    assert [f.frame_index for f in skipping.frames] == [f.frame_index for f in full.frames]
    analysed = [f.frame_index for f in skipping.frames if f.reused_from is None]
    assert analysed == [0, 10, 25]
    assert len(analyser.frames) == 3
    for entry in skipping.frames:
        if entry.reused_from is not None:
            source = next(f for f in skipping.frames if f.frame_index == entry.reused_from)
            assert entry.result == source.result and entry.reused_from < entry.frame_index
            assert entry.to_json()["reused_from"] == entry.reused_from
    again = service.run(video, SamplingOptions(frame_stride=5, skip_unchanged=True))
    assert again == skipping
