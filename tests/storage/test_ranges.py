"""Ranged reads, on local storage and on S3: stat, then bytes [start, end] and no others."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from forgesyte.storage import ObjectNotFound
from forgesyte.storage.base import video_key
from forgesyte.storage.s3 import S3Storage
from tests.support.storages import StorageBackend

MiB = 1024 * 1024


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.fixture
def stored(storage_backend: StorageBackend) -> tuple[StorageBackend, str, bytes]:
    """A 3 MiB + 17 byte object in each kind of storage."""
    key = video_key(uuid.uuid4())
    data = _payload(3 * MiB + 17)
    storage_backend.storage.put_bytes(key, data)
    return storage_backend, key, data


def test_stat_gives_the_size_and_a_quoted_tag_that_changes_with_the_bytes(
    stored: tuple[StorageBackend, str, bytes],
) -> None:
    backend, key, data = stored
    info = backend.storage.stat(key)
    assert info.size == len(data)
    assert info.etag.startswith('"') and info.etag.endswith('"') and len(info.etag) > 2
    assert backend.storage.stat(key) == info  # the same bytes, the same tag
    backend.storage.put_bytes(key, data[:-1] + b"x")
    assert backend.storage.stat(key).etag != info.etag


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),
        (0, 99),
        (5, 5),
        (MiB - 1, 2 * MiB + 3),
        (3 * MiB, 3 * MiB + 16),
        (3 * MiB + 16, 3 * MiB + 16),
    ],
)
def test_open_range_reads_exactly_the_inclusive_range(
    stored: tuple[StorageBackend, str, bytes], start: int, end: int
) -> None:
    backend, key, data = stored
    with backend.storage.open_range(key, start, end) as handle:
        assert handle.read() == data[start : end + 1]
        assert handle.read() == b""


def test_a_range_read_in_small_pieces_stops_at_its_end(
    stored: tuple[StorageBackend, str, bytes],
) -> None:
    backend, key, data = stored
    pieces = []
    with backend.storage.open_range(key, 10, 10 + 100_000) as handle:
        while piece := handle.read(4096):
            pieces.append(piece)
    assert b"".join(pieces) == data[10 : 10 + 100_001]


def test_an_end_past_the_object_reads_to_its_end(
    stored: tuple[StorageBackend, str, bytes],
) -> None:
    backend, key, data = stored
    with backend.storage.open_range(key, len(data) - 7, len(data) + 1000) as handle:
        assert handle.read() == data[-7:]


@pytest.mark.parametrize(("start", "end"), [(-1, 5), (9, 8)])
def test_a_backwards_or_negative_range_is_a_bug(
    stored: tuple[StorageBackend, str, bytes], start: int, end: int
) -> None:
    backend, key, _ = stored
    with pytest.raises(ValueError, match="invalid byte range"):
        backend.storage.open_range(key, start, end)


def test_a_missing_object_is_not_found(storage_backend: StorageBackend) -> None:
    key = video_key(uuid.uuid4())
    with pytest.raises(ObjectNotFound):
        storage_backend.storage.stat(key)
    with pytest.raises(ObjectNotFound):
        storage_backend.storage.open_range(key, 0, 10)


@pytest.mark.parametrize("storage_backend", ["s3"], indirect=True)
def test_s3_asks_for_the_range_only(stored: tuple[StorageBackend, str, bytes]) -> None:
    backend, key, data = stored
    storage = backend.storage
    assert isinstance(storage, S3Storage)
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    storage.client.meta.events.register("provide-client-params.s3.GetObject", record)
    with storage.open_range(key, MiB, MiB + 9) as handle:
        assert handle.read() == data[MiB : MiB + 10]
    assert [call.get("Range") for call in calls] == [f"bytes={MiB}-{MiB + 9}"]
