"""Streaming multipart upload: the file part goes to storage chunk by chunk as it arrives.

Nothing is held whole in memory. The size limit is enforced while the body streams in,
and nothing becomes visible in storage until the caller commits the writer: the submit
service (forgesyte.submission), which hands its writer over for this to fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from forgesyte.api.errors import BadRequest
from forgesyte.jobs.records import FILENAME_MAX_CHARACTERS
from forgesyte.storage import StorageWriter
from forgesyte.submission.errors import InvalidSubmission, UploadStalled, UploadTooLarge
from forgesyte.submission.service import Upload

log = logging.getLogger(__name__)

FILE_FIELD = "file"
MP4_SNIFF_BYTES = 64
FLUSH_BYTES = 1 << 20  # write to storage in chunks of about 1 MiB
MAX_FIELD_BYTES = 1024  # bytes of one small form field (an option or the pipeline id)
MAX_FIELDS = 16  # small form fields besides the file part
MAX_PARTS = MAX_FIELDS + 1  # every part of the body: the fields and the one file part
MAX_HEADER_BYTES = 1024  # bytes of one part header's name or value
# bytes of a Content-Disposition value: it carries the file's name, which is kept cut to
# 255 characters however long it came (up to 4 bytes each in UTF-8, quoting besides)
MAX_DISPOSITION_BYTES = 48 * 1024
HEADER_LINE_SYNTAX_BYTES = 128  # a header line's name and separator around its value
MAX_PART_HEADERS = 8  # headers of one part
ENVELOPE_BYTES = 64 * 1024  # what the multipart envelope and form fields may add to the file
IDLE_TIMEOUT_S = 60.0  # seconds without a byte from the client before an upload is dropped
# Unicode categories a kept filename loses: control, format, line and paragraph separators
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _too_large(max_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(f"the upload exceeds the limit of {max_bytes / (1 << 20):g} MiB")


def clean_filename(raw: bytes | None) -> str | None:
    """The base name a job keeps of an upload's filename (None when there is none).

    Bytes that are not UTF-8 become U+FFFD; the name is cut after the last `/` or `\\` (a
    path is not kept); control, format (bidirectional overrides) and line-separator
    characters are removed; spaces around it are trimmed; at most
    FILENAME_MAX_CHARACTERS characters are kept. Nothing left, `.` or `..`: None.
    """
    if raw is None:
        return None
    name = raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in HIDDEN_CATEGORIES).strip()
    name = name[:FILENAME_MAX_CHARACTERS].strip()
    return name if name not in ("", ".", "..") else None


def looks_like_mp4(head: bytes) -> bool:
    """Whether the file starts with an ISO base media `ftyp` box, as every MP4 does.

    The box type sits at bytes 4-8, right after the box's 4-byte size; `ftyp` anywhere
    else (a playlist or other text that merely mentions it) is not an MP4.
    """
    return len(head) >= 8 and head[4:8] == b"ftyp"


@dataclass
class _PartState:
    name: str | None = None
    filename: str | None = None
    header_count: int = 0
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    value: bytearray = field(default_factory=bytearray)


class _Receiver:
    """Collects multipart callbacks into form fields and buffered file bytes.

    The parser calls it from a worker thread (never on the event loop), and every
    callback bounds its work: a body of many parts, nameless parts, long headers or
    long fields is refused with a BadRequest at the first part over a limit.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.part = _PartState()
        self.buffer = bytearray()
        self.head = bytearray()
        self.file_seen = False
        self.filename: str | None = None  # the file part's, cleaned
        self.file_done = False
        self.size = 0
        self.sniffed = False
        self.parts = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_bytes(self.part.header_field, d[s:e]),
            "on_header_value": lambda d, s, e: self._header_bytes(
                self.part.header_value, d[s:e], self._value_limit()
            ),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(
                f"too many parts in the multipart body: send one '{FILE_FIELD}' part and at "
                f"most {MAX_FIELDS} form fields"
            )
        self.part = _PartState()

    def _value_limit(self) -> int:
        """The bytes the value of the header being read may have."""
        name = bytes(self.part.header_field).lower()
        return MAX_DISPOSITION_BYTES if name == b"content-disposition" else MAX_HEADER_BYTES

    @staticmethod
    def _header_bytes(target: bytearray, data: bytes, limit: int = MAX_HEADER_BYTES) -> None:
        target.extend(data)
        if len(target) > limit:
            raise BadRequest("a multipart part header is too long")

    def _header_end(self) -> None:
        self.part.header_count += 1
        if self.part.header_count > MAX_PART_HEADERS:
            raise BadRequest("a multipart part has too many headers")
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
        if not self.part.name:
            raise BadRequest("every multipart part needs a name (Content-Disposition name=...)")
        if self.part.name == FILE_FIELD:
            if self.file_seen:
                raise BadRequest("only one 'file' field may be sent")
            self.file_seen = True
            self.filename = clean_filename(filename)
        elif self.part.filename is not None:
            raise BadRequest(f"only the '{FILE_FIELD}' part may carry a file")
        elif self.part.name in self.fields:
            raise BadRequest(f"form field {self.part.name[:64]!r} is sent twice")

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
            raise BadRequest(f"form field {str(self.part.name)[:64]!r} is too long")

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
            raise BadRequest("the uploaded file is not an MP4 (bytes 4-8 are not 'ftyp')")


