"""VideoFilePipelineService on real MP4 files made by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forgesyte.plugins.base import Frame
from forgesyte.video.service import (
    SamplingOptions,
    VideoDecodeError,
    VideoFilePipelineService,
    planned_frame_count,
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


def test_planned_frame_count(counter_video: Path) -> None:
    info = probe_video(counter_video)
    assert planned_frame_count(info, SamplingOptions()) == 30
    assert planned_frame_count(info, SamplingOptions(frame_stride=7)) == 5
    assert planned_frame_count(info, SamplingOptions(max_frames=2)) == 2


def test_results_are_deterministic(counter_video: Path) -> None:
    service = VideoFilePipelineService(GreyLevel())
    first = service.run(counter_video, SamplingOptions(frame_stride=3)).to_json()
    second = service.run(counter_video, SamplingOptions(frame_stride=3)).to_json()
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
