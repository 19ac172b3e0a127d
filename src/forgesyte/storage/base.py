"""The Storage seam: where videos and results live, addressed by server-made keys."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from uuid import UUID

# the error family lives in errors.py; re-exported here for callers that import it from base
from forgesyte.storage.errors import ObjectNotFound as ObjectNotFound
from forgesyte.storage.errors import StorageError as StorageError
from forgesyte.storage.errors import StorageUnavailable as StorageUnavailable

_KEY_PATTERN = re.compile(r"^[a-z]+/[0-9a-f-]{36}\.[a-z0-9]+$")


class StorageWriter(Protocol):
    """An object being written; nothing is visible under its key until commit()."""

    def write(self, chunk: bytes) -> None:
        """Append a chunk."""

    def commit(self) -> None:
        """Make the object visible under its key, all at once."""

    def abort(self) -> None:
        """Drop what was written; leaves nothing behind."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a stored object is, without reading it: its size and a tag that changes with it.

    etag: an HTTP entity tag (quoted), the same for the same bytes under the key; S3's own
    ETag, or on local storage one made of the file's size and modification time.
    """

    size: int
    etag: str


class Storage(Protocol):
    """Blob storage keyed by paths that the server builds from job ids.

    Every operation raises ObjectNotFound for a missing object, StorageUnavailable when
    the storage cannot do it (both StorageError), and ValueError for a key the server
    did not build.
    """

    def open_writer(self, key: str) -> StorageWriter:
        """Start writing an object; call commit() or abort() on the writer."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object atomically."""

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading."""

    def stat(self, key: str) -> ObjectInfo:
        """The object's size and entity tag, without reading it."""

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """Open bytes start..end (inclusive) of an object, streamed as they are read.

        0 <= start <= end (ValueError otherwise); an end past the object's last byte reads
        to its end. Only those bytes are fetched (S3: one GetObject with a Range).
        """

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A local file path holding the object for the duration of the context."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def exists(self, key: str) -> bool:
        """Whether an object exists under the key."""

    def remove_stale_temporary_files(self, min_age_s: float) -> list[str]:
        """Remove what interrupted writes left behind, untouched for min_age_s.

        Local storage: temporary files; S3: unfinished multipart uploads. Returns what
        was removed, named by key.
        """

    def keys_older_than(self, folder: str, min_age_s: float) -> dict[str, float]:
        """Keys in one folder (e.g. "videos") unchanged for min_age_s, with their mtimes.

        Mtimes are POSIX timestamps. Names that are not server-built keys are left out.
        """

    def free_bytes(self) -> int | None:
        """Free space for new objects, in bytes; None where there is no disk to fill (S3)
        or its free space cannot be read."""


def video_key(job_id: UUID) -> str:
    """The storage key of a job's uploaded video."""
    return f"videos/{job_id}.mp4"


def results_key(job_id: UUID) -> str:
    """The storage key of a job's results: JSON Lines, one frame entry a line."""
    return f"results/{job_id}.jsonl"


def timeline_key(job_id: UUID) -> str:
    """The storage key of a job's timeline (text segments and object tracks)."""
    return f"timelines/{job_id}.json"


def playable_key(job_id: UUID) -> str:
    """The storage key of a job's browser-playable H.264 copy (made when the upload is not)."""
    return f"playable/{job_id}.mp4"


def thumbnails_key(job_id: UUID) -> str:
    """The storage key of a job's thumbnails: one pack of JPEGs with its index."""
    return f"thumbnails/{job_id}.pack"


def frame_tracks_key(job_id: UUID) -> str:
    """The storage key of the track id of each detection, one JSON line per analysed frame."""
    return f"tracks/{job_id}.jsonl"


def check_range(start: int, end: int) -> None:
    """Refuse a byte range that is empty or starts before the object (a caller's bug)."""
    if start < 0 or end < start:
        raise ValueError(f"invalid byte range {start}-{end}")


def check_key(key: str) -> str:
    """Refuse any key that the server did not build from a job id."""
    if not _KEY_PATTERN.match(key):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


def segment_results_key(job_id: UUID, seq: int) -> str:
    """The storage key of one segment's results (JSON Lines) while a split job runs."""
    if seq < 0:
        raise ValueError("seq must be >= 0")
    return f"segments/{job_id}.part{seq}"
