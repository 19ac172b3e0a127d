"""Local filesystem storage: objects are files below one root folder."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from forgesyte.storage.base import ObjectInfo, check_key, check_range
from forgesyte.storage.errors import ObjectNotFound, unavailable

TEMPORARY_PREFIX = "."  # writers name their temporary files ".<final name>.<random>"


class LocalFileWriter:
    """Writes to a temporary file beside the target and renames it into place on commit."""

    def __init__(self, target: Path) -> None:
        self._target = target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f"{TEMPORARY_PREFIX}{target.name}.", dir=target.parent
            )
        except OSError as exc:
            raise unavailable("cannot write to storage", exc) from exc
        self._tmp = Path(tmp)
        self._handle: BinaryIO = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        """Append a chunk to the temporary file."""
        try:
            self._handle.write(chunk)
        except OSError as exc:
            self.abort()
            raise unavailable("cannot write to storage", exc) from exc

    def commit(self) -> None:
        """Flush, fsync and rename into place."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._tmp, self._target)
        except OSError as exc:
            self.abort()
            raise unavailable("cannot write to storage", exc) from exc

    def abort(self) -> None:
        """Close and remove the temporary file."""
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)


class _FileSpan(io.RawIOBase):
    """A raw stream over `length` bytes of an open file from its current position."""

    def __init__(self, handle: Any, length: int) -> None:
        self._handle = handle  # a binary file: readinto() fills a buffer
        self._left = length

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill the buffer from the file, never past the span; 0 at its end."""
        view = memoryview(buffer).cast("B")[: self._left]
        if not view:
            return 0
        count = self._handle.readinto(view) or 0
        self._left -= count
        return count

    def close(self) -> None:
        """Close the file."""
        if not self.closed:
            self._handle.close()
        super().close()


class LocalStorage:
    """Storage on the local filesystem, rooted at one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def free_bytes(self) -> int | None:
        """Free space on the root's filesystem for this user (None when it cannot be read).

        The root may not exist yet (it is made on the first write): its nearest existing
        parent is on the same filesystem the first write will make it on.
        """
        folder = self.root
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            return None

    def open_writer(self, key: str) -> LocalFileWriter:
        """Start writing an object; it appears under its key only on commit()."""
        return LocalFileWriter(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object atomically (temporary name, then rename)."""
        writer = self.open_writer(key)
        writer.write(data)
        writer.commit()

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading."""
        path = self._path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at {key}") from None
        except OSError as exc:
            raise unavailable("cannot read from storage", exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        """The file's size, and an entity tag of its size and modification time (in ns).

        An object is written once (a new one replaces it by rename, with a new mtime), so
        the tag changes whenever the bytes under the key do.
        """
        try:
            status = self._path(key).stat()
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at {key}") from None
        except OSError as exc:
            raise unavailable("cannot read from storage", exc) from exc
        return ObjectInfo(status.st_size, f'"{status.st_size:x}-{status.st_mtime_ns:x}"')

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """Bytes start..end (inclusive) of the file: a seek, then reads that stop at end."""
        check_range(start, end)
        handle = self.open(key)
        try:
            handle.seek(start)
        except OSError as exc:
            handle.close()
            raise unavailable("cannot read from storage", exc) from exc
        return io.BufferedReader(_FileSpan(handle, end - start + 1))

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """The object's own file: local storage needs no copy."""
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object at {key}")
        yield path

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise unavailable("cannot delete from storage", exc) from exc

    def exists(self, key: str) -> bool:
        """Whether an object exists under the key."""
        return self._path(key).is_file()

    def _entries_older_than(self, min_age_s: float) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(folder name, file entry) for every file one level down, unchanged for min_age_s."""
        cutoff = time.time() - min_age_s
        if not self.root.is_dir():
            return
        for folder in os.scandir(self.root):
            if not folder.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(folder.path):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    yield folder.name, entry

    def remove_stale_temporary_files(self, min_age_s: float) -> list[str]:
        """Remove temporary files unchanged for min_age_s: writes a crash interrupted.

        Returns the removed files' paths relative to the root.
        """
        removed = []
        try:
            for folder, entry in self._entries_older_than(min_age_s):
                if entry.name.startswith(TEMPORARY_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed.append(f"{folder}/{entry.name}")
        except OSError as exc:
            raise unavailable("cannot sweep storage", exc) from exc
        return removed

    def keys_older_than(self, folder: str, min_age_s: float) -> dict[str, float]:
        """Keys in one folder (e.g. "videos") unchanged for min_age_s, with their mtimes."""
        found = {}
        try:
            for name, entry in self._entries_older_than(min_age_s):
                key = f"{name}/{entry.name}"
                if name == folder and not entry.name.startswith(TEMPORARY_PREFIX):
                    with contextlib.suppress(ValueError):
                        found[check_key(key)] = entry.stat().st_mtime
        except OSError as exc:
            raise unavailable("cannot list storage", exc) from exc
        return found
