"""S3-compatible object storage: objects live in one bucket, below an optional prefix.

Credentials and region come from boto3's usual sources (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ~/.aws, instance roles). A custom
endpoint (MinIO, Ceph, a test server) is named by ``endpoint_url``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from forgesyte.storage.base import ObjectInfo, check_key, check_range
from forgesyte.storage.errors import ObjectNotFound, StorageError, StorageUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_SIZE = 5 * 1024 * 1024  # bytes: S3's smallest part, except the last one
DEFAULT_PART_SIZE = 8 * 1024 * 1024  # bytes: 10,000 parts make an 80 GB object
DOWNLOAD_CHUNK_SIZE = 1024 * 1024  # bytes read at a time when copying an object out

# Error codes S3 (and compatible servers) use for a key or bucket that is not there.
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET_CODE = "NoSuchBucket"
# Answers that say "not now" whatever their status: throttling (the codes botocore's
# standard retry mode treats so) and the request timeouts S3 answers with a 400.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)
# What a call of the S3 client raises: botocore's errors, and a malformed answer, which
# escapes botocore's parser as a ValueError (a field it cannot read) or ResponseParserError.
S3_CALL_ERRORS = (BotoCoreError, ClientError, ResponseParserError, ValueError)
CONNECT_TIMEOUT_S = 3.0  # a refused or unrouted endpoint is noticed this fast
READ_TIMEOUT_S = 10.0  # seconds without a byte of an answer: the connection is dead
MAX_ATTEMPTS = 3  # botocore's own tries of one call (about 3 s of backoff in all)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    """One line saying what went wrong, without a stack trace."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "") or "error"
        message = error.get("Message", "")
        if code == _MISSING_BUCKET_CODE:
            return "the bucket does not exist"
        if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return f"access denied ({code}); check the S3 credentials and bucket policy"
        return f"{code}: {message}" if message else code
    if not isinstance(exc, BotoCoreError):
        return f"a malformed answer ({type(exc).__name__})"
    return str(exc)


def is_transient(exc: Exception) -> bool:
    """Whether a failed S3 call may succeed later unchanged: what botocore's standard retry
    mode retries (a refused, dropped or timed-out connection; an answer of 5xx, 429 or a
    throttling or timeout code), and a body cut short. A missing key or bucket, a refused
    credential and a malformed answer are permanent.

    botocore turns an S3 answer of 200 whose body it cannot parse into a 500 (S3 may put
    an error in a 200's body): that one is transient, as botocore's own retries treat it.
    """
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or status == 429 or _error_code(exc) in _TRANSIENT_CODES
    return isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError))


def storage_error(exc: Exception, action: str, where: str) -> StorageError:
    """The storage error for a failed S3 call: the one place botocore errors are translated.

    A missing key is ObjectNotFound; anything else (network, credentials, a missing
    bucket, a server error, a malformed answer) is StorageUnavailable, transient or not
    (`is_transient`). Raise it ``from None``: botocore's chain carries request details
    that have no place in an error message.
    """
    if isinstance(exc, ClientError) and _error_code(exc) in _MISSING_KEY_CODES:
        return ObjectNotFound(f"no object at {where}", reason="no such object")
    described = _describe(exc)
    # botocore's own messages can quote the request URL: a client sees only the error's kind
    reason = type(exc).__name__ if isinstance(exc, BotoCoreError) else described
    return StorageUnavailable(
        f"cannot {action} {where}: {described}",
        reason=f"cannot {action}: {reason}",
        transient=is_transient(exc),
    )


