"""One storage suite, run on local storage and on S3 (a real S3-compatible server)."""

from __future__ import annotations

import random
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from forgesyte.jobs.store import JobStore, NewJob
from forgesyte.runtime import sweep_storage
from forgesyte.storage import (
    ObjectNotFound,
    Storage,
    StorageError,
    StorageUnavailable,
    open_storage,
)
from forgesyte.storage.base import results_key, video_key
from forgesyte.storage.local import LocalStorage
from forgesyte.storage.s3 import MIN_PART_SIZE, S3Storage
from tests.support.services import S3Server, free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
CHUNK_SIZE = MiB  # bytes per write(), like an upload streamed in chunks


@dataclass
class Backend:
    """A storage under test, with a look behind it at what it left."""

    name: str
    storage: Storage
    leftovers: Callable[[], list[str]]  # temp files or unfinished uploads
    parts_of: Callable[[str], int]  # how many parts an object was uploaded in (local: 1)
    broken: Callable[[], Storage]  # the same storage kind, unable to write or read


def _local_backend(root: Path) -> Backend:
    storage = LocalStorage(root / "store")

    def leftovers() -> list[str]:
        if not storage.root.exists():
            return []
        return sorted(
            str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file()
        )

    def broken() -> Storage:
        # Root bypasses permission bits, so make the root a file: every mkdir/open fails.
        blocker = root / "not-a-folder"
        blocker.write_bytes(b"")
        return LocalStorage(blocker)

    return Backend("local", storage, leftovers, lambda _key: 1, broken)


