"""The shared detection type: constructors, NMS, mapping back, JSON shape and order."""

from __future__ import annotations

import numpy as np
import pytest

from forgesyte.plugins.detections import (
    Detections,
    box_iou,
    class_wise_nms,
    is_detection,
    parse_detections,
)
from forgesyte.plugins.values import TextLine, TextLines

from .synthetic import candidate, yolo_output


def test_from_opencv_rects_converts_xywh_with_default_confidence() -> None:
    found = Detections.from_opencv_rects([[10, 20, 30, 40], [0, 0, 5, 5]], "face")
    assert found.to_json() == [
        {"xyxy": [0.0, 0.0, 5.0, 5.0], "confidence": 1.0, "class_id": 0, "class_name": "face"},
        {
            "xyxy": [10.0, 20.0, 40.0, 60.0],
            "confidence": 1.0,
            "class_id": 0,
            "class_name": "face",
        },
    ]


def test_from_opencv_rects_with_scores_and_class_id() -> None:
    found = Detections.from_opencv_rects(
        np.array([[1, 2, 3, 4]], dtype=np.int32), "person", class_id=7, confidence=[0.123456]
    )
    assert found.to_json() == [
        {"xyxy": [1.0, 2.0, 4.0, 6.0], "confidence": 0.1235, "class_id": 7, "class_name": "person"}
    ]
    with pytest.raises(ValueError, match="2 rectangles but 1 confidences"):
        Detections.from_opencv_rects([[0, 0, 1, 1], [0, 0, 2, 2]], "x", confidence=[0.5])


def test_to_json_rounds_and_sorts_by_confidence_then_box() -> None:
    found = Detections(
        xyxy=np.array([[5.04, 1, 2, 3], [1.06, 1, 2, 3], [0, 0, 1, 1]], dtype=np.float64),
        confidence=np.array([0.5, 0.5, 0.98765], dtype=np.float64),
        class_id=np.array([1, 2, 3], dtype=np.int64),
        class_names=("b", "c", "d"),
    )
    assert [(d["xyxy"], d["confidence"], d["class_name"]) for d in found.to_json()] == [
        ([0.0, 0.0, 1.0, 1.0], 0.9877, "d"),
        ([1.1, 1.0, 2.0, 3.0], 0.5, "c"),
        ([5.0, 1.0, 2.0, 3.0], 0.5, "b"),
    ]
    assert Detections.empty().to_json() == []
    assert len(Detections.empty()) == 0


def test_columns_must_agree() -> None:
    with pytest.raises(ValueError, match="detection columns disagree"):
        Detections(
            xyxy=np.zeros((2, 4)),
            confidence=np.zeros(1),
            class_id=np.zeros(2, dtype=np.int64),
            class_names=("a", "b"),
        )


def test_box_iou() -> None:
    box = np.array([0, 0, 10, 10], dtype=np.float64)
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    assert box_iou(box, boxes).tolist() == [1.0, 50 / 150, 0.0, 0.0]


def test_class_wise_nms_keeps_one_of_an_overlapping_pair_per_class() -> None:
    xyxy = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float64
    )
    confidence = np.array([0.8, 0.9, 0.7, 0.6])
    class_id = np.array([0, 0, 1, 0], dtype=np.int64)
    # box 0 overlaps box 1 (IoU 9/11) of its class: dropped; box 2 is another class: kept;
    # box 3 overlaps box 1 by 6/14 < 0.45: kept.
    assert class_wise_nms(xyxy, confidence, class_id, 0.45).tolist() == [1, 2, 3]
    assert class_wise_nms(xyxy, confidence, class_id, 0.4).tolist() == [1, 2]


def test_from_yolo_output_decodes_and_takes_the_best_class() -> None:
    output = yolo_output(
        [
            candidate(20, 30, 16, 8, {0: 0.1, 1: 0.9}, 2),
            candidate(50, 50, 4, 4, {0: 0.25}, 2),  # not above the threshold
        ]
    )
    found = Detections.from_yolo_output(output, ["a", "b"])
    assert found.xyxy.tolist() == [[12.0, 26.0, 28.0, 34.0]]
    assert found.class_id.tolist() == [1]
    assert found.class_names == ("b",)
    with pytest.raises(ValueError, match=r"does not match 1 x \(4 \+ 3 classes\) x N"):
        Detections.from_yolo_output(output, ["a", "b", "c"])


