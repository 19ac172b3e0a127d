"""The `opencv` plugin's detectors on frames the tests draw, and on frames with nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from forgesyte.plugins.base import Frame
from forgesyte.plugins.detections import Detections
from forgesyte.plugins.opencv_detect import (
    HaarCascadeTool,
    haarcascades_dir,
    plugin,
    score_to_confidence,
)

from .synthetic import face_frame, person_frame, plate_frame

TOOLS = plugin().tools

# Each tool, a frame it must fire on, the drawn object's box and the class name.
CASES: list[tuple[str, Callable[[], Frame], list[float], str]] = [
    ("faces", face_frame, [250, 85, 390, 275], "face"),
    ("people", person_frame, [274, 62, 366, 298], "person"),
    ("bodies", person_frame, [274, 62, 366, 298], "person"),
    ("plates", plate_frame, [220, 150, 420, 195], "licence_plate"),
]


def test_the_plugin_has_four_tools_that_run_out_of_the_box() -> None:
    assert sorted(TOOLS) == ["bodies", "faces", "people", "plates"]
    for tool in TOOLS.values():
        assert tool.unavailable_reason() is None
        assert tool.output_types == ("detections",)


@pytest.mark.parametrize(("tool_name", "draw", "drawn_box", "class_name"), CASES)
def test_detector_finds_the_drawn_object(
    tool_name: str, draw: Callable[[], Frame], drawn_box: list[float], class_name: str
) -> None:
    found = TOOLS[tool_name].run(draw(), {"image": None})
    assert isinstance(found, Detections) and len(found) == 1
    (detection,) = found.to_json()
    assert set(detection) == {"xyxy", "confidence", "class_id", "class_name"}
    assert (detection["class_id"], detection["class_name"]) == (0, class_name)
    assert 0.5 < detection["confidence"] < 1.0
    assert all(isinstance(v, float) for v in detection["xyxy"])
    # Detectors frame objects with some context around them: the box must cover the drawn
    # object (nearly) whole and be no more than three times its size.
    x1, y1, x2, y2 = detection["xyxy"]
    dx1, dy1, dx2, dy2 = drawn_box
    covered = max(0, min(x2, dx2) - max(x1, dx1)) * max(0, min(y2, dy2) - max(y1, dy1))
    drawn_area = (dx2 - dx1) * (dy2 - dy1)
    assert covered >= 0.9 * drawn_area
    assert (x2 - x1) * (y2 - y1) <= 3 * drawn_area


@pytest.mark.parametrize("tool_name", sorted(TOOLS))
@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((360, 640, 3), np.uint8),
        np.full((360, 640, 3), 255, np.uint8),
        np.zeros((20, 30, 3), np.uint8),
    ],
    ids=["black", "white", "tiny"],
)
def test_nothing_found_on_an_empty_frame(tool_name: str, frame: Frame) -> None:
    found = TOOLS[tool_name].run(frame, {})
    assert len(found) == 0 and found.to_json() == []


@pytest.mark.parametrize(
    ("tool_name", "other"),
    [("faces", plate_frame), ("plates", face_frame), ("people", plate_frame)],
)
def test_detectors_do_not_fire_on_the_other_drawings(
    tool_name: str, other: Callable[[], Frame]
) -> None:
    assert len(TOOLS[tool_name].run(other(), {})) == 0


def test_score_to_confidence_is_logistic() -> None:
    assert score_to_confidence([0.0, 100.0, -100.0]).tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_a_missing_cascade_is_reported() -> None:
    class Missing(HaarCascadeTool):
        name = "missing"
        cascade_file = "no_such_cascade.xml"
        class_name = "x"

    tool = Missing()
    assert tool.unavailable_reason() == (
        f"OpenCV cascade {haarcascades_dir() / 'no_such_cascade.xml'} is missing from this install"
    )
    with pytest.raises(RuntimeError, match="could not read cascade"):
        tool.load()
