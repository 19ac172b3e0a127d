"""HTTP byte ranges (RFC 9110, section 14): which part of an object a request asks for.

One range at most. A request for several ranges (`bytes=0-1,5-6`), a unit other than
bytes, or a Range header that does not parse is answered with the whole object (200), as
the RFC allows a server to ignore Range; browsers ask for one range at a time. A single
range that starts past the object's end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
MAX_DIGITS = 18  # a position with more digits is past any object
BEYOND = 10**MAX_DIGITS  # bytes: further than any object reaches


class RangeNotSatisfiable(Exception):
    """The one range asked for lies wholly past the object's end (answer 416)."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes start..end of an object of `size` bytes, both inclusive."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """The Content-Range header of a 206 answer."""
        return f"bytes {self.start}-{self.end}/{self.size}"


def unsatisfied_content_range(size: int) -> str:
    """The Content-Range header of a 416 answer."""
    return f"bytes */{size}"


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one range a Range header asks for, clipped to the object; None: the whole object.

    `bytes=a-b`, `bytes=a-` (to the end) and `bytes=-n` (the last n bytes). Raises
    RangeNotSatisfiable when the range starts at or past the object's end (an empty
    object satisfies no range) or asks for the last 0 bytes.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.match(header)
    if match is None:
        return None  # several ranges, another unit, or not a range at all
    first, last = (_position(text) for text in match.groups())
    if first is None and last is None:
        return None
    if first is None:  # the last n bytes
        assert last is not None
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - last), size - 1, size)
    if last is not None and last < first:
        return None  # invalid: ignored, like any Range that does not parse
    if first >= size:
        raise RangeNotSatisfiable(header)
    return ByteRange(first, size - 1 if last is None else min(last, size - 1), size)


def _position(text: str) -> int | None:
    """A byte position of a Range header (None when left out); a number too long to be
    any object's position is taken as BEYOND, past every object."""
    if not text:
        return None
    return int(text) if len(text) <= MAX_DIGITS else BEYOND
