"""JSON Lines encoding, paging and streamed documents."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from forgesyte.results.encoding import encode_line, line_frame_index
from forgesyte.results.reading import Page, find_frame, stream_document, stream_lines


def stored(count: int) -> bytes:
    return b"".join(
        encode_line({"timestamp_s": i / 3, "result": {"x": i * 0.1234567891}, "frame_index": i})
        for i in range(count)
    )


def test_lines_have_sorted_keys_rounded_floats_and_frame_index_first() -> None:
    line = encode_line({"timestamp_s": 1 / 3, "result": {"b": 1, "a": "é"}, "frame_index": 7})
    assert line == '{"frame_index":7,"result":{"a":"é","b":1},"timestamp_s":0.333333}\n'.encode()
    assert line_frame_index(line) == 7
    assert encode_line({"frame_index": 0, "result": {"v": float("nan")}}).count(b"null") == 1


@pytest.mark.parametrize(
    ("offset", "limit", "indices", "next_offset"),
    [
        (0, None, list(range(10)), None),
        (0, 4, [0, 1, 2, 3], 4),
        (8, 4, [8, 9], None),
        (6, 4, [6, 7, 8, 9], None),
        (12, 3, [], None),
    ],
)
def test_pages(offset: int, limit: int | None, indices: list[int], next_offset: int | None) -> None:
    page = Page(offset, limit)
    header = {"job_id": "j", "frames_analysed": 10, "next_offset": page.next_offset(10)}
    body = b"".join(stream_document(io.BytesIO(stored(10)), header, page))
    document = json.loads(body)
    assert [entry["frame_index"] for entry in document["results"]] == indices
    assert document["next_offset"] == next_offset and document["frames_analysed"] == 10
    lines = b"".join(stream_lines(io.BytesIO(stored(10)), page))
    assert [json.loads(x)["frame_index"] for x in lines.splitlines()] == indices


def test_jsonl_is_the_stored_bytes() -> None:
    assert b"".join(stream_lines(io.BytesIO(stored(5000)), Page())) == stored(5000)


@pytest.mark.parametrize(("offset", "limit"), [(-1, None), (0, 0), (0, 1001)])
def test_bad_pages_are_refused(offset: int, limit: int | None) -> None:
    with pytest.raises(ValueError):
        Page(offset, limit)


def test_find_frame_parses_only_the_wanted_line() -> None:
    data = b"".join(
        encode_line({"frame_index": i, "result": {}, "timestamp_s": 0.0}) for i in range(0, 30, 3)
    )
    entry: dict[str, Any] | None = find_frame(io.BytesIO(data), 9)
    assert entry == {"frame_index": 9, "result": {}, "timestamp_s": 0.0}
    assert find_frame(io.BytesIO(data), 10) is None
    assert find_frame(io.BytesIO(data), 99) is None


def test_document_streams_in_bounded_chunks() -> None:
    chunks = list(stream_document(io.BytesIO(stored(20000)), {"job_id": "j"}, Page()))
    assert len(chunks) > 10 and max(len(chunk) for chunk in chunks) < 128 * 1024
    assert len(json.loads(b"".join(chunks))["results"]) == 20000
