"""One serialiser for everything stored: sorted keys, no spaces, UTF-8, fixed float rounding.

The same video, pipeline and options therefore give byte-identical results and timeline.
Typed values (detections, text lines: `forgesyte.plugins.values`) are made JSON here, once.
"""

from __future__ import annotations

import json
from typing import Any

from forgesyte.plugins.values import json_ready

FLOAT_DIGITS = 6  # every float stored is rounded to this many decimals


def encode_json(value: Any) -> bytes:
    """Serialise deterministically: typed values made JSON (`json_ready`), sorted keys, no
    spaces, floats rounded to FLOAT_DIGITS (non-finite ones null), UTF-8."""
    ready = json_ready(value, FLOAT_DIGITS)
    return json.dumps(ready, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
