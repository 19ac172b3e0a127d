"""Preview frames are decoded by the analysis' own decoder: same numbering, same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgesyte.results.preview import FrameNotDecodable
from forgesyte.video.decoder import DEFAULT_MAX_FRAME_PIXELS
from forgesyte.workers.images import read_frame
from tests.video.crafted import full_decode, with_edit_list, write_h264_video


@pytest.fixture(scope="module")
def edited_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """B-frames, a GOP of 12 and an edit list that hides the first five frames."""
    folder = tmp_path_factory.mktemp("preview")
    return with_edit_list(
        write_h264_video(folder / "e0.mp4", 40, gop=12), folder / "e.mp4", 5 * 512
    )


def test_a_preview_frame_is_the_analysis_frame_of_that_index(edited_video: Path) -> None:
    reference = full_decode(edited_video)
    assert len(reference) == 35  # the edit list hides five of the 40 frames
    for index in (0, 6, 11, 12, 23, 34):
        image = read_frame(edited_video, index, DEFAULT_MAX_FRAME_PIXELS)
        assert np.array_equal(image, reference[index][2]), f"frame {index} differs"


def test_a_frame_past_the_end_or_over_the_pixel_limit_is_not_decodable(
    edited_video: Path, tmp_path: Path
) -> None:
    with pytest.raises(FrameNotDecodable, match="no frame 35"):
        read_frame(edited_video, 35, DEFAULT_MAX_FRAME_PIXELS)
    with pytest.raises(FrameNotDecodable):
        read_frame(edited_video, 0, 16)
    not_video = tmp_path / "x.mp4"
    not_video.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    with pytest.raises(FrameNotDecodable):
        read_frame(not_video, 0, DEFAULT_MAX_FRAME_PIXELS)
