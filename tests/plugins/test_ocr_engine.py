"""`ocr.read`'s engine settings, and its word accuracy against RapidOCR's defaults."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from rapidocr import RapidOCR

from forgesyte.plugins.base import Frame
from forgesyte.plugins.ocr import (
    DETECTION_LONG_SIDE,
    RECOGNITION_BATCH,
    OcrRead,
    engine_params,
    plugin,
    session_options,
)
from forgesyte.plugins.values import TextLines

# (words, font, scale, thickness, baseline y) of each line, for a 480 x 270 frame
LINES = (
    (("HARBOUR", "4172"), cv2.FONT_HERSHEY_DUPLEX, 1.2, 2, 45),
    (("Garden", "Bakery", "Coffee"), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2, 95),
    (("PLATFORM", "59023", "EXIT"), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1, 140),
    (("Monday", "TICKET", "Silver", "ROUTE"), cv2.FONT_HERSHEY_COMPLEX, 0.5, 1, 185),
    (("DANGER", "POWER"), cv2.FONT_HERSHEY_DUPLEX, 0.9, 2, 240),
)


def test_the_engine_settings() -> None:
    params = engine_params(None)
    assert params["Det.limit_type"] == "max"  # shrink a large frame, never enlarge one
    assert params["Det.limit_side_len"] == DETECTION_LONG_SIDE == 640
    assert params["Global.use_cls"] is False
    assert params["Rec.rec_batch_num"] == RECOGNITION_BATCH == 1
    assert not any(key.startswith("EngineConfig") for key in params)  # ORT's own threads
    assert not any("model" in key for key in params)  # bundled models: nothing downloaded
    threaded = engine_params(3, angle_classifier=True, detection_long_side=1280)
    assert threaded["Global.use_cls"] is True
    assert threaded["Det.limit_side_len"] == 1280
    assert threaded["EngineConfig.onnxruntime.intra_op_num_threads"] == 3
    assert threaded["EngineConfig.onnxruntime.inter_op_num_threads"] == 1


def test_a_detection_size_under_32_pixels_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        OcrRead(detection_long_side=16)


def test_sessions_are_reopened_without_spinning() -> None:
    tool = OcrRead(threads=1)
    tool.load()
    for model in (tool._engine.text_det, tool._engine.text_rec):
        options = model.session.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 1
    assert session_options(None).intra_op_num_threads == 0  # ONNX Runtime's own default


def test_the_angle_classifier_loads_only_when_asked_for() -> None:
    tool = plugin().tools["read"]
    assert isinstance(tool, OcrRead) and tool.angle_classifier is False
    tool.load()
    assert tool._engine.text_det is not None and tool._engine.text_rec is not None
    assert tool._engine.text_cls is None
    with_angles = OcrRead(angle_classifier=True)
    with_angles.load()
    assert with_angles._engine.text_cls is not None


def test_no_recognition_when_nothing_is_detected() -> None:
    tool = OcrRead()
    tool.load()
    recognised: list[int] = []
    recogniser = tool._engine.text_rec
    original = recogniser.__call__

    class Counting:
        def __call__(self, args: object) -> object:
            recognised.append(1)
            return original(args)

    tool._engine.text_rec = Counting()
    try:
        assert tool.run(np.full((360, 640, 3), 128, np.uint8), {"image": None}) == TextLines()
        assert recognised == []
        frame = np.full((360, 640, 3), 255, np.uint8)
        cv2.putText(frame, "HELLO", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
        assert [line.text for line in tool.run(frame, {"image": None})] == ["HELLO"]
        assert recognised == [1]
    finally:
        tool._engine.text_rec = recogniser


def known_words_frame(index: int) -> tuple[Frame, list[str]]:
    """A 480 x 270 frame of five lines of varied size, font and colour; and its words."""
    frame = np.full((270, 480, 3), (150, 140, 130), np.uint8)
    words: list[str] = []
    for line_index, (line_words, font, scale, thickness, y) in enumerate(LINES):
        shown = [w if w.isalpha() else str(int(w) + index) for w in line_words]
        text = " ".join(shown)
        (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
        paper, ink = (
            ((240, 240, 240), (20, 20, 20)) if line_index % 2 else ((60, 30, 20), (255,) * 3)
        )
        cv2.rectangle(frame, (12, y - height - 8), (28 + width, y + baseline + 6), paper, -1)
        cv2.putText(frame, text, (20, y), font, scale, ink, thickness, cv2.LINE_AA)
        words += shown
    return frame, words


def write_video(path: Path, frames: list[Frame]) -> list[Frame]:
    """Write the frames as an mp4v video and read them back (what a job decodes)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded: list[Frame] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame)
    capture.release()
    return decoded


def words_read(texts: list[str], words: list[str]) -> int:
    """How many of the known words are among the words of the texts read."""
    got = Counter(word for text in texts for word in re.split(r"\s+", text) if word)
    return sum((got & Counter(words)).values())


def test_word_accuracy_matches_rapidocr_defaults(tmp_path: Path) -> None:
    made = [known_words_frame(index) for index in range(2)]
    decoded = write_video(tmp_path / "words.mp4", [frame for frame, _ in made])
    assert len(decoded) == 2
    tool = OcrRead()
    defaults = RapidOCR(params={"Global.log_level": "warning"})
    total = ours = theirs = 0
    for frame, (_, words) in zip(decoded, made, strict=True):
        lines = tool.run(frame, {"image": None})
        ours += words_read([line.text for line in lines], words)
        theirs += words_read(list(defaults(frame).txts or ()), words)
        total += len(words)
        for line in lines:  # boxes: four corners inside the frame
            assert len(line.box) == 4
            assert all(0 <= x <= 480 and 0 <= y <= 270 for x, y in line.box)
    assert total == 28
    assert ours / total >= 0.95
    assert ours / total >= theirs / total - 0.02
