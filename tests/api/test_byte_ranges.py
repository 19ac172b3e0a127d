"""The Range header of RFC 9110: one range, clipped to the object; the rest is the whole."""

from __future__ import annotations

import pytest

from forgesyte.api.byte_ranges import (
    ByteRange,
    RangeNotSatisfiable,
    requested_range,
    unsatisfied_content_range,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=0-499", (0, 499)),
        ("bytes=500-", (500, 999)),
        ("bytes=990-2000", (990, 999)),  # an end past the object is clipped
        ("bytes=-1", (999, 999)),
        ("bytes=-300", (700, 999)),
        ("bytes=-5000", (0, 999)),  # a suffix longer than the object: all of it
        ("BYTES = 10 - 20 ", (10, 20)),  # case and spaces
        ("bytes=999-", (999, 999)),
        ("bytes=5-" + "9" * 40, (5, 999)),  # an end longer than any number: to the end
    ],
)
def test_one_range_is_clipped_to_the_object(header: str, expected: tuple[int, int]) -> None:
    found = requested_range(header, SIZE)
    assert found == ByteRange(*expected, SIZE)
    assert found.content_range == f"bytes {expected[0]}-{expected[1]}/{SIZE}"
    assert found.length == expected[1] - expected[0] + 1


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=0-1,5-6",  # several ranges: the whole object (documented)
        "items=0-5",  # another unit
        "bytes=20-10",  # backwards: not a valid range, ignored
        "bytes=abc",
        "bytes=-",
        "bytes=1-2-3",
    ],
)
def test_no_several_foreign_or_malformed_ranges_mean_the_whole_object(header: str | None) -> None:
    assert requested_range(header, SIZE) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", SIZE),
        ("bytes=1000-1005", SIZE),
        ("bytes=" + "9" * 40 + "-", SIZE),
        ("bytes=-0", SIZE),
        ("bytes=0-", 0),  # an empty object satisfies no range
        ("bytes=-5", 0),
    ],
)
def test_a_range_past_the_end_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_range(header, size)
    assert unsatisfied_content_range(size) == f"bytes */{size}"
