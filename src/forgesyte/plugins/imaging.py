"""Fitting a frame into a detector's square input (letterbox), and mapping boxes back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import cv2
import numpy as np

from forgesyte.plugins.base import Frame
from forgesyte.plugins.detections import Detections

PAD_VALUE = 114  # grey of the letterbox border, as in Ultralytics


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: ``input = frame * scale + pad``."""

    scale: float
    pad_xy: tuple[int, int]
    frame_wh: tuple[int, int]

    def to_frame(self, found: Detections) -> Detections:
        """Detections in model-input pixels mapped back, ``(xy - pad) / scale``, and clipped."""
        pad = np.array(self.pad_xy * 2, dtype=np.float64)
        return replace(found, xyxy=(found.xyxy - pad) / self.scale).clipped(self.frame_wh)


def letterbox(frame: Frame, input_wh: tuple[int, int]) -> tuple[Frame, Letterbox]:
    """Resize a frame to fit input_wh keeping its aspect ratio, centred on a grey border.

    Rounding follows Ultralytics, so a model sees the same pixels as under `yolo predict`.
    """
    height, width = frame.shape[:2]
    input_w, input_h = input_wh
    scale = min(input_w / width, input_h / height)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_w, pad_h = (input_w - new_w) / 2, (input_h - new_h) / 2
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    resized = frame
    if (new_w, new_h) != (width, height):
        resized = cast(Frame, cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
    padded = cv2.copyMakeBorder(
        resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return cast(Frame, padded), Letterbox(scale, (left, top), (width, height))
