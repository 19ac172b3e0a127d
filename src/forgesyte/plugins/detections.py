"""The shared detection type: boxes in frame pixels, each with a class and a confidence.

Every detector tool (``yolo.detect``, the ``opencv`` tools) gives the output type
``"detections"``: a JSON list of ``{"xyxy": [x1, y1, x2, y2], "confidence": float,
"class_id": int, "class_name": str}``. Boxes are in frame pixels, rounded to
``BOX_DIGITS`` decimals; confidences to ``CONFIDENCE_DIGITS``. The list is sorted by
confidence (highest first), then by box, so the same frame always gives the same bytes.

In code, detections are a `Detections` value (column arrays, as in Roboflow's supervision)
built by named constructors (`Detections.from_yolo_output`, `Detections.from_opencv_rects`)
and turned into JSON once, by `Detections.to_json`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import IMAGE_TYPE, Frame, Tool

DETECTIONS_TYPE = "detections"
"""The output type of every detector tool."""

BOX_DIGITS = 1
CONFIDENCE_DIGITS = 4

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class DetectionJson(TypedDict):
    """One detection as JSON (other tools may add keys, e.g. ``text_lines``)."""

    xyxy: list[float]
    confidence: float
    class_id: int
    class_name: str


@dataclass(frozen=True)
class Detections:
    """N detections as columns: ``xyxy`` (N x 4), ``confidence`` (N), ``class_id`` (N).

    ``class_names`` holds one name per detection. Coordinates are pixels of whatever image
    the detector saw until mapped back with `unletterboxed` and `clipped`.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        count = len(self.class_names)
        if (
            self.xyxy.shape != (count, 4)
            or self.confidence.shape != (count,)
            or self.class_id.shape != (count,)
        ):
            raise ValueError(
                f"detection columns disagree: xyxy {self.xyxy.shape}, confidence "
                f"{self.confidence.shape}, class_id {self.class_id.shape}, "
                f"{count} class names"
            )

    def __len__(self) -> int:
        return len(self.class_names)

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(
            xyxy=np.zeros((0, 4), dtype=np.float64),
            confidence=np.zeros(0, dtype=np.float64),
            class_id=np.zeros(0, dtype=np.int64),
            class_names=(),
        )

    @classmethod
    def from_yolo_output(
        cls,
        output: npt.NDArray[Any],
        class_names: Sequence[str],
        *,
        confidence_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
    ) -> Detections:
        """Decode an Ultralytics-layout YOLO output and apply class-wise NMS.

        ``output`` is ``1 x (4 + C) x N`` (or ``(4 + C) x N``): per candidate ``cx, cy, w, h``
        in model-input pixels, then C class scores. Each candidate takes its best class;
        candidates scoring more than ``confidence_threshold`` survive, then boxes of one
        class that overlap a better box by more than ``iou_threshold`` IoU are dropped.
        Boxes stay in model-input pixels (see `unletterboxed`).
        """
        rows = np.asarray(output, dtype=np.float64)
        if rows.ndim == 3 and rows.shape[0] == 1:
            rows = rows[0]
        num_classes = len(class_names)
        if rows.ndim != 2 or rows.shape[0] != 4 + num_classes:
            raise ValueError(
                f"YOLO output of shape {tuple(np.shape(output))} does not match "
                f"1 x (4 + {num_classes} classes) x N"
            )
        candidates = rows.T
        scores = candidates[:, 4:]
        class_id = scores.argmax(axis=1).astype(np.int64)
        confidence = scores[np.arange(len(candidates)), class_id]
        keep = confidence > confidence_threshold
        cxcywh, confidence, class_id = candidates[keep, :4], confidence[keep], class_id[keep]
        half_wh = cxcywh[:, 2:] / 2
        xyxy = np.concatenate([cxcywh[:, :2] - half_wh, cxcywh[:, :2] + half_wh], axis=1)
        kept = class_wise_nms(xyxy, confidence, class_id, iou_threshold)[:max_detections]
        return cls(
            xyxy=xyxy[kept],
            confidence=confidence[kept],
            class_id=class_id[kept],
            class_names=tuple(class_names[i] for i in class_id[kept]),
        )

    @classmethod
    def from_opencv_rects(
        cls,
        rects: npt.ArrayLike,
        class_name: str,
        *,
        class_id: int = 0,
        confidence: npt.ArrayLike | None = None,
    ) -> Detections:
        """Detections from OpenCV ``(x, y, w, h)`` rectangles, all of one class.

        ``confidence`` gives one score per rectangle; without it every score is 1.0.
        """
        xywh = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        count = len(xywh)
        if confidence is None:
            scores = np.ones(count, dtype=np.float64)
        else:
            scores = np.asarray(confidence, dtype=np.float64).reshape(-1)
            if scores.shape != (count,):
                raise ValueError(f"{count} rectangles but {scores.size} confidences")
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return cls(
            xyxy=xyxy,
            confidence=scores,
            class_id=np.full(count, class_id, dtype=np.int64),
            class_names=(class_name,) * count,
        )

    def unletterboxed(self, scale: float, pad_xy: tuple[float, float]) -> Detections:
        """Map boxes from a letterboxed image back to the original: ``(xy - pad) / scale``."""
        pad = np.array([pad_xy[0], pad_xy[1], pad_xy[0], pad_xy[1]], dtype=np.float64)
        return Detections(
            (self.xyxy - pad) / scale, self.confidence, self.class_id, self.class_names
        )

    def clipped(self, resolution_wh: tuple[int, int]) -> Detections:
        """Clip boxes to an image of this width and height; drop boxes left with no area."""
        width, height = resolution_wh
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return Detections(
            xyxy[keep],
            self.confidence[keep],
            self.class_id[keep],
            tuple(name for name, kept in zip(self.class_names, keep, strict=True) if kept),
        )

    def to_json(self) -> list[DetectionJson]:
        """The detections as JSON, rounded, sorted by confidence (highest first) then box."""
        items: list[DetectionJson] = [
            {
                "xyxy": [round(float(v), BOX_DIGITS) for v in box],
                "confidence": round(float(score), CONFIDENCE_DIGITS),
                "class_id": int(class_id),
                "class_name": name,
            }
            for box, score, class_id, name in zip(
                self.xyxy, self.confidence, self.class_id, self.class_names, strict=True
            )
        ]
        items.sort(key=lambda d: (-d["confidence"], d["xyxy"], d["class_id"], d["class_name"]))
        return items


