"""Build the storage a URL names; the one place that knows every backend."""

from __future__ import annotations

from pathlib import Path

from forgesyte.storage.base import Storage
from forgesyte.storage.local import LocalStorage


def open_storage(url: str, *, s3_endpoint_url: str | None = None) -> Storage:
    """Build the storage named by a URL: file:///path (local) or s3://bucket/prefix."""
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        from forgesyte.storage.s3 import S3Storage  # boto3 costs 0.4 s: only when asked for

        return S3Storage.from_url(url, endpoint_url=s3_endpoint_url)
    raise ValueError(f"unsupported storage URL {url!r}: use file:///path or s3://bucket/prefix")
