"""Streaming multipart upload: the file part goes to storage chunk by chunk as it arrives.

Nothing is held whole in memory. The size limit is enforced while the body streams in,
and nothing becomes visible in storage until the caller commits the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from forgesyte.api.errors import BadRequest, PayloadTooLarge, RequestTimeout, ServiceUnavailable
from forgesyte.storage import StorageError, StorageWriter

FILE_FIELD = "file"
MP4_SNIFF_BYTES = 64
FLUSH_BYTES = 1 << 20  # write to storage in chunks of about 1 MiB
MAX_FIELD_BYTES = 1024
MAX_FIELDS = 32
ENVELOPE_BYTES = 64 * 1024  # what the multipart envelope and form fields may add to the file
IDLE_TIMEOUT_S = 60.0  # seconds without a byte from the client before an upload is dropped


class UploadAborted(Exception):
    """The client went away before the upload ended."""


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the upload exceeds the limit of {max_bytes / (1 << 20):g} MiB")


def looks_like_mp4(head: bytes) -> bool:
    """Whether the first bytes hold an ISO base media `ftyp` box, as every MP4 starts with."""
    return head.find(b"ftyp", 0, MP4_SNIFF_BYTES) >= 4


@dataclass
class _PartState:
    name: str | None = None
    filename: str | None = None
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    value: bytearray = field(default_factory=bytearray)


@dataclass
class ReceivedUpload:
    """What the body held: the small form fields and the file, written but not committed."""

    fields: dict[str, str]
    writer: StorageWriter
    size: int


class _Receiver:
    """Collects multipart callbacks into form fields and buffered file bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.part = _PartState()
        self.buffer = bytearray()
        self.head = bytearray()
        self.file_seen = False
        self.file_done = False
        self.size = 0
        self.sniffed = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self.part.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.part.header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.part = _PartState()

    def _header_end(self) -> None:
        name = bytes(self.part.header_field).decode("latin-1").lower()
        self.part.headers[name] = bytes(self.part.header_value)
        self.part.header_field.clear()
        self.part.header_value.clear()

    def _headers_finished(self) -> None:
        disposition = self.part.headers.get("content-disposition", b"")
        _, params = parse_options_header(disposition)
        name = params.get(b"name")
        filename = params.get(b"filename")
        self.part.name = name.decode("utf-8", "replace") if name is not None else None
        self.part.filename = filename.decode("utf-8", "replace") if filename is not None else None
        if self.part.name == FILE_FIELD:
            if self.file_seen:
                raise BadRequest("only one 'file' field may be sent")
            self.file_seen = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.name == FILE_FIELD:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            if not self.sniffed:
                self.head.extend(chunk[: MP4_SNIFF_BYTES - len(self.head)])
                if len(self.head) >= MP4_SNIFF_BYTES:
                    self._sniff()
            self.buffer.extend(chunk)
            return
        self.part.value.extend(chunk)
        if len(self.part.value) > MAX_FIELD_BYTES:
            raise BadRequest(f"form field {self.part.name!r} is too long")

    def _part_end(self) -> None:
        if self.part.name == FILE_FIELD:
            self.file_done = True
            if not self.sniffed:
                self._sniff()
        elif self.part.name is not None:
            if len(self.fields) >= MAX_FIELDS:
                raise BadRequest("too many form fields")
            self.fields[self.part.name] = self.part.value.decode("utf-8", "replace")

    def _sniff(self) -> None:
        self.sniffed = True
        if not self.head:
            raise BadRequest("the uploaded file is empty")
        if not looks_like_mp4(bytes(self.head)):
            raise BadRequest(
                "the uploaded file is not an MP4 (no 'ftyp' box in its first 64 bytes)"
            )


def _boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadRequest("send the video as multipart/form-data with a 'file' field")
    return params[b"boundary"]


def _upload_error(exc: Exception) -> Exception:
    """The error a failed upload reports: an ApiError, UploadAborted, or exc itself."""
    if isinstance(exc, ClientDisconnect):
        return UploadAborted("the client disconnected during the upload")
    if isinstance(exc, StorageError):
        return ServiceUnavailable(f"storage is not accepting uploads: {exc.reason}")
    if isinstance(exc, ParseError):
        return BadRequest(f"malformed multipart body: {exc}")
    return exc


async def receive_upload(request: Request, writer: StorageWriter, max_bytes: int) -> ReceivedUpload:
    """Stream the multipart body into writer; abort the writer on any error.

    A cancelled request is left to the caller, who owns the writer and aborts it
    whatever happens before it commits.

    Raises BadRequest (not multipart, no file, empty, not MP4), PayloadTooLarge,
    RequestTimeout (nothing arrived for IDLE_TIMEOUT_S), ServiceUnavailable (storage
    write failed) or UploadAborted (client went away).
    """
    receiver = _Receiver(max_bytes)
    try:
        declared = int(request.headers.get("content-length", "0") or 0)
        if declared > max_bytes + ENVELOPE_BYTES:
            raise _too_large(max_bytes)  # refused unread
        parser = MultipartParser(_boundary(request), receiver.callbacks())  # type: ignore[arg-type]
        body_bytes = 0
        chunks = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(anext(chunks), IDLE_TIMEOUT_S)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RequestTimeout(
                    f"the upload stalled: nothing arrived for {IDLE_TIMEOUT_S:g} s"
                ) from None
            # the whole body counts (also without Content-Length): the file part is
            # checked by the receiver, everything around it against the envelope allowance
            body_bytes += len(chunk)
            if body_bytes > max_bytes + ENVELOPE_BYTES:
                raise _too_large(max_bytes)
            parser.write(chunk)
            if len(receiver.buffer) >= FLUSH_BYTES:
                data = bytes(receiver.buffer)
                receiver.buffer.clear()
                await run_in_threadpool(writer.write, data)
        parser.finalize()
        if not receiver.file_seen:
            raise BadRequest("the multipart field 'file' is missing")
        if not receiver.file_done:
            raise BadRequest("the upload ended before the file part was complete")
        if receiver.buffer:
            await run_in_threadpool(writer.write, bytes(receiver.buffer))
            receiver.buffer.clear()
    except Exception as exc:
        with contextlib.suppress(Exception):  # the error that led here is the one to report
            await run_in_threadpool(writer.abort)
        translated = _upload_error(exc)
        if translated is exc:
            raise
        raise translated from exc
    return ReceivedUpload(fields=receiver.fields, writer=writer, size=receiver.size)