def _boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadRequest("send the video as multipart/form-data with a 'file' field")
    return params[b"boundary"]


async def _next_chunk(chunks: Any, deadline: float, timeout_s: float) -> bytes | None:
    """The body's next chunk (None at its end); UploadStalled past the deadline or idle."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UploadStalled(f"the upload did not finish within {timeout_s:g} s")
    try:
        chunk: bytes = await asyncio.wait_for(anext(chunks), min(IDLE_TIMEOUT_S, remaining))
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if time.monotonic() >= deadline:
            raise UploadStalled(f"the upload did not finish within {timeout_s:g} s") from None
        raise UploadStalled(
            f"the upload stalled: nothing arrived for {IDLE_TIMEOUT_S:g} s"
        ) from None
    return chunk


async def receive_upload(
    request: Request, writer: StorageWriter, max_bytes: int, timeout_s: float = 600.0
) -> Upload:
    """Stream the multipart body into writer; abort the writer on any error.

    The multipart parser runs in a worker thread, so a body built to be slow to parse
    cannot stall the event loop. The whole body must arrive within timeout_s.
    A cancelled request is left to the caller, who owns the writer and aborts it
    whatever happens before it commits.

    Raises BadRequest (not multipart, no file, empty, not MP4, a part over a limit),
    UploadTooLarge, UploadStalled (past timeout_s, or nothing arrived for IDLE_TIMEOUT_S),
    InvalidSubmission (the client went away) or the writer's StorageError.
    """
    receiver = _Receiver(max_bytes)
    deadline = time.monotonic() + timeout_s
    try:
        declared = int(request.headers.get("content-length", "0") or 0)
        if declared > max_bytes + ENVELOPE_BYTES:
            raise _too_large(max_bytes)  # refused unread
        parser = MultipartParser(
            _boundary(request),
            receiver.callbacks(),  # type: ignore[arg-type]
            max_header_size=MAX_DISPOSITION_BYTES + HEADER_LINE_SYNTAX_BYTES,
        )
        body_bytes = 0
        chunks = request.stream().__aiter__()
        while True:
            chunk = await _next_chunk(chunks, deadline, timeout_s)
            if chunk is None:
                break
            # the whole body counts (also without Content-Length): the file part is
            # checked by the receiver, everything around it against the envelope allowance
            body_bytes += len(chunk)
            if body_bytes > max_bytes + ENVELOPE_BYTES:
                raise _too_large(max_bytes)
            await run_in_threadpool(parser.write, chunk)
            if len(receiver.buffer) >= FLUSH_BYTES:
                data = bytes(receiver.buffer)
                receiver.buffer.clear()
                await run_in_threadpool(writer.write, data)
        await run_in_threadpool(parser.finalize)
        if time.monotonic() > deadline:
            raise UploadStalled(f"the upload did not finish within {timeout_s:g} s")
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
        if isinstance(exc, ClientDisconnect):
            log.info("the client disconnected during an upload")
            raise InvalidSubmission("the client disconnected during the upload") from exc
        if isinstance(exc, ParseError):
            raise BadRequest("malformed multipart body") from exc
        raise  # a refusal already, or the writer's StorageError: the submit service's to report
    return Upload(fields=receiver.fields, size=receiver.size, filename=receiver.filename)