def _s3_backend(client: S3Client, bucket: str, endpoint_url: str) -> Backend:
    storage = S3Storage.from_url(f"s3://{bucket}/tenant-a", endpoint_url=endpoint_url)

    def leftovers() -> list[str]:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [f"upload:{u['Key']}" for u in uploads]

    def parts_of(key: str) -> int:
        etag = client.head_object(Bucket=bucket, Key=f"tenant-a/{key}")["ETag"].strip('"')
        return int(etag.rsplit("-", 1)[1]) if "-" in etag else 1

    def broken() -> Storage:
        return S3Storage(f"missing-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint_url)

    return Backend("s3", storage, leftovers, parts_of, broken)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each storage implementation in turn; S3 gets a fresh bucket on the test server."""
    if request.param == "local":
        return _local_backend(tmp_path)
    client: S3Client = request.getfixturevalue("s3_client")
    bucket: str = request.getfixturevalue("s3_bucket")
    endpoint: str = request.getfixturevalue("s3_endpoint_url")
    return _s3_backend(client, bucket, endpoint)


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _write_in_chunks(storage: Storage, key: str, data: bytes) -> None:
    writer = storage.open_writer(key)
    for start in range(0, len(data), CHUNK_SIZE):
        writer.write(data[start : start + CHUNK_SIZE])
    writer.commit()


def test_chunked_write_then_commit_round_trips(backend: Backend) -> None:
    key = video_key(uuid.uuid4())
    data = _payload(17 * MiB + 123)  # three parts of 8 MiB on S3, the last one short
    writer = backend.storage.open_writer(key)
    for start in range(0, len(data), CHUNK_SIZE):
        writer.write(data[start : start + CHUNK_SIZE])
        assert not backend.storage.exists(key), "visible before commit"
    writer.commit()

    assert backend.storage.exists(key)
    with backend.storage.open(key) as handle:
        assert handle.read() == data
    if backend.name == "s3":
        assert backend.parts_of(key) == 3
    assert backend.leftovers() in ([], [key])


def test_small_object_is_written_whole(backend: Backend) -> None:
    key = results_key(uuid.uuid4())
    writer = backend.storage.open_writer(key)
    writer.write(b'{"results": ')
    writer.write(b"[]}")
    writer.commit()
    with backend.storage.open(key) as handle:
        assert handle.read() == b'{"results": []}'
    assert backend.parts_of(key) == 1


def test_abort_leaves_nothing(backend: Backend) -> None:
    key = video_key(uuid.uuid4())
    writer = backend.storage.open_writer(key)
    for chunk in range(MIN_PART_SIZE * 2 // CHUNK_SIZE + 1):  # past the first part
        writer.write(_payload(CHUNK_SIZE + chunk))
    writer.abort()
    writer.abort()  # twice is harmless

    assert not backend.storage.exists(key)
    assert backend.leftovers() == []
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


def test_abort_before_any_part_leaves_nothing(backend: Backend) -> None:
    key = video_key(uuid.uuid4())
    writer = backend.storage.open_writer(key)
    writer.write(b"a little")
    writer.abort()
    assert not backend.storage.exists(key)
    assert backend.leftovers() == []


def test_put_bytes_open_exists_delete(backend: Backend) -> None:
    key = results_key(uuid.uuid4())
    assert not backend.storage.exists(key)
    backend.storage.put_bytes(key, b"first")
    backend.storage.put_bytes(key, b"second")  # replaces whole
    assert backend.storage.exists(key)
    with backend.storage.open(key) as handle:
        assert handle.read(3) == b"sec"
        assert handle.read() == b"ond"
    backend.storage.delete(key)
    assert not backend.storage.exists(key)
    assert backend.leftovers() == []


def test_delete_of_a_missing_key_is_fine(backend: Backend) -> None:
    backend.storage.delete(video_key(uuid.uuid4()))


def test_free_bytes_is_the_local_disk_s_and_none_on_s3(backend: Backend, tmp_path: Path) -> None:
    free = backend.storage.free_bytes()
    if backend.name == "s3":
        assert free is None  # a bucket has no disk to fill
        return
    assert not (tmp_path / "store").exists()  # answered before the first write makes it
    assert free is not None and 0 < free <= shutil.disk_usage(tmp_path).total


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "videos/not-a-uuid.mp4", "/videos/x.mp4", "", "VIDEOS/" + "0" * 36 + ".mp4"],
)
def test_a_bad_key_is_refused(backend: Backend, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        backend.storage.open_writer(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        backend.storage.put_bytes(key, b"x")
    with pytest.raises(ValueError, match="invalid storage key"):
        backend.storage.open(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        backend.storage.exists(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        backend.storage.delete(key)
    with (
        pytest.raises(ValueError, match="invalid storage key"),
        backend.storage.local_copy(key),
    ):
        pass


def test_local_copy_is_a_real_file_gone_afterwards(backend: Backend) -> None:
    key = video_key(uuid.uuid4())
    data = _payload(3 * MiB + 7)
    backend.storage.put_bytes(key, data)
    with backend.storage.local_copy(key) as path:
        assert path.is_file()
        assert path.suffix == ".mp4"
        assert path.read_bytes() == data
    if backend.name == "s3":
        assert not path.exists()
    else:
        assert path.exists()  # local storage lends the object's own file
    assert backend.storage.exists(key)


def test_local_copy_is_removed_when_the_body_raises(backend: Backend) -> None:
    key = video_key(uuid.uuid4())
    backend.storage.put_bytes(key, b"video")
    with pytest.raises(RuntimeError), backend.storage.local_copy(key) as path:
        raise RuntimeError("decoder crashed")
    assert path.exists() == (backend.name == "local")


def test_missing_key_raises_object_not_found(backend: Backend) -> None:
    key = video_key(uuid.uuid4())
    with pytest.raises(ObjectNotFound) as opened:
        backend.storage.open(key)
    with pytest.raises(ObjectNotFound), backend.storage.local_copy(key):
        pass
    # one family: a StorageError, and still a FileNotFoundError for callers that ask that
    assert isinstance(opened.value, StorageError) and isinstance(opened.value, FileNotFoundError)
    assert not isinstance(opened.value, StorageUnavailable)


def test_storage_errors_are_wrapped(backend: Backend) -> None:
    storage = backend.broken()
    key = video_key(uuid.uuid4())
    with pytest.raises(StorageUnavailable) as put_error:
        storage.put_bytes(key, b"x")
    assert "Traceback" not in str(put_error.value)
    with pytest.raises(StorageUnavailable):
        writer = storage.open_writer(key)
        writer.write(_payload(MIN_PART_SIZE + 1))
        writer.commit()
    with pytest.raises(StorageUnavailable):
        storage.open(key)
    if backend.name == "s3":
        assert "bucket does not exist" in str(put_error.value)
        with pytest.raises(StorageUnavailable):
            storage.delete(key)
        with pytest.raises(StorageUnavailable):
            storage.keys_older_than("videos", 0)


def test_sweep_finds_old_keys_and_removes_interrupted_writes(backend: Backend) -> None:
    old_video, old_results = video_key(uuid.uuid4()), results_key(uuid.uuid4())
    backend.storage.put_bytes(old_video, b"video")
    backend.storage.put_bytes(old_results, b"{}")
    interrupted_key = video_key(uuid.uuid4())
    interrupted = backend.storage.open_writer(interrupted_key)
    interrupted.write(_payload(8 * MiB + 1))  # past S3's first part: a multipart upload
    assert backend.leftovers() != sorted([old_video, old_results])

    # nothing is old enough yet: an upload under way in another process is never touched
    assert backend.storage.keys_older_than("videos", 600) == {}
    assert backend.storage.remove_stale_temporary_files(600) == []

    found = backend.storage.keys_older_than("videos", 0)
    assert list(found) == [old_video]
    assert abs(found[old_video] - time.time()) < 120
    assert backend.storage.keys_older_than("nothing-here", 0) == {}
    removed = backend.storage.remove_stale_temporary_files(0)
    if backend.name == "local":
        assert len(removed) == 1 and removed[0].startswith("videos/.")
        assert backend.leftovers() == sorted([old_video, old_results])
    else:  # the unfinished multipart upload, idle past min_age_s, is aborted
        assert removed == [interrupted_key]
        interrupted.abort()  # harmless on an upload the sweep aborted


def test_s3_sweep_stays_below_its_prefix(
    s3_client: S3Client, s3_bucket: str, s3_endpoint_url: str
) -> None:
    storage = S3Storage.from_url(f"s3://{s3_bucket}/tenant-a", endpoint_url=s3_endpoint_url)
    other = S3Storage.from_url(f"s3://{s3_bucket}/tenant-b", endpoint_url=s3_endpoint_url)
    mine, theirs = video_key(uuid.uuid4()), video_key(uuid.uuid4())
    storage.put_bytes(mine, b"a")
    other.put_bytes(theirs, b"b")
    s3_client.put_object(Bucket=s3_bucket, Key="tenant-a/videos/not-a-job-id.mp4", Body=b"c")
    s3_client.put_object(Bucket=s3_bucket, Key=f"{mine}", Body=b"no prefix")

    assert list(storage.keys_older_than("videos", 0)) == [mine]
    assert list(other.keys_older_than("videos", 0)) == [theirs]


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_the_start_up_sweep_removes_an_orphan_video_from_s3_too(
    store: JobStore, s3_bucket: str, s3_endpoint_url: str
) -> None:
    """runtime.sweep_storage asks the Storage protocol, never which backend it has."""
    storage = S3Storage.from_url(f"s3://{s3_bucket}/swept", endpoint_url=s3_endpoint_url)
    job_id = uuid.uuid4()
    storage.put_bytes(video_key(job_id), b"video")
    created = store.create(NewJob(job_id, "ocr_only", {}, video_key(job_id))).created_at
    # S3 keeps whole seconds: let a second pass, so the orphan is plainly younger than the job
    deadline = time.monotonic() + 5
    while time.time() < int(created.timestamp()) + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    orphan = video_key(uuid.uuid4())  # stored, then the process died before its row
    storage.put_bytes(orphan, b"orphan")
    assert sweep_storage(store, storage, min_age_s=600) == []  # too young to be an orphan
    assert sweep_storage(store, storage, min_age_s=0) == [orphan]
    assert storage.exists(video_key(job_id)) and not storage.exists(orphan)


def test_open_storage_builds_each_kind(tmp_path: Path) -> None:
    local = open_storage(f"file://{tmp_path}")
    assert isinstance(local, LocalStorage)
    s3 = open_storage("s3://some-bucket/some/prefix/", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("some-bucket", "some/prefix")
    with pytest.raises(ValueError, match="s3://bucket"):
        S3Storage.from_url("s3:///no-bucket")
    with pytest.raises(ValueError, match="part_size"):
        S3Storage("bucket", part_size=MiB)


def test_s3_unreachable_endpoint_is_a_storage_error(s3_server: S3Server) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = boto3.client(
        "s3", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}, connect_timeout=2)
    )
    storage = S3Storage("bucket", client=client)
    with pytest.raises(StorageError, match="Could not connect") as error:
        storage.put_bytes(results_key(uuid.uuid4()), b"x")
    assert "cannot write s3://bucket/results/" in str(error.value)
