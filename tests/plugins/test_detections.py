"""The shared detection type: constructors, NMS, mapping back, JSON shape and order."""

from __future__ import annotations

import numpy as np
import pytest

from forgesyte.plugins.detections import (
    Detections,
    box_iou,
    class_wise_nms,
    parse_detections,
)

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


def test_unletterboxed_and_clipped() -> None:
    found = Detections.from_opencv_rects(
        [[10, 10, 20, 20], [0, 0, 4, 4], [50, 20, 30, 10]], "x", confidence=[0.9, 0.8, 0.7]
    )
    mapped = found.unletterboxed(0.5, (10, 0)).clipped((100, 50))
    # (0, 0, 4, 4) maps to x in -20..-12: clipped to no width, dropped.
    assert mapped.xyxy.tolist() == [[0.0, 20.0, 40.0, 50.0], [80.0, 40.0, 100.0, 50.0]]
    assert mapped.confidence.tolist() == [0.9, 0.7]


def test_parse_detections_checks_boxes_and_keeps_extra_keys() -> None:
    item = {"xyxy": [1, 2, 3.5, 4], "confidence": 0.5, "class_id": 0, "class_name": "a", "k": 1}
    parsed = parse_detections([item])
    assert parsed == [item]
    assert parsed[0] is not item
    with pytest.raises(ValueError, match="must be a list"):
        parse_detections({"xyxy": [0, 0, 1, 1]})
    with pytest.raises(ValueError, match="detection 1 has no xyxy box"):
        parse_detections([item, {"xyxy": [0, 0, 1]}])
    with pytest.raises(ValueError, match="detection 0 has no xyxy box"):
        parse_detections([{"xyxy": [0, 0, True, 1]}])
    with pytest.raises(ValueError, match="detection 0 has no xyxy box"):
        parse_detections(["box"])
