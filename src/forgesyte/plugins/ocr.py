"""The built-in `ocr` plugin: text lines read by RapidOCR with its bundled PP-OCR models."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from forgesyte.plugins.base import IMAGE_TYPE, Frame, SimplePlugin, Tool

CONFIDENCE_DIGITS = 4
BOX_DIGITS = 1


def _round_box(points: Any) -> list[list[float]]:
    return [[round(float(x), BOX_DIGITS), round(float(y), BOX_DIGITS)] for x, y in points]


class OcrRead(Tool):
    """`ocr.read`: every text line in the frame as {text, confidence, box}.

    With detections as input, it reads the text inside each detection's box instead and
    attaches it to that detection.
    """

    name = "read"
    input_types = (IMAGE_TYPE, "detections")
    output_types = ("ocr_lines",)

    def __init__(self) -> None:
        self._engine: Any = None

    def load(self) -> None:
        """Load the RapidOCR engine once for this process (its default, bundled models)."""
        if self._engine is None:
            from rapidocr import RapidOCR

            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
            self._engine = RapidOCR()

    def read_lines(self, image: Frame) -> list[dict[str, Any]]:
        """Run OCR on an image and return its lines in reading order."""
        self.load()
        output = self._engine(image)
        if output.txts is None or output.boxes is None or output.scores is None:
            return []
        lines = [
            {
                "text": str(text),
                "confidence": round(float(score), CONFIDENCE_DIGITS),
                "box": _round_box(box),
            }
            for text, score, box in zip(output.txts, output.scores, output.boxes, strict=True)
        ]
        return lines

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        """Read the whole frame, or the inside of each detection when detections are given."""
        return self.read_lines(frame)


def plugin() -> SimplePlugin:
    """The entry point of the built-in `ocr` plugin."""
    return SimplePlugin("ocr", [OcrRead()])
