"""The shipped pipelines load against the discovered plugins, and the detect->read ones run."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgesyte.pipelines import PipelineRunner, load_catalog
from forgesyte.plugins import discover_plugins
from forgesyte.plugins.base import PluginConfig

from .conftest import YoloModelFactory
from .synthetic import candidate, person_frame, plate_frame, yolo_output

SHIPPED = ["faces_detect", "ocr_only", "people_detect", "plates_ocr", "yolo_detect", "yolo_ocr"]
NEEDS_YOLO = {"yolo_detect", "yolo_ocr"}


def plate_model(make_yolo_model: YoloModelFactory) -> Path:
    """A tiny model that finds one `plate` where plate_frame() draws it (64 x 64 input)."""
    # Frame (220, 150)-(420, 195) is input (22, 29)-(42, 33.5): scale 0.1, 14 rows of padding.
    output = yolo_output([candidate(32, 31.25, 20, 4.5, {0: 0.8}, 1)])
    return make_yolo_model(output, names="{0: 'plate'}")


def test_every_shipped_pipeline_loads_and_yolo_ones_say_why_they_cannot_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORGESYTE_YOLO_MODEL", raising=False)
    registry = discover_plugins()
    assert {"ocr", "opencv", "yolo"} <= set(registry.plugins)
    assert registry.broken == {}
    catalog = load_catalog(registry)
    assert catalog.refused == {}
    assert set(SHIPPED) <= set(catalog.ids())
    for pipeline_id in SHIPPED:
        entry = catalog.pipelines[pipeline_id]
        if pipeline_id in NEEDS_YOLO:
            assert entry.unavailable_reason == (
                "yolo.detect: no YOLO model configured: set FORGESYTE_YOLO_MODEL to an ONNX file"
            )
        else:
            assert entry.available, pipeline_id


def test_yolo_pipelines_are_available_with_a_model(
    monkeypatch: pytest.MonkeyPatch, make_yolo_model: YoloModelFactory
) -> None:
    config = PluginConfig(yolo_model=plate_model(make_yolo_model))
    catalog = load_catalog(discover_plugins(config))
    assert catalog.refused == {}
    for pipeline_id in NEEDS_YOLO:
        assert catalog.pipelines[pipeline_id].available


def test_yolo_detect_then_read(
    monkeypatch: pytest.MonkeyPatch, make_yolo_model: YoloModelFactory
) -> None:
    registry = discover_plugins(PluginConfig(yolo_model=plate_model(make_yolo_model)))
    entry = load_catalog(registry).pipelines["yolo_ocr"]
    runner = PipelineRunner(entry.definition, registry)
    runner.load()
    (found,) = runner.run(plate_frame())["ocr"].to_json()
    text = [line["text"] for line in found.pop("text_lines")]
    assert found == {
        "xyxy": [220.0, 150.0, 420.0, 195.0],
        "confidence": 0.8,
        "class_id": 0,
        "class_name": "plate",
    }
    assert text == ["A123BC77"]


def test_plates_then_read_runs_out_of_the_box(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGESYTE_YOLO_MODEL", raising=False)
    registry = discover_plugins()
    runner = PipelineRunner(load_catalog(registry).pipelines["plates_ocr"].definition, registry)
    runner.load()
    (plate,) = runner.run(plate_frame())["ocr"].to_json()
    assert plate["class_name"] == "licence_plate"
    assert [line["text"] for line in plate["text_lines"]] == ["A123BC77"]


def test_people_detect_runs_out_of_the_box() -> None:
    registry = discover_plugins()
    runner = PipelineRunner(load_catalog(registry).pipelines["people_detect"].definition, registry)
    runner.load()
    (person,) = runner.run(person_frame())["people"].to_json()
    assert person["class_name"] == "person"
    assert len(runner.run(plate_frame())["people"]) == 0
