"""One serialiser for everything stored: sorted keys, no spaces, UTF-8, fixed float rounding.

The same video, pipeline and options therefore give byte-identical results and timeline.
"""

from __future__ import annotations

import json
import math
from typing import Any

FLOAT_DIGITS = 6  # every float stored is rounded to this many decimals


def _rounded(value: Any) -> Any:
    """The value with every float rounded to FLOAT_DIGITS (non-finite floats become None)."""
    if isinstance(value, float):
        return round(value, FLOAT_DIGITS) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def encode_json(value: Any) -> bytes:
    """Serialise deterministically: sorted keys, no spaces, rounded floats, UTF-8."""
    return json.dumps(
        _rounded(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def encode_line(entry: dict[str, Any]) -> bytes:
    """One frame entry as a JSON line (newline-terminated).

    Keys are sorted, so every line starts with ``{"frame_index":N,`` (readers rely on it to
    find a frame without parsing the whole line).
    """
    return encode_json(entry) + b"\n"


FRAME_INDEX_PREFIX = b'{"frame_index":'


def line_frame_index(line: bytes) -> int:
    """The frame_index of an encoded line, read from its prefix without parsing the line."""
    if not line.startswith(FRAME_INDEX_PREFIX):
        raise ValueError("not a frame entry line")
    end = line.index(b",", len(FRAME_INDEX_PREFIX))
    return int(line[len(FRAME_INDEX_PREFIX) : end])
