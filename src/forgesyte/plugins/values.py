"""The values tools hand each other, and how they become JSON: once, when a frame is stored.

A tool returns typed values (`TextLines`, `Detections`: `JsonConvertible`), plain JSON (a
separate plugin's) or a mix; boxes and confidences handed on are rounded as stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

BOX_DIGITS = 1  # decimals of a box coordinate, in pixels
CONFIDENCE_DIGITS = 4  # decimals of a confidence


@runtime_checkable
class JsonConvertible(Protocol):
    """A typed value: ``to_json()`` gives its JSON-ready data (which may hold more of them)."""

    def to_json(self) -> Any: ...


def json_ready(value: Any, float_digits: int | None = None) -> Any:
    """The value as plain JSON: each `JsonConvertible` made its ``to_json()``, tuples lists,
    keys strings, recursively; with float_digits, floats rounded (non-finite ones None)."""
    if isinstance(value, float) and float_digits is not None:
        return round(value, float_digits) if math.isfinite(value) else None
    if isinstance(value, str | int | float) or value is None:
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


@dataclass(frozen=True)
class TextLine:
    """One line of text read in a frame: ``box`` is its corners ``(x, y)`` in frame pixels."""

    text: str
    confidence: float
    box: tuple[tuple[float, float], ...]

    @classmethod
    def rounded(cls, text: str, confidence: float, box: Sequence[Sequence[float]]) -> TextLine:
        """A line as a reader reports it: confidence and corners rounded (see the module)."""
        corners = tuple((round(float(x), BOX_DIGITS), round(float(y), BOX_DIGITS)) for x, y in box)
        return cls(text, round(float(confidence), CONFIDENCE_DIGITS), corners)

    def placed_in(self, rect: tuple[int, int, int, int]) -> TextLine:
        """The line read in a crop at ``(x1, y1, x2, y2)``, in frame pixels, inside the crop."""
        x1, y1, x2, y2 = rect

        def place(v: float, low: int, high: int) -> float:
            return round(min(max(v + low, low), high), BOX_DIGITS)

        return replace(self, box=tuple((place(x, x1, x2), place(y, y1, y2)) for x, y in self.box))

    @classmethod
    def from_json(cls, item: Any) -> TextLine | None:
        """The line a JSON item is, or None: the one definition of a text line. An object with
        a string ``text``, a ``box`` of ``[x, y]`` number pairs and a number ``confidence``
        (0 when absent or null); numbers stay as stored."""
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return None
        box, confidence = item.get("box"), item.get("confidence") or 0.0
        if not isinstance(box, list) or not is_number(confidence):
            return None
        if all(isinstance(p, list) and len(p) == 2 and all(map(is_number, p)) for p in box):
            return cls(item["text"], confidence, tuple((x, y) for x, y in box))
        return None

    def to_json(self) -> dict[str, Any]:
        """``{"text", "confidence", "box"}``, box as ``[[x, y], ...]``."""
        return {"text": self.text, "confidence": self.confidence, "box": list(map(list, self.box))}


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
