"""Preview frames drawn by short-lived child processes, held to the analysis children's limits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from forgesyte.results.preview import FrameNotDecodable, PreviewFailed
from forgesyte.workers.executor import ChildLimits
from forgesyte.workers.images import read_frame
from forgesyte.workers.previews import PREVIEW_TIMEOUT_S, ChildPreviewRenderer

ENTRY = {
    "frame_index": 10,
    "result": {"objects": [{"xyxy": [20, 30, 120, 90], "class_name": "cat", "confidence": 0.9}]},
}


def _renderer(limits: ChildLimits) -> ChildPreviewRenderer:
    return ChildPreviewRenderer(limits, max_frame_pixels=8192 * 4320)


def test_a_child_draws_the_frame_at_the_video_size_with_its_boxes(score_video: Path) -> None:
    jpeg = _renderer(ChildLimits(PREVIEW_TIMEOUT_S, 1024)).render(score_video, ENTRY)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (180, 320, 3)
    plain = read_frame(score_video, 10, 8192 * 4320)
    changed = np.abs(image.astype(int) - plain.astype(int)).sum(axis=2) > 120
    assert changed[30, 20:120].mean() > 0.8  # the box's top edge is drawn
    assert not changed[150:, 200:].any()  # far from the box, the frame as it is


def test_a_frame_the_video_lacks_is_not_decodable(score_video: Path) -> None:
    with pytest.raises(FrameNotDecodable, match="no frame 20"):
        _renderer(ChildLimits(PREVIEW_TIMEOUT_S)).render(score_video, {"frame_index": 20})


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (ChildLimits(PREVIEW_TIMEOUT_S, 16), "over the memory cap of 16 MiB, and was stopped"),
        (ChildLimits(0.05), "the preview timed out after 0.05 s and was stopped"),
    ],
    ids=["memory-cap", "time-limit"],
)
def test_a_child_past_its_limits_is_killed_and_says_why(
    score_video: Path, limits: ChildLimits, message: str
) -> None:
    # a Python interpreter alone is over 16 MiB (drawing needs 70); none starts in 50 ms
    with pytest.raises(PreviewFailed, match=message):
        _renderer(limits).render(score_video, ENTRY)
