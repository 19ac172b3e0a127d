"""A submit's multipart body: one file part, read from disk in chunks as it is sent.

The video is never held whole in memory, and each attempt reads it again from its start,
so a retried submit sends the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 256 * 1024
FILE_FIELD = "file"
DEFAULT_FILENAME = "video.mp4"
UploadProgress = Callable[[int, int], object]  # (bytes of the video sent, its size)


class Upload:
    """The body of one submit: a path (opened for each attempt) or an open binary file.

    An open file must be seekable: its size goes in Content-Length before the body, and
    a retry reads it again from the position it had when the upload was made.
    """

    def __init__(
        self, source: str | os.PathLike[str] | BinaryIO, on_sent: UploadProgress | None = None
    ) -> None:
        self._on_sent = on_sent
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        if isinstance(source, str | os.PathLike):
            self._path = Path(source)
            if not self._path.is_file():
                raise FileNotFoundError(f"{source}: no such file")
            self.size = self._path.stat().st_size
            name = self._path.name
        else:
            seekable = getattr(source, "seekable", None)
            if isinstance(source, io.TextIOBase) or not (callable(seekable) and seekable()):
                raise TypeError("submit needs a path or an open binary file that can seek")
            self._file = source
            self._start = source.tell()
            self.size = source.seek(0, io.SEEK_END) - self._start
            source.seek(self._start)
            name = Path(str(getattr(source, "name", DEFAULT_FILENAME))).name
        boundary = uuid.uuid4().hex
        # quotes and line breaks would end the header early: the server reads the base name
        filename = "".join(c for c in name if c not in '"\r\n\\') or DEFAULT_FILENAME
        self._head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{FILE_FIELD}"; '
            f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.length = len(self._head) + self.size + len(self._tail)

    def chunks(self) -> Iterator[bytes]:
        """The body, the video read CHUNK_BYTES at a time; reports progress as it goes.

        Exactly the announced size is read: a file that changed meanwhile ends the upload
        with an OSError rather than a body of another length than Content-Length says.
        """
        yield self._head
        with self._opened() as handle:
            sent = 0
            while sent < self.size:
                chunk = handle.read(min(CHUNK_BYTES, self.size - sent))
                if not chunk:
                    raise OSError(
                        f"the video got shorter while it was sent ({sent} of {self.size} bytes)"
                    )
                yield chunk
                sent += len(chunk)
                if self._on_sent is not None:
                    self._on_sent(sent, self.size)
        yield self._tail

    @contextlib.contextmanager
    def _opened(self) -> Iterator[BinaryIO]:
        """The video at its start: the path opened afresh, or the open file sought back."""
        if self._path is not None:
            with self._path.open("rb") as handle:
                yield handle
        else:
            assert self._file is not None
            self._file.seek(self._start)
            yield self._file
