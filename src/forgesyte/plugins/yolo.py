"""The built-in `yolo` plugin: `yolo.detect` runs an ONNX YOLO detection model on ONNX Runtime.

The model is a file named by ``FORGESYTE_YOLO_MODEL``, exported in the Ultralytics layout
(e.g. ``yolo export model=yolov8n.pt format=onnx``): input ``1 x 3 x H x W`` float32 RGB in
0..1, output ``1 x (4 + C) x N`` with ``cx, cy, w, h`` in input pixels, then C class
scores. No weights ship with ForgeSyte and none are downloaded: without a model file the
tool says so through `unavailable_reason` and pipelines using it are listed as unavailable.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import Frame, PluginConfig, SimplePlugin
from forgesyte.plugins.coco import COCO_CLASS_NAMES
from forgesyte.plugins.detections import Detections
from forgesyte.plugins.imaging import letterbox
from forgesyte.plugins.onnx_session import OnnxDetector, open_cpu_session

DEFAULT_INPUT_WH = (640, 640)
"""Model input size (pixels) used when the model's input has no fixed height and width."""

LAYOUT_HINT = (
    "1 x (4 + classes) x candidates (Ultralytics detection export; NMS-free "
    "end-to-end exports are not supported)"
)


def to_input_tensor(image: Frame) -> npt.NDArray[np.float32]:
    """A BGR uint8 image as the model's input: 1 x 3 x H x W float32 RGB in 0..1."""
    rgb = image[:, :, ::-1].transpose(2, 0, 1)
    tensor: npt.NDArray[np.float32] = np.ascontiguousarray(rgb, dtype=np.float32)[None] / 255.0
    return tensor


def parse_class_names(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """Class names from an Ultralytics model's ``names`` metadata, or None if absent.

    Ultralytics stores them as a Python dict literal, ``{0: 'person', 1: 'bicycle'}``.
    """
    text = metadata.get("names")
    if not text:
        return None
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"model metadata 'names' is not a class-name mapping: {exc}") from exc
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return tuple(str(names[i]) for i in range(len(names)))
    if isinstance(names, list | tuple):
        return tuple(str(name) for name in names)
    raise ValueError(f"model metadata 'names' is not a class-name mapping: {text[:80]!r}")


def _fixed_dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class YoloDetect(OnnxDetector):
    """`yolo.detect`: objects found by an ONNX YOLO model, as ``detections``.

    Boxes are mapped back through the letterbox to frame pixels and clipped to the frame.
    Class names come from the model's ``names`` metadata when present, else COCO's 80
    (or ``class_<i>`` for a model whose class count is not 80).
    """

    name = "detect"

    def __init__(
        self,
        model_path: Path | None,
        *,
        confidence_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
        threads: int | None = None,
    ) -> None:
        super().__init__(confidence_threshold, iou_threshold, max_detections, threads)
        self.model_path = model_path
        self._input_dtype: type[np.floating[Any]] = np.float32
        self.input_wh = DEFAULT_INPUT_WH
        self.class_names: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        """Why the tool cannot run: no model configured, or no such file."""
        if self.model_path is None:
            return "no YOLO model configured: set FORGESYTE_YOLO_MODEL to an ONNX file"
        if not self.model_path.is_file():
            # the name only: the reason is shown in GET /v1/pipelines and 400 details
            return f"YOLO model file {self.model_path.name} does not exist (FORGESYTE_YOLO_MODEL)"
        return None

    def _open(self) -> None:
        """Open the ONNX session and read the model's input size and classes."""
        reason = self.unavailable_reason()
        if reason is not None or self.model_path is None:
            raise RuntimeError(f"yolo.detect cannot run: {reason}")
        try:
            session = open_cpu_session(self.model_path, self.threads)
        except Exception as exc:
            raise RuntimeError(
                f"YOLO model {self.model_path} could not be loaded by ONNX Runtime: {exc}"
            ) from exc
        model_input = session.get_inputs()[0]
        shape = list(model_input.shape)
        if len(shape) != 4 or _fixed_dim(shape[1]) not in (None, 3):
            raise RuntimeError(
                f"YOLO model {self.model_path}: input shape {shape} is not 1 x 3 x H x W"
            )
        height, width = _fixed_dim(shape[2]), _fixed_dim(shape[3])
        self.input_wh = (width, height) if width and height else DEFAULT_INPUT_WH
        self._input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.input_name = model_input.name
        self.class_names = self._class_names(session, session.get_outputs()[0].shape)
        self.session = session

    def _class_names(self, session: Any, output_shape: Sequence[Any]) -> tuple[str, ...]:
        metadata = session.get_modelmeta().custom_metadata_map
        try:
            names = parse_class_names(metadata)
        except ValueError as exc:
            raise RuntimeError(f"YOLO model {self.model_path}: {exc}") from exc
        if len(output_shape) != 3:
            raise RuntimeError(
                f"YOLO model {self.model_path}: output shape {list(output_shape)} is not "
                f"{LAYOUT_HINT}"
            )
        rows = _fixed_dim(output_shape[1])
        if names is None:
            if rows is None or rows - 4 == len(COCO_CLASS_NAMES):
                return COCO_CLASS_NAMES
            return tuple(f"class_{i}" for i in range(rows - 4))
        if rows is not None and rows - 4 != len(names):
            raise RuntimeError(
                f"YOLO model {self.model_path}: output shape {list(output_shape)} has "
                f"{rows - 4} class scores but metadata names {len(names)} classes; "
                f"expected {LAYOUT_HINT}"
            )
        return names

    def detect(self, frame: Frame) -> Detections:
        """Run the model on a frame; detections in frame pixels."""
        self.load()
        image, fit = letterbox(frame, self.input_wh)
        tensor = to_input_tensor(image).astype(self._input_dtype, copy=False)
        output, *_rest = self.session.run(None, {self.input_name: tensor})
        found = Detections.from_yolo_output(
            output,
            self.class_names,
            confidence_threshold=self.confidence_threshold,
            iou_threshold=self.iou_threshold,
            max_detections=self.max_detections,
        )
        return fit.to_frame(found)


def plugin(config: PluginConfig | None = None) -> SimplePlugin:
    """The entry point of the built-in `yolo` plugin: the model and threads come from config."""
    config = config or PluginConfig()
    return SimplePlugin("yolo", [YoloDetect(config.yolo_model, threads=config.analysis_threads)])