def test_from_yolo_output_caps_the_count() -> None:
    output = yolo_output([candidate(10 * i, 10, 4, 4, {0: 0.5 + i / 100}, 1) for i in range(5)])
    found = Detections.from_yolo_output(output, ["a"], max_detections=2)
    assert found.xyxy[:, 0].tolist() == [38.0, 28.0]


def test_normalised_is_what_to_json_writes_and_the_text_lines_follow_their_box() -> None:
    found = Detections(
        xyxy=np.array([[5.04, 1, 2, 3], [0, 0, 1, 1]], dtype=np.float64),
        confidence=np.array([0.5, 0.98765], dtype=np.float64),
        class_id=np.array([1, 3], dtype=np.int64),
        class_names=("b", "d"),
    )
    normalised = found.normalised()
    assert normalised.xyxy.tolist() == [[0.0, 0.0, 1.0, 1.0], [5.0, 1.0, 2.0, 3.0]]
    assert normalised.confidence.tolist() == [0.9877, 0.5]
    assert normalised.class_names == ("d", "b") and normalised.text_lines is None
    assert found.to_json() == normalised.to_json() == normalised.normalised().to_json()
    line = TextLine("AB 12", 0.9, ((1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)))
    read = found.with_text_lines([TextLines([line]), TextLines()])
    assert read.normalised().text_lines == (TextLines(), TextLines([line]))
    assert [item["text_lines"] for item in read.to_json()] == [[], [line.to_json()]]
    assert read.clipped((4, 4)).text_lines == (TextLines(),)  # the second box is outside
    with pytest.raises(ValueError, match="detection columns disagree"):
        found.with_text_lines([TextLines()])


DETECTION = {"xyxy": [1, 2, 3.5, 4], "confidence": 0.5, "class_id": 2, "class_name": "a"}


def test_one_definition_of_a_detection_in_json() -> None:
    assert is_detection(DETECTION)
    assert is_detection({"xyxy": [1, 2, 3, 4], "class_name": "a", "own_key": 1})
    assert is_detection({**DETECTION, "confidence": None, "class_id": None})  # NaN: null
    for not_one in (
        {**DETECTION, "xyxy": [0, 0, 1]},
        {**DETECTION, "xyxy": [0, 0, True, 1]},
        {**DETECTION, "xyxy": "0 0 1 1"},
        {**DETECTION, "class_name": None},
        {k: v for k, v in DETECTION.items() if k != "class_name"},
        {**DETECTION, "confidence": "high"},
        {**DETECTION, "class_id": "1"},
        {**DETECTION, "class_id": True},
        ["box"],
    ):
        assert not is_detection(not_one), not_one


def test_detections_from_json_keep_their_order_and_read_their_text_lines() -> None:
    line = {"text": "KX 4718", "confidence": 0.99, "box": [[0, 0], [9, 0], [9, 4], [0, 4]]}
    items = [
        {"xyxy": [1, 2, 3, 4], "class_name": "a"},
        {**DETECTION, "text_lines": [line, {"text": "no box"}]},
    ]
    found = Detections.from_json(items)
    assert found.xyxy.tolist() == [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.5, 4.0]]
    assert found.confidence.tolist() == [0.0, 0.5] and found.class_id.tolist() == [0, 2]
    assert found.class_names == ("a", "a")
    assert found.text_lines == (TextLines(), TextLines([TextLine.from_json(line)]))
    assert Detections.from_json([DETECTION]).text_lines is None
    nulls = Detections.from_json([{**DETECTION, "confidence": None, "class_id": None}])
    assert (nulls.confidence.tolist(), nulls.class_id.tolist()) == ([0.0], [0])
    assert Detections.from_json([{**DETECTION, "class_id": 3.0}]).class_id.tolist() == [3]
    assert len(Detections.from_json([])) == 0


def test_parse_detections_refuses_what_is_no_detection_and_keeps_the_items() -> None:
    item = {**DETECTION, "k": 1}
    assert parse_detections([item]) == [item]
    with pytest.raises(ValueError, match="must be a list"):
        parse_detections(DETECTION)
    with pytest.raises(ValueError, match="detection 1 has no xyxy box of four numbers"):
        parse_detections([item, {"xyxy": [0, 0, 1]}])
    with pytest.raises(ValueError, match="detection 0 has no xyxy box of four numbers"):
        parse_detections([{"xyxy": [0, 0, 1, 1]}])  # no class_name
