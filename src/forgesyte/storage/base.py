"""The Storage seam: where videos and results live, addressed by server-made keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol
from uuid import UUID

_KEY_PATTERN = re.compile(r"^[a-z]+/[0-9a-f-]{36}\.[a-z0-9]+$")


class StorageError(Exception):
    """A storage operation failed (disk full, permission, network): transient or not."""


class StorageWriter(Protocol):
    """An object being written; nothing is visible under its key until commit()."""

    def write(self, chunk: bytes) -> None:
        """Append a chunk."""

    def commit(self) -> None:
        """Make the object visible under its key, all at once."""

    def abort(self) -> None:
        """Drop what was written; leaves nothing behind."""


class Storage(Protocol):
    """Blob storage keyed by paths that the server builds from job ids."""

    def open_writer(self, key: str) -> StorageWriter:
        """Start writing an object; call commit() or abort() on the writer."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object atomically."""

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading."""

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A local file path holding the object for the duration of the context."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def exists(self, key: str) -> bool:
        """Whether an object exists under the key."""


def video_key(job_id: UUID) -> str:
    """The storage key of a job's uploaded video."""
    return f"videos/{job_id}.mp4"


def results_key(job_id: UUID) -> str:
    """The storage key of a job's results: JSON Lines, one frame entry a line."""
    return f"results/{job_id}.jsonl"


def timeline_key(job_id: UUID) -> str:
    """The storage key of a job's timeline (text segments and object tracks)."""
    return f"timelines/{job_id}.json"


def check_key(key: str) -> str:
    """Refuse any key that the server did not build from a job id."""
    if not _KEY_PATTERN.match(key):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


def iter_file(handle: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Read a binary file in chunks."""
    while chunk := handle.read(chunk_size):
        yield chunk


def open_storage(url: str, *, s3_endpoint_url: str | None = None) -> Storage:
    """Build the storage named by a URL: file:///path (local) or s3://bucket/prefix."""
    if url.startswith("file://"):
        from forgesyte.storage.local import LocalStorage

        return LocalStorage(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        from forgesyte.storage.s3 import S3Storage

        storage: Storage = S3Storage.from_url(url, endpoint_url=s3_endpoint_url)
        return storage
    raise ValueError(f"unsupported storage URL {url!r}: use file:///path or s3://bucket/prefix")
