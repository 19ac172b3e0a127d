"""`yolo.detect` on tiny ONNX models built by the tests: decoding, NMS, mapping back, names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.coco import COCO_CLASS_NAMES
from forgesyte.plugins.yolo import YoloDetect, parse_class_names, plugin, to_input_tensor

from .conftest import YoloModelFactory
from .synthetic import candidate, yolo_output

NAMES = "{0: 'cat', 1: 'dog', 2: 'plate'}"


def frame_640x360(bgr: tuple[int, int, int] = (30, 60, 90)) -> np.ndarray:
    """A uniform 640 x 360 BGR frame."""
    return np.full((360, 640, 3), bgr, dtype=np.uint8)


def test_input_tensor_is_rgb_chw_in_0_to_1() -> None:
    tensor = to_input_tensor(np.full((2, 3, 3), (255, 0, 51), np.uint8))
    assert tensor.shape == (1, 3, 2, 3) and tensor.dtype == np.float32
    assert tensor[0, :, 0, 0].tolist() == pytest.approx([0.2, 0.0, 1.0])


def test_detect_thresholds_suppresses_and_maps_back_to_the_frame(
    make_yolo_model: YoloModelFactory,
) -> None:
    # Model input 64 x 64; a 640 x 360 frame is scaled by 0.1 and padded 14 rows on top,
    # so frame = ((x - 0) / 0.1, (y - 14) / 0.1).
    columns = [
        candidate(20, 30, 16, 8, {0: 0.9, 1: 0.1}, 3),  # A: kept -> 120, 120, 280, 200
        candidate(21, 30, 16, 8, {0: 0.8}, 3),  # A moved 1 px, same class: IoU 0.88, dropped
        candidate(20, 30, 16, 8, {1: 0.7}, 3),  # A's box, other class: kept
        candidate(28, 30, 16, 8, {0: 0.5}, 3),  # A moved 8 px: IoU 1/3 < 0.45, kept
        candidate(50, 40, 8, 6, {2: 0.3}, 3),  # kept -> 460, 230, 540, 290
        candidate(50, 20, 4, 4, {0: 0.2}, 3),  # below the threshold
        candidate(50, 20, 4, 4, {1: 0.25}, 3),  # at the threshold: not above it, dropped
        candidate(40, 14, 10, 8, {0: 0.6}, 3),  # half in the top padding: clipped at y = 0
        candidate(30, 5, 10, 4, {0: 0.95}, 3),  # wholly in the padding: nothing left, dropped
    ]
    tool = YoloDetect(make_yolo_model(yolo_output(columns), names=NAMES))
    assert tool.unavailable_reason() is None
    tool.load()
    assert tool.input_wh == (64, 64)
    assert tool.class_names == ("cat", "dog", "plate")
    found = tool.run(frame_640x360(), {"image": None}).to_json()
    assert {tuple(d) for d in found} == {("xyxy", "confidence", "class_id", "class_name")}
    assert [(d["xyxy"], d["confidence"], d["class_id"], d["class_name"]) for d in found] == [
        ([120.0, 120.0, 280.0, 200.0], 0.9, 0, "cat"),
        ([120.0, 120.0, 280.0, 200.0], 0.7, 1, "dog"),
        ([350.0, 0.0, 450.0, 40.0], 0.6, 0, "cat"),
        ([200.0, 120.0, 360.0, 200.0], 0.5, 0, "cat"),
        ([460.0, 230.0, 540.0, 290.0], 0.3, 2, "plate"),
    ]


def test_the_model_sees_the_letterboxed_frame_in_rgb(make_yolo_model: YoloModelFactory) -> None:
    # The model adds the mean of its R input channel to this candidate's score. A pure red
    # frame gives 36 rows of R = 1.0 and 28 rows of grey padding (114 / 255) out of 64.
    output = yolo_output([candidate(32, 32, 10, 10, {}, 1)])
    tool = YoloDetect(make_yolo_model(output, names="{0: 'red'}", red_mean_at=(4, 0)))
    (found,) = tool.run(frame_640x360((0, 0, 255)), {}).to_json()
    assert found["confidence"] == round((36 + 28 * 114 / 255) / 64, 4) == 0.7581
    assert len(tool.run(frame_640x360((255, 0, 0)), {})) == 0  # blue: R mean 0.2, below 0.25


def test_coco_names_by_default(make_yolo_model: YoloModelFactory) -> None:
    output = yolo_output([candidate(32, 32, 10, 10, {2: 0.8}, 80)])
    (found,) = YoloDetect(make_yolo_model(output)).run(frame_640x360(), {}).to_json()
    assert (found["class_id"], found["class_name"]) == (2, "car")
    assert len(COCO_CLASS_NAMES) == 80


def test_generic_names_for_a_model_without_names_or_80_classes(
    make_yolo_model: YoloModelFactory,
) -> None:
    tool = YoloDetect(make_yolo_model(yolo_output([candidate(1, 1, 1, 1, {}, 2)])))
    tool.load()
    assert tool.class_names == ("class_0", "class_1")


def test_a_model_with_free_input_size_gets_640(make_yolo_model: YoloModelFactory) -> None:
    output = yolo_output([candidate(320, 320, 100, 50, {0: 0.5}, 1)])
    tool = YoloDetect(make_yolo_model(output, input_hw=("height", "width"), names="{0: 'a'}"))
    (found,) = tool.run(frame_640x360(), {}).to_json()
    assert tool.input_wh == (640, 640)
    # Scale 1, 140 rows of padding on top.
    assert found["xyxy"] == [270.0, 155.0, 370.0, 205.0]


def test_the_session_loads_once(make_yolo_model: YoloModelFactory) -> None:
    tool = YoloDetect(make_yolo_model(yolo_output([candidate(1, 1, 1, 1, {}, 1)])))
    tool.load()
    session = tool.session
    tool.run(frame_640x360(), {})
    tool.load()
    assert tool.session is session


def test_unavailable_without_a_model(tmp_path: Path) -> None:
    assert YoloDetect(None).unavailable_reason() == (
        "no YOLO model configured: set FORGESYTE_YOLO_MODEL to an ONNX file"
    )
    missing = tmp_path / "nope.onnx"
    assert YoloDetect(missing).unavailable_reason() == (
        f"YOLO model file {missing.name} does not exist (FORGESYTE_YOLO_MODEL)"
    )
    with pytest.raises(RuntimeError, match=r"yolo\.detect cannot run: YOLO model file"):
        YoloDetect(missing).load()


def test_plugin_takes_the_model_path_and_threads_from_its_config(tmp_path: Path) -> None:
    tool = plugin().tools["detect"]
    assert "FORGESYTE_YOLO_MODEL" in (tool.unavailable_reason() or "")
    tool = plugin(PluginConfig(yolo_model=tmp_path / "m.onnx", analysis_threads=2)).tools["detect"]
    assert isinstance(tool, YoloDetect) and tool.model_path == tmp_path / "m.onnx"
    assert tool.threads == 2


def test_a_file_that_is_not_onnx_fails_to_load_clearly(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="could not be loaded by ONNX Runtime"):
        YoloDetect(path).load()


def test_names_must_match_the_output(make_yolo_model: YoloModelFactory) -> None:
    path = make_yolo_model(yolo_output([candidate(1, 1, 1, 1, {}, 2)]), names="{0: 'a'}")
    with pytest.raises(
        RuntimeError,
        match=r"output shape \[1, 6, 1\] has 2 class scores but metadata names 1 classes",
    ):
        YoloDetect(path).load()


def test_parse_class_names() -> None:
    assert parse_class_names({}) is None
    assert parse_class_names({"names": "{1: 'b', 0: 'a'}"}) == ("a", "b")
    assert parse_class_names({"names": "['a', 'b']"}) == ("a", "b")
    with pytest.raises(ValueError, match="not a class-name mapping"):
        parse_class_names({"names": "{0: 'a', 2: 'c'}"})
    with pytest.raises(ValueError, match="not a class-name mapping"):
        parse_class_names({"names": "{0: "})


def test_an_output_of_another_layout_is_refused(make_yolo_model: YoloModelFactory) -> None:
    # An NMS-free end-to-end export gives 1 x 300 x 6 (x1, y1, x2, y2, score, class).
    end_to_end = make_yolo_model(np.zeros((1, 300, 6), np.float32), names="{0: 'a'}")
    with pytest.raises(RuntimeError, match="end-to-end exports are not supported"):
        YoloDetect(end_to_end).load()
    flat = make_yolo_model(np.zeros((6, 10), np.float32))
    with pytest.raises(RuntimeError, match=r"output shape \[6, 10\] is not 1 x \(4 \+ classes\)"):
        YoloDetect(flat).load()
