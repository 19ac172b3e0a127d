"""The values tools hand each other: text lines, their one JSON definition, and json_ready."""

from __future__ import annotations

import math

import numpy as np

from forgesyte.plugins.detections import Detections
from forgesyte.plugins.values import JsonConvertible, TextLine, TextLines, json_ready

BOX = [[10, 20], [90.5, 20], [90.5, 40], [10, 40]]


def test_a_reader_rounds_its_lines_and_places_a_crop_line_in_the_frame() -> None:
    line = TextLine.rounded("EXIT", 0.987654, [(0.04, 1.06), (30.0, -2.0), (200.0, 9.95)])
    assert line == TextLine("EXIT", 0.9877, ((0.0, 1.1), (30.0, -2.0), (200.0, 9.9)))
    placed = line.placed_in((100, 50, 220, 80))  # a crop of x 100..220, y 50..80
    assert placed.box == ((100.0, 51.1), (130.0, 50), (220, 59.9))  # kept inside the crop
    assert (placed.text, placed.confidence) == ("EXIT", 0.9877)


def test_one_definition_of_a_text_line_in_json() -> None:
    line = TextLine.from_json({"text": "GATE 7", "confidence": 0.9, "box": BOX, "own": 1})
    assert line == TextLine("GATE 7", 0.9, ((10, 20), (90.5, 20), (90.5, 40), (10, 40)))
    assert line.to_json() == {"text": "GATE 7", "confidence": 0.9, "box": BOX}  # as stored
    assert TextLine.from_json({"text": "NO SCORE", "box": []}) == TextLine("NO SCORE", 0.0, ())
    nan_stored = {"text": "NAN", "box": [], "confidence": None}  # a NaN is stored as null
    assert TextLine.from_json(nan_stored) == TextLine("NAN", 0.0, ())
    for not_one in (
        {"text": "NO BOX", "confidence": 0.5},
        {"text": 7, "box": BOX},
        {"text": "BOX OF WORDS", "box": "nowhere"},
        {"text": "THREE NUMBERS", "box": [[1, 2, 3]]},
        {"text": "BOOL", "box": [[True, 2]]},
        {"text": "HIGH", "box": BOX, "confidence": "high"},
        ["text", BOX],
        None,
    ):
        assert TextLine.from_json(not_one) is None, not_one


def test_text_lines_from_json_keep_the_lines_in_order_and_nothing_else() -> None:
    items = [{"text": "A", "box": BOX}, 3, {"text": "B", "box": BOX, "confidence": 1}]
    lines = TextLines.from_json(items)
    assert [line.text for line in lines] == ["A", "B"]
    assert lines.to_json() == [
        {"text": "A", "confidence": 0.0, "box": BOX},
        {"text": "B", "confidence": 1, "box": BOX},
    ]
    assert TextLines.from_json({"text": "A", "box": BOX}) == TextLines() == ()


def test_json_ready_makes_json_of_typed_values_inside_plain_data() -> None:
    line = TextLine("A", 0.5, ((1.0, 2.0),))
    found = Detections.from_opencv_rects([[0, 0, 2, 2]], "x", confidence=[0.123456789])
    assert isinstance(found, JsonConvertible) and isinstance(TextLines([line]), JsonConvertible)
    value = {"lines": TextLines([line]), 3: (found, math.inf, 1 / 3), "n": None}
    assert json_ready(value) == {
        "lines": [{"text": "A", "confidence": 0.5, "box": [[1.0, 2.0]]}],
        "3": [found.to_json(), math.inf, 1 / 3],
        "n": None,
    }
    assert found.to_json()[0]["confidence"] == 0.1235
    assert json_ready(value, 6)["3"][1:] == [None, 0.333333]  # what the results store
    array = np.zeros(2)
    assert json_ready(array) is array  # anything else is left to the caller
