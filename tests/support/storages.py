"""Each storage kind the server supports, with a look behind it at what it holds.

Local storage is a folder; S3 storage is a fresh bucket on the test's S3-compatible
server (moto), below a prefix, as ``FORGESYTE_STORAGE_URL=s3://bucket/prefix`` names it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from forgesyte.storage.base import Storage
from forgesyte.storage.local import LocalStorage
from forgesyte.storage.s3 import S3Storage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STORAGE_KINDS = ["local", "s3"]
S3_PREFIX = "forgesyte"


@dataclass
class StorageBackend:
    """A storage under test and what it holds, temporary files and unfinished uploads included."""

    name: str
    storage: Storage
    root: Path | None = None  # local storage: its folder
    client: S3Client | None = None  # S3 storage: a client on its server
    bucket: str = ""
    endpoint_url: str = ""

    def contents(self) -> list[str]:
        """Every key held, plus anything half-written: a temporary file, an unfinished upload."""
        if self.root is not None:
            if not self.root.exists():
                return []
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        assert self.client is not None
        objects = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted(
            [str(item["Key"]).removeprefix(f"{S3_PREFIX}/") for item in objects]
            + [f"unfinished upload of {upload['Key']}" for upload in uploads]
        )

    def read(self, key: str) -> bytes:
        """The bytes of an object."""
        with self.storage.open(key) as handle:
            return handle.read()

    def broken(self) -> Storage:
        """The same kind of storage, unable to write or read anything."""
        if self.root is not None:
            # Root bypasses permission bits, so make the root a file: every mkdir/open fails.
            blocker = self.root.parent / "not-a-folder"
            blocker.write_bytes(b"")
            return LocalStorage(blocker)
        return S3Storage(f"missing-{uuid.uuid4().hex[:12]}", endpoint_url=self.endpoint_url)


def make_storage_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> StorageBackend:
    """A fresh storage of a kind: a folder under tmp_path, or a fresh bucket on the S3 server."""
    if kind == "local":
        root = tmp_path / "storage"
        return StorageBackend("local", LocalStorage(root), root=root)
    if kind != "s3":
        raise ValueError(f"unknown storage kind {kind!r}; known: {STORAGE_KINDS}")
    client: S3Client = request.getfixturevalue("s3_client")
    bucket: str = request.getfixturevalue("s3_bucket")
    endpoint: str = request.getfixturevalue("s3_endpoint_url")
    storage = S3Storage.from_url(f"s3://{bucket}/{S3_PREFIX}", endpoint_url=endpoint)
    return StorageBackend("s3", storage, client=client, bucket=bucket, endpoint_url=endpoint)


class StorageWrapper:
    """A storage that hands every call to another; a test's subclass overrides the calls
    it is about (slow or counted downloads)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)
