"""Text segments, object tracks and shots from frame entries; readings that are no text left
out of the timeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from forgesyte.plugins.detections import is_detection
from forgesyte.plugins.values import TextLine
from forgesyte.results.timeline import (
    MAX_TEXT_BOX_SHARE,
    MIN_TEXT_CONFIDENCE,
    TimelineBuilder,
    box_area,
    frame_observations,
    is_plausible_text,
    normalise_text,
    text_similarity,
)
from forgesyte.video.shots import Shot

BOX = [[10.0, 10.0], [90.0, 10.0], [90.0, 30.0], [10.0, 30.0]]
FRAME_WH = (320, 180)


def line(
    text: str, confidence: float = 0.9, box: list[list[float]] | None = None
) -> dict[str, Any]:
    return {"text": text, "confidence": confidence, "box": box or BOX}


def detection(xyxy: list[float], confidence: float = 0.8, name: str = "person") -> dict[str, Any]:
    return {"xyxy": xyxy, "confidence": confidence, "class_id": 0, "class_name": name}


def entries(frames: list[list[dict[str, Any]]], stride: int = 1, fps: float = 10.0) -> list[Any]:
    return [
        {"frame_index": i * stride, "timestamp_s": i * stride / fps, "result": {"ocr": items}}
        for i, items in enumerate(frames)
    ]


def timeline_of(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The timeline of frame entries, fed in order."""
    builder = TimelineBuilder(FRAME_WH)
    for entry in entries:
        builder.add(entry)
    return builder.build()


def test_normalising_folds_case_and_spaces() -> None:
    assert normalise_text("  Gate   7\tOPEN ") == "gate 7 open"
    assert text_similarity("gate 7 open", "gate 7 open") == 1.0
    assert text_similarity("gate 7 open", "gate 7 0pen") > 0.8
    assert text_similarity("gate 7 open", "half time") < 0.5


def test_one_line_over_consecutive_frames_is_one_segment_with_its_best_reading() -> None:
    best = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    frames = [
        [line("GATE 7 OPEN", 0.8)],
        [line("gate 7  open", 0.95, best)],
        [line("GATE 7 0PEN", 0.7)],  # a small OCR difference
    ]
    timeline = timeline_of(iter(entries(frames)))
    assert timeline["text"] == [
        {
            "text": "gate 7 open",
            "start_s": 0.0,
            "end_s": 0.2,
            "first_frame": 0,
            "last_frame": 2,
            "frames": 3,
            "confidence": 0.95,
            "box": best,
        }
    ]
    assert timeline["objects"] == []


def test_one_missed_frame_does_not_split_but_two_do() -> None:
    one_gap = [[line("EXIT")], [], [line("EXIT")]]
    segments = timeline_of(iter(entries(one_gap)))["text"]
    assert [(s["first_frame"], s["last_frame"], s["frames"]) for s in segments] == [(0, 2, 2)]
    two_gaps = [[line("EXIT")], [], [], [line("EXIT")]]
    segments = timeline_of(iter(entries(two_gaps)))["text"]
    assert [(s["first_frame"], s["last_frame"]) for s in segments] == [(0, 0), (3, 3)]


def test_segments_sort_by_start_then_text_and_different_lines_stay_apart() -> None:
    frames = [[line("ZULU"), line("ALPHA")], [line("ZULU"), line("ALPHA")], [line("MIKE")]]
    segments = timeline_of(iter(entries(frames, stride=5)))["text"]
    assert [(s["text"], s["start_s"], s["end_s"]) for s in segments] == [
        ("ALPHA", 0.0, 0.5),
        ("ZULU", 0.0, 0.5),
        ("MIKE", 1.0, 1.0),
    ]


def test_detections_text_lines_count_as_text() -> None:
    plate = {**detection([0.0, 0.0, 50.0, 20.0], name="plate"), "text_lines": [line("AB12 CDE")]}
    result = {"plates": [plate], "other": "not a list", "empty": []}
    lines, detections = frame_observations(result)
    assert [item.text for item in lines] == ["AB12 CDE"] and detections.to_json() == [plate]


def test_observations_are_read_by_the_definitions_of_the_value_types() -> None:
    no_class = {"xyxy": [1.0, 2.0, 3.0, 4.0], "confidence": 0.5}
    both = {**line("BOTH"), **detection([0.0, 0.0, 1.0, 1.0])}
    result = {
        "a": [line("FIRST"), no_class, {"text": "NO BOX"}, {**detection([1.0, 1.0, 2.0, 2.0])}],
        "b": [both, 7, None, {"text": 5, "box": BOX}, {"xyxy": ["1", 2, 3, 4], "class_name": "x"}],
    }
    lines, detections = frame_observations(result)
    assert [item.text for item in lines] == ["FIRST", "BOTH"]  # a line first, if it is one
    assert detections.xyxy.tolist() == [[1.0, 1.0, 2.0, 2.0]]
    assert not is_detection(no_class)  # no class: no detection, for the tracker or ocr.read
    for items in result.values():
        for item in items:
            found = frame_observations({"n": [item]})[1]
            assert len(found) == (is_detection(item) and TextLine.from_json(item) is None)


