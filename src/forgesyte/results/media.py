"""What a job's media step leaves beside its results, and how the API reads it back.

The worker's analysis child makes, once the results are written: a browser-playable H.264
copy of the video when the upload is not one (`playable_key`), one thumbnail per text
segment, object track and shot in a single pack (`thumbnails_key`), and the track id of
every detection of every analysed frame (`frame_tracks_key`, JSON Lines). The job's result
summary records what there is (`Playback`, `ThumbnailCounts`); nothing here decodes video.

The thumbnail pack is one object per job (kinder to S3 than thousands of small ones):
``MAGIC``, then one fixed-size index entry per item (text segments in timeline order, then
object tracks, then shots), then the JPEGs. An entry is the JPEG's offset from the pack's
start and its length (0: no thumbnail), so one thumbnail costs two small ranged reads.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

PLAYBACK_FIELD = "playback"  # result summary: what the browser plays (`Playback`)
THUMBNAILS_FIELD = "thumbnails"  # result summary: how many thumbnails of each kind
THUMBNAIL_KINDS = ("text", "object", "shot")  # in pack order
PACK_MAGIC = b"FSTHUMB1"
INDEX_ENTRY = struct.Struct("<QI")  # a JPEG's offset in the pack and its length, in bytes
COPY_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Playback:
    """What a browser plays for a job: the upload itself, or the worker's copy of it.

    codec is the upload's video codec as FFmpeg names it (``h264``, ``mpeg4``, ``hevc``);
    copy says whether a playable copy was stored (`playable_key`).
    """

    codec: str
    copy: bool

    def to_json(self) -> dict[str, Any]:
        """The summary's `playback` field."""
        return {"codec": self.codec, "copy": self.copy}

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any] | None) -> Playback | None:
        """The job's playback, or None when nothing plays (or the job predates playback)."""
        found = (summary or {}).get(PLAYBACK_FIELD)
        if not isinstance(found, dict) or not isinstance(found.get("codec"), str):
            return None
        return cls(found["codec"], bool(found.get("copy")))


@dataclass(frozen=True)
class ThumbnailCounts:
    """How many items of each kind the pack has an index entry for, in THUMBNAIL_KINDS order."""

    text: int = 0
    object: int = 0
    shot: int = 0

    def to_json(self) -> dict[str, int]:
        """The summary's `thumbnails` field."""
        return {kind: self.of(kind) for kind in THUMBNAIL_KINDS}

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any] | None) -> ThumbnailCounts | None:
        """The counts the summary records, or None for a job without thumbnails."""
        found = (summary or {}).get(THUMBNAILS_FIELD)
        if not isinstance(found, dict):
            return None
        return cls(**{kind: int(found.get(kind) or 0) for kind in THUMBNAIL_KINDS})

    def of(self, kind: str) -> int:
        """The count of one kind."""
        counts: int = getattr(self, kind)
        return counts

    @property
    def total(self) -> int:
        """Index entries in the pack."""
        return self.text + self.object + self.shot

    def position(self, kind: str, index: int) -> int | None:
        """The item's place in the pack's index, or None when there is no such item."""
        if kind not in THUMBNAIL_KINDS or not 0 <= index < self.of(kind):
            return None
        before = THUMBNAIL_KINDS[: THUMBNAIL_KINDS.index(kind)]
        return sum(self.of(other) for other in before) + index


def index_entry_span(position: int) -> tuple[int, int]:
    """The inclusive byte range of one index entry in a pack."""
    start = len(PACK_MAGIC) + position * INDEX_ENTRY.size
    return start, start + INDEX_ENTRY.size - 1


def read_index_entry(raw: bytes) -> tuple[int, int] | None:
    """(offset, length) of a thumbnail from its index entry's bytes; None: no thumbnail."""
    if len(raw) != INDEX_ENTRY.size:
        raise ValueError("a thumbnail index entry is cut short")
    offset, length = INDEX_ENTRY.unpack(raw)
    return (int(offset), int(length)) if length else None


class ThumbnailPackWriter:
    """Builds a pack file: JPEGs are added in any order, the index is written at `finish`.

    The JPEGs go to a temporary file beside the pack as they come, so memory holds the
    index only (12 bytes an item).
    """

    def __init__(self, path: Path, counts: ThumbnailCounts) -> None:
        self.path = path
        self.counts = counts
        self._entries = [(0, 0)] * counts.total
        # closed by finish() or on leaving the writer's context
        self._data: BinaryIO = tempfile.TemporaryFile(dir=path.parent)  # noqa: SIM115
        self._size = 0

    def add(self, kind: str, index: int, jpeg: bytes) -> None:
        """Store the thumbnail of item `index` of `kind`."""
        position = self.counts.position(kind, index)
        if position is None:
            raise ValueError(f"no {kind} item {index} in this pack")
        self._entries[position] = (self._size, len(jpeg))
        self._data.write(jpeg)
        self._size += len(jpeg)

    def finish(self) -> None:
        """Write the pack: magic, index, then the JPEGs."""
        data_start = len(PACK_MAGIC) + INDEX_ENTRY.size * len(self._entries)
        with self.path.open("wb") as pack:
            pack.write(PACK_MAGIC)
            for offset, length in self._entries:
                pack.write(INDEX_ENTRY.pack(data_start + offset if length else 0, length))
            self._data.seek(0)
            shutil.copyfileobj(self._data, pack, COPY_BUFFER_BYTES)
        self._data.close()

    def __enter__(self) -> ThumbnailPackWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._data.close()
