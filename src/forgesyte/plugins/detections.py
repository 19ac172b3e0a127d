"""The shared detection type: boxes in frame pixels, each with a class and a confidence.

Every detector tool gives ``"detections"``: a `Detections` value (column arrays, as in
Roboflow's supervision), handed on `normalised`; ``ocr.read`` adds the text read in each
box. Its JSON is a list of ``{"xyxy": [x1, y1, x2, y2], "confidence", "class_id",
"class_name"}`` (and ``"text_lines"``) sorted by confidence (highest first), then box.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import IMAGE_TYPE, Frame, Tool
from forgesyte.plugins.values import BOX_DIGITS, CONFIDENCE_DIGITS, TextLines, is_number

DETECTIONS_TYPE = "detections"
"""The output type of every detector tool."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def is_detection(item: Any) -> bool:
    """Whether a JSON item is a detection: the one definition, the `Detections` type's.

    An object with an ``xyxy`` of four numbers and a string ``class_name``; ``confidence`` and
    ``class_id`` (numbers) are 0 when absent or null; other keys may follow.
    """
    if not isinstance(item, dict) or not isinstance(item.get("class_name"), str):
        return False
    box = item.get("xyxy")
    numbers = [item.get("confidence") or 0, item.get("class_id") or 0]
    return isinstance(box, list) and len(box) == 4 and all(map(is_number, [*box, *numbers]))


@dataclass(frozen=True)
class Detections:
    """N detections as columns: ``xyxy`` (N x 4), ``confidence`` (N), ``class_id`` (N).

    ``class_names``: one name per detection; ``text_lines``: the lines read in each box, once
    read (None before). Boxes are in the pixels the detector saw until `Letterbox.to_frame`.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    class_names: tuple[str, ...]
    text_lines: tuple[TextLines, ...] | None = None

    def __post_init__(self) -> None:
        count = len(self.class_names)
        read = count if self.text_lines is None else len(self.text_lines)
        shapes = self.xyxy.shape, self.confidence.shape, self.class_id.shape, read
        if shapes != ((count, 4), (count,), (count,), count):
            raise ValueError(
                f"detection columns disagree: xyxy, confidence, class_id, sets of text lines "
                f"{shapes}, {count} class names"
            )

    def __len__(self) -> int:
        return len(self.class_names)

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls.from_json([])

    @classmethod
    def from_json(cls, items: Sequence[Mapping[str, Any]]) -> Detections:
        """Detections from JSON items that each are one (`is_detection`), in their order."""
        lines = tuple(TextLines.from_json(item.get("text_lines")) for item in items)
        return cls(
            np.array([item["xyxy"] for item in items], dtype=np.float64).reshape(-1, 4),
            np.array([item.get("confidence") or 0 for item in items], dtype=np.float64),
            np.array([item.get("class_id") or 0 for item in items], np.float64).astype(np.int64),
            tuple(item["class_name"] for item in items),
            lines if any("text_lines" in item for item in items) else None,
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
        Boxes stay in model-input pixels (see `Letterbox.to_frame`).
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
        names = tuple(class_names[i] for i in class_id[kept])
        return cls(xyxy[kept], confidence[kept], class_id[kept], names)

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
        return cls(xyxy, scores, np.full(count, class_id, dtype=np.int64), (class_name,) * count)

    def take(self, rows: npt.NDArray[Any]) -> Detections:
        """The detections at these indices (in their order) or where this mask is True."""
        picked, lines = np.arange(len(self))[rows].tolist(), self.text_lines
        names = tuple(self.class_names[i] for i in picked)
        lines = None if lines is None else tuple(lines[i] for i in picked)
        return Detections(self.xyxy[rows], self.confidence[rows], self.class_id[rows], names, lines)

    def clipped(self, resolution_wh: tuple[int, int]) -> Detections:
        """Clip boxes to an image of this width and height; drop boxes left with no area."""
        width, height = resolution_wh
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return replace(self, xyxy=xyxy).take(keep)

    def normalised(self) -> Detections:
        """Rounded (BOX_DIGITS, CONFIDENCE_DIGITS) and sorted by confidence (highest first),
        box, class id, name: as a detector hands them on, so later tools see what is stored."""
        xyxy = [[round(v, BOX_DIGITS) for v in box] for box in self.xyxy.tolist()]
        confidence = [round(score, CONFIDENCE_DIGITS) for score in self.confidence.tolist()]
        class_id, names = self.class_id.tolist(), self.class_names
        order = sorted(
            range(len(self)), key=lambda i: (-confidence[i], xyxy[i], class_id[i], names[i])
        )
        boxes = np.array(xyxy, dtype=np.float64).reshape(-1, 4)
        rounded = replace(self, xyxy=boxes, confidence=np.array(confidence, dtype=np.float64))
        return rounded.take(np.array(order, dtype=np.int64))

    def with_text_lines(self, text_lines: Sequence[TextLines]) -> Detections:
        """The same detections, each with the text lines read inside its box."""
        return replace(self, text_lines=tuple(text_lines))

    def to_json(self) -> list[dict[str, Any]]:
        """The detections `normalised`, as JSON; with ``text_lines`` once read."""
        found = self.normalised()
        columns = found.xyxy.tolist(), found.confidence.tolist(), found.class_id.tolist()
        items = [
            dict(zip(("xyxy", "confidence", "class_id", "class_name"), row, strict=True))
            for row in zip(*columns, found.class_names, strict=True)
        ]
        for item, lines in zip(items, found.text_lines or (), strict=False):
            item["text_lines"] = lines.to_json()
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
    """Check that plain JSON (a separate plugin's) is a ``detections`` list; its items.

    Raises ValueError naming the first item that is no detection (`is_detection`).
    """
    if not isinstance(value, list):
        raise ValueError(f"detections must be a list, got {type(value).__name__}")
    for position, item in enumerate(value):
        if not is_detection(item):
            raise ValueError(
                f"detection {position} has no xyxy box of four numbers and class_name: {item!r}"
            )
    return value


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
        """Detect in the frame; the `Detections`, `normalised`."""
        return self.detect(frame).normalised()
