"""`detect` and `detect_ocr` out of the box: listed available, and run on a real video."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from forgesyte.pipelines import PipelineRunner, load_catalog
from forgesyte.plugins import discover_plugins
from forgesyte.plugins.base import Frame, PluginConfig
from forgesyte.plugins.objects import MODEL_PATH, ObjectsDetect, plugin
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService

from .photos import photo

INSIDE_TEXT = "KX 4718"
OUTSIDE_TEXT = "ZEBRA 95"
INSIDE_AT = (60, 280)
"""Where the inside plaque's text starts: on the flank of horses.jpg's white horse."""


def plaque(image: Frame, text: str, x: int, y: int) -> None:
    """Black text on a white plaque, baseline at (x, y)."""
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
    cv2.rectangle(image, (x - 8, y - height - 10), (x + width + 8, y + base + 6), (255,) * 3, -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2, cv2.LINE_AA)


def labelled_horses_video(path: Path, frames: int = 2) -> Path:
    """horses.jpg with a number plaque on the white horse and one on the bare ground, as an
    MP4."""
    image = photo("horses")
    plaque(image, INSIDE_TEXT, *INSIDE_AT)  # a race number on the white horse
    plaque(image, OUTSIDE_TEXT, 520, 440)  # lower right: grass, no object
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


def test_detect_pipelines_are_listed_available_on_a_fresh_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORGESYTE_YOLO_MODEL", raising=False)
    registry = discover_plugins()
    assert "objects" in registry.plugins and registry.broken == {}
    catalog = load_catalog(registry)
    assert catalog.refused == {}
    assert catalog.pipelines["detect"].available
    assert catalog.pipelines["detect_ocr"].available
    assert not catalog.pipelines["yolo_detect"].available  # still there, for a user's model
    assert not catalog.pipelines["yolo_ocr"].available


def test_plugin_hands_the_analysis_threads_to_onnx_runtime() -> None:
    tool = plugin(PluginConfig(analysis_threads=1)).tools["detect"]
    assert isinstance(tool, ObjectsDetect) and tool.threads == 1
    assert tool.model_path == MODEL_PATH and tool.unavailable_reason() is None


def test_a_missing_model_makes_the_tool_unavailable(tmp_path: Path) -> None:
    tool = ObjectsDetect(tmp_path / "absent.onnx")
    assert tool.unavailable_reason() == (
        "bundled detector model absent.onnx is missing from the package"
    )
    with pytest.raises(RuntimeError, match=r"objects\.detect cannot run"):
        tool.load()


def test_detect_ocr_reads_text_inside_objects_only(tmp_path: Path) -> None:
    registry = discover_plugins(PluginConfig(analysis_threads=2))
    catalog = load_catalog(registry)
    video = labelled_horses_video(tmp_path / "labelled_horses.mp4")
    runner = PipelineRunner(catalog.pipelines["detect_ocr"].definition, registry)
    runner.load()
    results = VideoFilePipelineService(runner).run(video, SamplingOptions())
    assert len(results.frames) == 2
    for frame in results.frames:
        objects = frame.result["ocr"].to_json()
        assert {d["class_name"] for d in objects} == {"horse"} and len(objects) >= 2
        # one horse reads its plaque; no other horse reads anything, the ground's plaque is
        # attached to nothing
        read = [d for d in objects if d["text_lines"]]
        assert [[line["text"] for line in d["text_lines"]] for d in read] == [[INSIDE_TEXT]]
        x1, y1, x2, y2 = read[0]["xyxy"]  # the white horse's box, with the plaque in it
        assert x1 <= INSIDE_AT[0] <= x2 and y1 <= INSIDE_AT[1] <= y2
    # The outside plaque is real, readable text: the whole-frame OCR pipeline reads it.
    reader = PipelineRunner(catalog.pipelines["ocr_only"].definition, registry)
    reader.load()
    whole = VideoFilePipelineService(reader).run(video, SamplingOptions(max_frames=1))
    read = [line.text for line in whole.frames[0].result["ocr"]]
    assert OUTSIDE_TEXT in read and INSIDE_TEXT in read
