"""Typed values become JSON once, when an entry is written; timeline and preview read that JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forgesyte.plugins.detections import Detections
from forgesyte.plugins.values import TextLine, TextLines
from forgesyte.results.encoding import encode_line
from forgesyte.results.merging import merge_segment_results
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video.shots import Shot
from forgesyte.workers.images import draw_results

FRAME_WH = (640, 360)
LINE = TextLine("GATE 7", 0.9, ((10.0, 10.0), (90.0, 10.0), (90.0, 30.0), (10.0, 30.0)))


def typed_entry(index: int) -> dict[str, Any]:
    """A frame entry as the video service hands it over: typed values from the tools."""
    plate = Detections.from_opencv_rects([[20 + index, 40, 100, 30]], "plate", confidence=[0.8])
    return {
        "frame_index": index,
        "timestamp_s": index / 10,
        "result": {
            "lines": TextLines([LINE]),
            "ocr": plate.normalised().with_text_lines([TextLines([LINE])]),
            "own": {"score": 1 / 3},  # a separate plugin's plain JSON beside them
        },
    }


def test_typed_entries_are_stored_as_their_json_and_the_timeline_reads_the_stored_lines(
    tmp_path: Path,
) -> None:
    typed = [typed_entry(i) for i in range(3)]
    plain = [json.loads(encode_line(entry)) for entry in typed]
    assert plain[0]["result"]["ocr"] == [
        {
            "xyxy": [20.0, 40.0, 120.0, 70.0],
            "confidence": 0.8,
            "class_id": 0,
            "class_name": "plate",
            "text_lines": [LINE.to_json()],
        }
    ]
    assert plain[0]["result"]["own"] == {"score": 0.333333}
    (tmp_path / "typed").mkdir()
    (tmp_path / "plain").mkdir()
    with FrameResultsWriter(tmp_path / "typed") as from_typed:
        from_typed.start(FRAME_WH)
        for entry in typed:
            from_typed.add(entry)
        from_typed.finish()
    with FrameResultsWriter(tmp_path / "plain") as from_plain:
        from_plain.start(FRAME_WH)
        for entry in plain:
            from_plain.add(entry)
        from_plain.finish()
    assert from_typed.results_path.read_bytes() == from_plain.results_path.read_bytes()
    assert from_typed.timeline_path.read_bytes() == from_plain.timeline_path.read_bytes()
    timeline = json.loads(from_typed.timeline_path.read_bytes())
    # the line read in the whole frame and the one read in the plate: two segments
    assert [(s["text"], s["frames"]) for s in timeline["text"]] == [("GATE 7", 3)] * 2
    assert [(t["class_name"], t["frames"]) for t in timeline["objects"]] == [("plate", 3)]


def test_merged_segments_give_the_unsplit_bytes(tmp_path: Path) -> None:
    (tmp_path / "whole").mkdir()
    shots = [Shot(0, 0.0, 0.1, 0, 1), Shot(1, 0.2, 0.3, 2, 3)]
    with FrameResultsWriter(tmp_path / "whole") as whole:
        whole.start(FRAME_WH)
        for index in range(4):
            whole.add(typed_entry(index))
        whole.finish(shots)
    lines = whole.results_path.read_bytes().splitlines(keepends=True)
    parts = [tmp_path / "part0", tmp_path / "part1"]
    parts[0].write_bytes(b"".join(lines[:1]))
    parts[1].write_bytes(b"".join(lines[1:]))
    (tmp_path / "merged").mkdir()
    opened = (part.open("rb") for part in parts)
    merged = merge_segment_results(opened, tmp_path / "merged", FRAME_WH, shots)
    assert merged.frames == 4
    assert merged.results_path.read_bytes() == whole.results_path.read_bytes()
    assert merged.timeline_path.read_bytes() == whole.timeline_path.read_bytes()
    assert json.loads(merged.timeline_path.read_bytes())["shots"] == [s.to_json() for s in shots]


def test_the_timeline_needs_the_frame_size_first(tmp_path: Path) -> None:
    with FrameResultsWriter(tmp_path) as writer:
        with pytest.raises(RuntimeError, match="start"):
            writer.add(typed_entry(0))
        writer.start(FRAME_WH)
        with pytest.raises(RuntimeError, match="already"):
            writer.start(FRAME_WH)


def test_the_preview_draws_what_the_timeline_reads_and_nothing_else() -> None:
    stored = json.loads(encode_line(typed_entry(0)))["result"]
    drawn = draw_results(np.zeros((120, 160, 3), np.uint8), stored)
    assert drawn[40, 60].any() and drawn[10, 50].any()  # the plate's top edge, the line's
    odd = {"odd": [{"label": "x"}, 3, {"xyxy": [1, 2, 3, 4]}, {"text": "NO BOX"}], "n": 5}
    assert not draw_results(np.zeros((120, 160, 3), np.uint8), odd).any()
