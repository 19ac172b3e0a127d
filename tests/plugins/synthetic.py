"""What the plugin tests draw and build: tiny ONNX YOLO models and synthetic frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from forgesyte.plugins.base import Frame


def candidate(
    cx: float, cy: float, w: float, h: float, scores: dict[int, float], num_classes: int
) -> list[float]:
    """One column of a YOLO output: cx, cy, w, h, then a score per class."""
    column = [cx, cy, w, h] + [0.0] * num_classes
    for class_id, score in scores.items():
        column[4 + class_id] = score
    return column


def yolo_output(columns: list[list[float]]) -> np.ndarray:
    """Columns (one per candidate) as a 1 x (4 + C) x N float32 YOLO output."""
    return np.asarray(columns, dtype=np.float32).T[None].copy()


def build_yolo_onnx(
    path: Path,
    output: np.ndarray,
    *,
    input_hw: tuple[int | str, int | str] = (64, 64),
    names: str | None = None,
    red_mean_at: tuple[int, int] | None = None,
) -> Path:
    """Write a tiny ONNX model in the Ultralytics layout whose output is ``output``.

    The model reads its input: the mean of the input's first channel (R, after the
    tool's BGR -> RGB) times a mask is added to the output. With ``red_mean_at=(row, n)``
    the mask is 1 at that one place, so that output value shows what the model was fed.
    """
    mask = np.zeros_like(output, dtype=np.float32)
    if red_mean_at is not None:
        mask[0, red_mean_at[0], red_mean_at[1]] = 1.0
    initializers = [
        numpy_helper.from_array(output.astype(np.float32), "constant_output"),
        numpy_helper.from_array(mask, "mask"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["red"]),
        helper.make_node("ReduceMean", ["red"], ["red_mean"], keepdims=0),
        helper.make_node("Mul", ["mask", "red_mean"], ["masked"]),
        helper.make_node("Add", ["constant_output", "masked"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def draw_plate(
    frame: Frame, top_left: tuple[int, int] = (220, 150), text: str = "A123BC77"
) -> None:
    """Draw a white plate with a black border and dark characters, 200 x 45 px."""
    x, y = top_left
    cv2.rectangle(frame, (x, y), (x + 200, y + 45), (255, 255, 255), -1)
    cv2.rectangle(frame, (x, y), (x + 200, y + 45), (0, 0, 0), 2)
    cv2.putText(frame, text, (x + 8, y + 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 3)


def plate_frame() -> Frame:
    """A 640 x 360 grey frame with one plate at (220, 150)-(420, 195)."""
    frame = np.full((360, 640, 3), 90, np.uint8)
    draw_plate(frame)
    return frame


def face_frame() -> Frame:
    """A 640 x 360 frame with a cartoon face (skin oval, brows, eyes, nose, mouth)."""
    frame = np.full((360, 640, 3), 200, np.uint8)
    cx, cy = 320, 180
    cv2.ellipse(frame, (cx, cy), (70, 95), 0, 0, 360, (150, 180, 220), -1)
    for dx in (-28, 28):
        cv2.ellipse(frame, (cx + dx, cy - 25), (14, 8), 0, 0, 360, (40, 40, 40), -1)
        cv2.line(frame, (cx + dx - 18, cy - 45), (cx + dx + 18, cy - 45), (30, 30, 30), 5)
    cv2.line(frame, (cx, cy - 15), (cx, cy + 20), (110, 130, 170), 6)
    cv2.ellipse(frame, (cx, cy + 45), (30, 10), 0, 0, 360, (60, 60, 140), -1)
    return frame


def person_frame() -> Frame:
    """A 640 x 360 light frame with a dark standing figure (head, torso, arms, legs)."""
    frame = np.full((360, 640, 3), 230, np.uint8)
    colour, cx = (40, 40, 40), 320
    cv2.circle(frame, (cx, 80), 18, colour, -1)
    cv2.rectangle(frame, (cx - 22, 100), (cx + 22, 190), colour, -1)
    cv2.line(frame, (cx - 22, 105), (cx - 40, 185), colour, 12)
    cv2.line(frame, (cx + 22, 105), (cx + 40, 185), colour, 12)
    cv2.line(frame, (cx - 10, 190), (cx - 18, 290), colour, 16)
    cv2.line(frame, (cx + 10, 190), (cx + 18, 290), colour, 16)
    return frame