class S3Writer:
    """Streams an object to S3 as a multipart upload while its data comes in.

    Data is buffered until a full part is there; the first full part starts the
    multipart upload. An object that never fills a part is sent with one put on
    commit(). Nothing is visible under the key until commit() succeeds; abort()
    (also run on any failure) aborts the multipart upload so no part is kept.
    A writer must end in commit() or abort(): an abandoned one leaves an
    unfinished upload that only a bucket lifecycle rule would clean up.
    """

    def __init__(self, client: S3Client, bucket: str, key: str, part_size: int) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._closed = False

    @property
    def _where(self) -> str:
        return f"s3://{self._bucket}/{self._key}"

    def write(self, chunk: bytes) -> None:
        """Append a chunk; every full part is uploaded at once."""
        if self._closed:
            raise ValueError(f"write to a closed writer for {self._where}")
        self._buffer += chunk
        try:
            while len(self._buffer) >= self._part_size:
                self._upload_part(bytes(self._buffer[: self._part_size]))
                del self._buffer[: self._part_size]
        except S3_CALL_ERRORS as exc:
            self.abort()
            raise storage_error(exc, "write", self._where) from None

    def _upload_part(self, data: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    def commit(self) -> None:
        """Complete the upload (or put a small object whole); the object appears at once."""
        if self._closed:
            raise ValueError(f"commit of a closed writer for {self._where}")
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except S3_CALL_ERRORS as exc:
            self.abort()
            raise storage_error(exc, "write", self._where) from None
        self._buffer.clear()
        self._closed = True

    def abort(self) -> None:
        """Drop the buffered data and abort the multipart upload; safe to call twice."""
        self._closed = True
        self._buffer.clear()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            # Best effort: a failure here must not hide the error that led to abort().
            with contextlib.suppress(*S3_CALL_ERRORS):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=upload_id
                )


