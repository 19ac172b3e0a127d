"""Reading stored JSON Lines results: pages, whole documents and single frames, streamed.

Nothing here holds a job's results whole: lines are read one at a time from an open
storage handle and handed on in chunks of about STREAM_CHUNK_BYTES.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from forgesyte.results.encoding import encode_json, encode_line, line_frame_index

STREAM_CHUNK_BYTES = 64 * 1024  # bytes gathered before a chunk is handed on
MAX_PAGE_LIMIT = 1000  # the most entries one page may ask for


@dataclass(frozen=True)
class Page:
    """Entries [offset, offset + limit) of a job's results; limit None means to the end."""

    offset: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError("offset must be >= 0")
        if self.limit is not None and not 1 <= self.limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_LIMIT}")

    def next_offset(self, total: int) -> int | None:
        """The offset of the next page, or None when this page reaches the end."""
        if self.limit is None:
            return None
        following = self.offset + self.limit
        return following if following < total else None


LEGACY_DOCUMENT_SUFFIX = ".json"  # results stored whole, as one JSON document (before JSON Lines)


def open_lines(handle: BinaryIO, key: str) -> BinaryIO:
    """The stored results under `key` as JSON Lines.

    Jobs completed before results were JSON Lines hold one JSON document
    (``results/<job_id>.json``); it is read whole and re-encoded as lines. Only such old
    jobs are held whole; their size was bounded by the memory of the worker that made them.
    """
    if not key.endswith(LEGACY_DOCUMENT_SUFFIX):
        return handle
    with handle:
        document = json.load(handle)
    lines = b"".join(encode_line(entry) for entry in document.get("results", []))
    return io.BytesIO(lines)


def iter_page_lines(handle: BinaryIO, page: Page) -> Iterator[bytes]:
    """The stored lines of one page (each with its newline), skipping to its offset by lines."""
    stop = None if page.limit is None else page.offset + page.limit
    for index, line in enumerate(handle):
        if stop is not None and index >= stop:
            return
        if index >= page.offset:
            yield line


def _chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= STREAM_CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def stream_lines(handle: BinaryIO, page: Page) -> Iterator[bytes]:
    """JSON Lines output (format=jsonl): the page's lines, byte for byte, in chunks.

    The handle is closed when the iterator ends or is closed.
    """
    try:
        yield from _chunked(iter_page_lines(handle, page))
    finally:
        handle.close()


def _document_pieces(handle: BinaryIO, header: dict[str, Any], page: Page) -> Iterator[bytes]:
    head = encode_json(header)
    yield head[:-1]  # the header object without its closing brace
    yield b',"results":[' if header else b'"results":['
    first = True
    for line in iter_page_lines(handle, page):
        if not first:
            yield b","
        first = False
        yield line.rstrip(b"\n")
    yield b"]}"


def stream_document(handle: BinaryIO, header: dict[str, Any], page: Page) -> Iterator[bytes]:
    """The JSON results document: the header's fields, then ``"results": [the page's lines]``.

    Written as the lines are read, so memory does not depend on the number of entries.
    The handle is closed when the iterator ends or is closed.
    """
    if "results" in header:
        raise ValueError("the header must not hold results")
    try:
        yield from _chunked(_document_pieces(handle, header, page))
    finally:
        handle.close()


def find_frame(handle: BinaryIO, frame_index: int) -> dict[str, Any] | None:
    """The stored entry of one analysed frame, or None if the job did not analyse it.

    Only the matching line is parsed; the search stops past the frame (lines are in frame
    order). The handle is closed.
    """
    with handle:
        for line in handle:
            if not line.strip():
                continue
            found = line_frame_index(line)
            if found == frame_index:
                entry: dict[str, Any] = json.loads(line)
                return entry
            if found > frame_index:
                return None
    return None
