"""The values tools hand each other, and how they become JSON: once, when a frame is stored.

A tool returns typed values (`Detections`, `TextLines`, anything `JsonConvertible`), plain
JSON-ready data (what a separately installed plugin returns), or a mix; `json_ready` makes
JSON of either. Tools report boxes in frame pixels rounded to BOX_DIGITS decimals and
confidences rounded to CONFIDENCE_DIGITS, as the values they hand on, so the next tool
sees what is stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

BOX_DIGITS = 1  # decimals of a box coordinate, in pixels
CONFIDENCE_DIGITS = 4  # decimals of a confidence


@runtime_checkable
class JsonConvertible(Protocol):
    """A typed value: ``to_json()`` gives its JSON-ready data (which may hold more of them)."""

    def to_json(self) -> Any:
        """The value as JSON-ready data."""


def json_ready(value: Any, float_digits: int | None = None) -> Any:
    """The value as plain JSON data: each `JsonConvertible` replaced by its ``to_json()``,
    tuples made lists, keys made strings, recursively. With float_digits, floats are
    rounded to that many decimals and non-finite ones become None (what is stored)."""
    if isinstance(value, float):
        if float_digits is None:
            return value
        return round(value, float_digits) if math.isfinite(value) else None
    if isinstance(value, str | int) or value is None:
        return value
    if isinstance(value, dict):
        return {str(key): json_ready(item, float_digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item, float_digits) for item in value]
    if isinstance(value, JsonConvertible):
        return json_ready(value.to_json(), float_digits)
    return value


def is_number(value: Any) -> bool:
    """An int or a float, not a bool: a number as JSON has it."""
    return isinstance(value, int | float) and not isinstance(value, bool)


Point = tuple[float, float]


@dataclass(frozen=True)
class TextLine:
    """One line of text read in a frame: ``box`` is its corners ``(x, y)`` in frame pixels."""

    text: str
    confidence: float
    box: tuple[Point, ...]

    @classmethod
    def rounded(cls, text: str, confidence: float, box: Sequence[Sequence[float]]) -> TextLine:
        """A line as a reader reports it: confidence and corners rounded (see the module)."""
        corners = tuple((round(float(x), BOX_DIGITS), round(float(y), BOX_DIGITS)) for x, y in box)
        return cls(text, round(float(confidence), CONFIDENCE_DIGITS), corners)

    def placed_in(self, rect: tuple[int, int, int, int]) -> TextLine:
        """The line read in a crop of the frame at rect ``(x1, y1, x2, y2)``, in frame pixels:
        corners shifted by the crop's corner, kept inside it, rounded."""
        left, top, right, bottom = rect
        corners = tuple(
            (
                round(min(max(x + left, left), right), BOX_DIGITS),
                round(min(max(y + top, top), bottom), BOX_DIGITS),
            )
            for x, y in self.box
        )
        return TextLine(self.text, self.confidence, corners)

    @classmethod
    def from_json(cls, item: Any) -> TextLine | None:
        """The line a JSON item is, or None if it is none: the one definition of a text line.

        A text line is an object with a string ``text`` and a ``box`` of ``[x, y]`` number
        pairs; its ``confidence``, a number, is 0 when absent. Numbers stay as stored.
        """
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return None
        box, confidence = item.get("box"), item.get("confidence", 0.0)
        if not isinstance(box, list) or not is_number(confidence):
            return None
        if not all(
            isinstance(point, list) and len(point) == 2 and all(map(is_number, point))
            for point in box
        ):
            return None
        return cls(item["text"], confidence, tuple((x, y) for x, y in box))

    def to_json(self) -> dict[str, Any]:
        """``{"text", "confidence", "box"}``, box as ``[[x, y], ...]``."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "box": [[x, y] for x, y in self.box],
        }


class TextLines(tuple[TextLine, ...]):
    """The lines read in a frame or a box, in reading order (`ocr.read`'s ``ocr_lines``)."""

    @classmethod
    def from_json(cls, value: Any) -> TextLines:
        """The text lines among a JSON list's items (others ignored); none if not a list."""
        items = value if isinstance(value, list) else ()
        return cls(line for line in map(TextLine.from_json, items) if line is not None)

    def to_json(self) -> list[dict[str, Any]]:
        """A JSON list of `TextLine.to_json`."""
        return [line.to_json() for line in self]