def box_iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one xyxy box against each of N xyxy boxes."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod((bottom_right - top_left).clip(min=0), axis=1)
    area = np.prod((box[2:] - box[:2]).clip(min=0))
    areas = np.prod((boxes[:, 2:] - boxes[:, :2]).clip(min=0), axis=1)
    union = area + areas - inter
    iou: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def class_wise_nms(
    xyxy: FloatArray, confidence: FloatArray, class_id: IntArray, iou_threshold: float
) -> IntArray:
    """Greedy non-maximum suppression within each class; indices kept, best first.

    A box is dropped when it overlaps a better-scoring box of its class by more than
    ``iou_threshold``. Ties in score keep the earlier box (a stable sort).
    """
    order = np.argsort(-confidence, kind="stable")
    suppressed = np.zeros(len(order), dtype=bool)
    kept: list[int] = []
    for rank, index in enumerate(order):
        if suppressed[rank]:
            continue
        kept.append(int(index))
        rest = order[rank + 1 :]
        same_class = class_id[rest] == class_id[index]
        overlapping = box_iou(xyxy[index], xyxy[rest]) > iou_threshold
        suppressed[rank + 1 :] |= same_class & overlapping
    return np.array(kept, dtype=np.int64)


def parse_detections(value: Any) -> list[dict[str, Any]]:
    """Check that a value is a ``detections`` list; return it as a list of dicts.

    Raises ValueError naming the first malformed item. Extra keys are kept.
    """
    if not isinstance(value, list):
        raise ValueError(f"detections must be a list, got {type(value).__name__}")
    parsed: list[dict[str, Any]] = []
    for position, item in enumerate(value):
        box = item.get("xyxy") if isinstance(item, dict) else None
        if (
            not isinstance(box, list | tuple)
            or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        ):
            raise ValueError(f"detection {position} has no xyxy box of four numbers: {item!r}")
        parsed.append(dict(item))
    return parsed


class DetectorTool(Tool):
    """A tool that finds boxes in the frame: the base of every detector tool.

    It takes the frame and gives ``detections``; a subclass implements `_open` (called once,
    by `load`) and `detect`.
    """

    input_types = (IMAGE_TYPE,)
    output_types = (DETECTIONS_TYPE,)
    _opened = False

    def load(self) -> None:
        """Open the model once per process (`_open`); later calls do nothing."""
        if not self._opened:
            self._open()
            self._opened = True

    @abstractmethod
    def _open(self) -> None:
        """Open the model (a file read, a session started); RuntimeError if it cannot."""

    @abstractmethod
    def detect(self, frame: Frame) -> Detections:
        """The detections in the frame, in frame pixels."""

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        """Detect in the frame; JSON ``detections``."""
        return self.detect(frame).to_json()
