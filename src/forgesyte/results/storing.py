"""Moving a finished job's local results and timeline files into storage, all or nothing."""

from __future__ import annotations

import contextlib
from pathlib import Path

from forgesyte.storage.base import Storage, StorageError, StorageWriter

UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # bytes read from a local file per storage write


class StagedUpload:
    """Local files written to storage writers, made visible together by `commit`.

    Each file is streamed in chunks to `storage.open_writer(key)` (S3: a multipart upload;
    local: a temporary file), so nothing is readable under its key before `commit`; `abort`
    (or leaving the context without committing) drops everything written.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._writers: list[StorageWriter] = []
        self._committed: list[str] = []
        self._pending_keys: list[str] = []

    def upload(self, path: Path, key: str) -> None:
        """Stream a local file to a writer for `key` (not yet visible)."""
        writer = self._storage.open_writer(key)
        self._writers.append(writer)
        self._pending_keys.append(key)
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(UPLOAD_CHUNK_BYTES):
                    writer.write(chunk)
        except OSError as exc:
            raise StorageError(f"cannot read the local results file: {exc.strerror}") from exc

    def commit(self) -> list[str]:
        """Make every uploaded object visible; on a failure, remove those already made so."""
        try:
            for writer, key in zip(self._writers, self._pending_keys, strict=True):
                writer.commit()
                self._committed.append(key)
        except StorageError:
            self.abort()
            raise
        self._writers = []
        return list(self._committed)

    def abort(self) -> None:
        """Drop every writer not committed and delete every object committed by this upload."""
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.abort()
        for key in self._committed:
            with contextlib.suppress(Exception):
                self._storage.delete(key)
        self._writers, self._committed = [], []

    def __enter__(self) -> StagedUpload:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._writers:
            self.abort()