def test_tracker_follows_a_moving_object_and_keeps_two_apart() -> None:
    frames = []
    for i in range(5):
        frames.append(
            [
                detection([10.0 + 4 * i, 10.0, 60.0 + 4 * i, 90.0], 0.5 + i / 10),
                detection([200.0, 10.0, 250.0, 90.0], 0.6),
                detection([200.0, 10.0, 250.0, 90.0], 0.7, "car"),
            ]
        )
    timeline = timeline_of(
        {"frame_index": i, "timestamp_s": i / 10, "result": {"det": d}}
        for i, d in enumerate(frames)
    )
    tracks = timeline["objects"]
    assert [(t["track_id"], t["class_name"], t["frames"]) for t in tracks] == [
        (1, "person", 5),
        (2, "person", 5),
        (3, "car", 5),
    ]
    assert tracks[0]["box"] == [26.0, 10.0, 76.0, 90.0] and tracks[0]["confidence"] == 0.9
    assert tracks[0]["start_s"] == 0.0 and tracks[0]["end_s"] == 0.4


def test_tracks_hold_across_a_second_between_analysed_frames() -> None:
    """A walker moving twice its width between analysed frames (no overlap from one to
    the next) stays one track; one that comes back after more than LOST_TRACK_S is new."""
    steps = [(i, [detection([10.0 + 80 * i, 40.0, 50.0 + 80 * i, 140.0])]) for i in range(4)]
    steps.append((7, [detection([10.0, 40.0, 50.0, 140.0])]))
    timeline = timeline_of(
        {"frame_index": 30 * t, "timestamp_s": float(t), "result": {"det": found}}
        for t, found in steps
    )
    assert [(t["track_id"], t["first_frame"], t["last_frame"], t["frames"]) for t in
            timeline["objects"]] == [(1, 0, 90, 4), (2, 210, 210, 1)]  # fmt: skip


def test_readings_that_are_no_text_stay_out_of_the_timeline() -> None:
    """What OCR read on a plain coloured bar ("_", a box of most of the frame), one glyph
    at 0.59 over the whole frame, and a low-confidence word are left out; what is left of
    the frame, and the results, keep what OCR read."""
    whole_frame = [[0.0, 4.0], [319.0, 0.0], [319.0, 170.0], [0.0, 178.0]]
    junk = [
        line("_", 0.95),
        line("__", 0.93, whole_frame),
        line("\u56de", 0.59, whole_frame),
        line("EXIT", MIN_TEXT_CONFIDENCE - 0.01),
        line("NO 7", 0.95, whole_frame),
    ]
    real = line("GATE 7", MIN_TEXT_CONFIDENCE)
    timeline = timeline_of(entries([[*junk, real]] * 3))
    assert [(s["text"], s["frames"]) for s in timeline["text"]] == [("GATE 7", 3)]
    assert timeline_of(entries([junk])) == {"text": [], "objects": [], "shots": []}


def test_what_makes_a_reading_plausible_text() -> None:
    def reading(text: str, confidence: float = 0.9, w: float = 80.0, h: float = 20.0) -> TextLine:
        return TextLine(text, confidence, ((0.0, 0.0), (w, 0.0), (w, h), (0.0, h)))

    for text in ("7", "a", "\u00e9t\u00e9", "\u56de", "\u0661\u0662", "x_y", " GATE 7 "):
        assert is_plausible_text(reading(text), FRAME_WH), text
    for text in ("_", "__", "", " ", "-.", "|", "\u2014", "\u3002"):
        assert not is_plausible_text(reading(text), FRAME_WH), text
    area = FRAME_WH[0] * FRAME_WH[1] * MAX_TEXT_BOX_SHARE
    assert is_plausible_text(reading("BIG", w=320.0, h=area / 320), FRAME_WH)
    assert not is_plausible_text(reading("BIG", w=320.0, h=area / 320 + 1), FRAME_WH)
    assert box_area(((0, 0), (4, 0), (4, 3), (0, 3))) == 12.0
    assert box_area(((2, 0), (4, 2), (2, 4), (0, 2))) == 8.0  # a tilted box
    with pytest.raises(ValueError, match="frame size"):
        TimelineBuilder((0, 180))


def test_the_timeline_carries_the_shots_in_order() -> None:
    builder = TimelineBuilder(FRAME_WH)
    builder.add(entries([[line("EXIT")]])[0])
    shots = [Shot(0, 0.0, 0.4, 0, 4), Shot(1, 0.5, 1.9, 5, 19)]
    timeline = builder.build(shots)
    assert timeline["shots"] == [shot.to_json() for shot in shots]
    assert timeline["shots"][1] == {
        "index": 1, "start_s": 0.5, "end_s": 1.9, "first_frame": 5, "last_frame": 19
    }  # fmt: skip


def test_timeline_is_deterministic() -> None:
    frames = [[line("B"), line("A")], [line("A"), line("B")]]
    assert timeline_of(iter(entries(frames))) == timeline_of(iter(entries(frames)))


def test_similarity_short_cuts_only_below_the_floor() -> None:
    assert text_similarity("gate 7 open", "x", 0.8) == 0.0
    assert text_similarity("gate 7 open", "gate 7 0pen", 0.8) == text_similarity(
        "gate 7 open", "gate 7 0pen"
    )