class _BodyReader(io.RawIOBase):
    """A raw binary stream over a botocore StreamingBody, for io.BufferedReader."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill the buffer from the response body; 0 at the end of the object."""
        view = memoryview(buffer).cast("B")
        try:
            data: bytes = self._body.read(len(view))
        except BotoCoreError as exc:
            raise storage_error(exc, "read", self._where) from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the HTTP response."""
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3Storage:
    """Storage in an S3-compatible bucket; keys are stored below an optional prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | None = None,
        endpoint_url: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 storage needs a bucket name")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.client: S3Client = client if client is not None else make_client(endpoint_url)

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3Storage:
        """Build the storage for ``s3://bucket/prefix`` (the prefix is optional)."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"invalid S3 storage URL {url!r}: use s3://bucket/prefix")
        return cls(parsed.netloc, parsed.path, endpoint_url=endpoint_url)

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self, object_key: str) -> str:
        return f"s3://{self.bucket}/{object_key}"

    def open_writer(self, key: str) -> S3Writer:
        """Start writing an object; it appears under its key only on commit()."""
        return S3Writer(self.client, self.bucket, self._object_key(key), self.part_size)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object with one put, which S3 makes visible atomically."""
        object_key = self._object_key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=object_key, Body=data)
        except S3_CALL_ERRORS as exc:
            raise storage_error(exc, "write", self._where(object_key)) from None

    def _get_body(self, object_key: str, byte_range: str | None = None) -> Any:
        """The streaming body of an object (of a `bytes=a-b` range of it, if given);
        ObjectNotFound if the key is missing."""
        try:
            if byte_range is None:
                return self.client.get_object(Bucket=self.bucket, Key=object_key)["Body"]
            answer = self.client.get_object(Bucket=self.bucket, Key=object_key, Range=byte_range)
            return answer["Body"]
        except S3_CALL_ERRORS as exc:
            raise storage_error(exc, "read", self._where(object_key)) from None

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading, streamed from S3 as it is read."""
        object_key = self._object_key(key)
        body = self._get_body(object_key)
        return io.BufferedReader(_BodyReader(body, self._where(object_key)))

    def stat(self, key: str) -> ObjectInfo:
        """The object's size and S3's ETag (one HeadObject)."""
        object_key = self._object_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=object_key)
        except S3_CALL_ERRORS as exc:
            raise storage_error(exc, "look up", self._where(object_key)) from None
        return ObjectInfo(int(head["ContentLength"]), str(head["ETag"]))

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """Bytes start..end (inclusive): one GetObject with that Range, streamed as read."""
        check_range(start, end)
        object_key = self._object_key(key)
        body = self._get_body(object_key, f"bytes={start}-{end}")
        return io.BufferedReader(_BodyReader(body, self._where(object_key)))

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Download the object to a temporary file, yield its path, then remove it."""
        object_key = self._object_key(key)
        body = self._get_body(object_key)
        where = self._where(object_key)
        path: Path | None = None
        try:
            try:
                with contextlib.closing(body):
                    suffix = PurePosixPath(object_key).suffix
                    fd, name = tempfile.mkstemp(prefix="forgesyte-", suffix=suffix)
                    path = Path(name)
                    with os.fdopen(fd, "wb") as handle:
                        reader = _BodyReader(body, where)
                        shutil.copyfileobj(reader, handle, DOWNLOAD_CHUNK_SIZE)
            except OSError as exc:
                raise StorageUnavailable(
                    f"cannot copy {where} to a local file: {exc}",
                    reason=f"cannot copy to a local file: {exc.strerror or exc}",
                ) from None
            yield path
        finally:
            if path is not None:
                path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""
        object_key = self._object_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except S3_CALL_ERRORS as exc:
            raise storage_error(exc, "delete", self._where(object_key)) from None

    def exists(self, key: str) -> bool:
        """Whether an object exists under the key (one HeadObject, as `stat`)."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def _folder_prefix(self, folder: str) -> str:
        """The object-key prefix of a folder ("" for the storage's root)."""
        root = f"{self.prefix}/" if self.prefix else ""
        return f"{root}{folder}/" if folder else root

    def _key_of(self, object_key: str) -> str:
        """The storage key of an object key (the prefix taken off)."""
        return object_key.removeprefix(f"{self.prefix}/") if self.prefix else object_key

    def remove_stale_temporary_files(self, min_age_s: float) -> list[str]:
        """Abort unfinished multipart uploads under the prefix idle for over min_age_s.

        A process killed mid-upload leaves one: invisible under its key, but its parts
        are kept (and billed) until aborted. An upload's age is that of its newest part
        (of its start when it has none): some S3-compatible servers report a made-up
        `Initiated` time, while a part's `LastModified` is when it arrived. An upload
        still under way in another process sends a part at least every few seconds, so
        it is never cut off. Returns the keys whose unfinished uploads were aborted.
        """
        cutoff = time.time() - min_age_s
        prefix = self._folder_prefix("")
        aborted: list[str] = []
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    key, upload_id = upload["Key"], upload["UploadId"]
                    if self._last_activity(key, upload_id, upload["Initiated"]) >= cutoff:
                        continue
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                    aborted.append(self._key_of(key))
        except S3_CALL_ERRORS as exc:
            where = self._where(prefix)
            raise storage_error(exc, "clean up unfinished uploads in", where) from None
        return aborted

    def _last_activity(self, object_key: str, upload_id: str, initiated: Any) -> float:
        """When an unfinished upload last received a part (its start if none), as a timestamp."""
        parts = self.client.list_parts(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        times = [part["LastModified"].timestamp() for part in parts.get("Parts", [])]
        return max(times) if times else float(initiated.timestamp())

    def keys_older_than(self, folder: str, min_age_s: float) -> dict[str, float]:
        """Keys in one folder (e.g. "videos") last modified more than min_age_s ago."""
        cutoff = time.time() - min_age_s
        prefix = self._folder_prefix(folder)
        found = {}
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    mtime = item["LastModified"].timestamp()
                    if mtime < cutoff:
                        with contextlib.suppress(ValueError):
                            found[check_key(self._key_of(item["Key"]))] = mtime
        except S3_CALL_ERRORS as exc:
            raise storage_error(exc, "list", self._where(prefix)) from None
        return found

    def free_bytes(self) -> None:
        """None: a bucket has no disk to fill, and an upload streams past the local one."""
        return None


def make_client(endpoint_url: str | None = None) -> S3Client:
    """An S3 client from boto3's usual credential sources.

    A custom endpoint gets path-style addressing, which S3-compatible servers
    (MinIO, Ceph, test servers) accept without wildcard DNS.
    """
    config = Config(
        # botocore rides out a blip (and, adaptive, slows its own rate when throttled);
        # a longer outage is the caller's to wait out: workers/outages.py
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "adaptive"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        tcp_keepalive=True,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    try:
        return boto3.client("s3", endpoint_url=endpoint_url, config=config)
    except BotoCoreError as exc:
        raise storage_error(exc, "set up", "the S3 client") from None
