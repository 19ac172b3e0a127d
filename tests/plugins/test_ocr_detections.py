"""`ocr.read` after a detector: the text inside each detection's box."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from forgesyte.plugins.detections import Detections
from forgesyte.plugins.ocr import OcrRead, crop_box

from .synthetic import draw_plate, plate_frame

PLATE = {
    "xyxy": [220.0, 150.0, 420.0, 195.0],
    "confidence": 0.9,
    "class_id": 0,
    "class_name": "licence_plate",
    "track": 7,
}


def test_crop_box_adds_a_margin_and_clips_to_the_frame() -> None:
    # 200 x 45 box: 5% of 200 = 10 px sideways, 4 px (more than 5% of 45) up and down.
    assert crop_box([220.0, 150.0, 420.0, 195.0], (640, 360)) == (210, 146, 430, 199)
    assert crop_box([0.5, 1.5, 10.2, 20.0], (640, 360)) == (0, 0, 15, 24)
    assert crop_box([600.0, 300.0, 640.0, 360.0], (640, 360)) == (596, 296, 640, 360)
    assert crop_box([10.0, 10.0, 10.0, 20.0], (640, 360)) is None  # no width
    assert crop_box([700.0, 10.0, 800.0, 50.0], (640, 360)) is None  # outside the frame


def test_malformed_detections_are_refused_before_reading() -> None:
    with pytest.raises(ValueError, match="detection 0 has no xyxy box"):
        OcrRead().run(plate_frame(), {"detections": [{"box": [1, 2, 3, 4]}]})
    with pytest.raises(ValueError, match="detection 1 has no xyxy box"):
        OcrRead().run(plate_frame(), {"detections": [PLATE, {"xyxy": [1, 2, 3, 4]}]})


def test_reads_only_inside_each_detection() -> None:
    frame = plate_frame()
    cv2.putText(frame, "HELLO", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    empty = {
        "xyxy": [500.0, 20.0, 600.0, 80.0],
        "confidence": 0.5,
        "class_id": 1,
        "class_name": "x",
    }
    outside = {
        "xyxy": [700.0, 0.0, 800.0, 50.0],
        "confidence": 0.4,
        "class_id": 1,
        "class_name": "x",
    }
    detections = [PLATE, empty, outside]
    given = copy.deepcopy(detections)

    # plain JSON, as a separately installed detector gives it: kept as it is, key and order
    result = OcrRead().run(frame, {"detections": detections})

    assert detections == given  # the input is not changed
    assert [{k: v for k, v in d.items() if k != "text_lines"} for d in result] == given
    plate_lines, empty_lines, outside_lines = (d["text_lines"] for d in result)
    assert [line["text"] for line in plate_lines] == ["A123BC77"]
    assert empty_lines == [] and outside_lines == []
    (line,) = plate_lines
    assert set(line) == {"text", "confidence", "box"} and line["confidence"] > 0.9
    # The line's box is in frame pixels, inside the area read (the box plus its margin),
    # around the drawn characters (x 228..~400, y ~160..190).
    xs = [x for x, _ in line["box"]]
    ys = [y for _, y in line["box"]]
    assert 210 <= min(xs) <= 235 and 380 <= max(xs) <= 430
    assert 146 <= min(ys) <= 165 and 185 <= max(ys) <= 199

    # typed detections, as the built-in detectors give them: the same lines, typed
    typed = OcrRead().run(frame, {"detections": Detections.from_json(given).normalised()})
    assert isinstance(typed, Detections) and typed.text_lines is not None
    assert [lines.to_json() for lines in typed.text_lines] == [plate_lines, [], []]


def test_reads_a_small_plate_with_its_box_in_frame_pixels() -> None:
    # a plate a third of the size: a crop under 30 px high, which RapidOCR pads itself
    frame = plate_frame()
    small = np.full((60, 240, 3), 90, np.uint8)
    draw_plate(small, (20, 7))
    small = cv2.resize(small, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)  # 96 x 24
    frame[300:324, 500:596] = small
    detection = {**PLATE, "xyxy": [508.0, 302.0, 588.0, 322.0]}

    result = OcrRead().run(frame, {"detections": Detections.from_json([detection])})

    assert result.text_lines is not None
    ((line,),) = result.text_lines
    assert line.text == "A123BC77"
    rect = crop_box(detection["xyxy"], (640, 360))
    assert rect is not None
    left, top, right, bottom = rect
    xs = [x for x, _ in line.box]
    ys = [y for _, y in line.box]
    assert left <= min(xs) <= 515 and 575 <= max(xs) <= right
    assert top <= min(ys) <= 310 and 315 <= max(ys) <= bottom
