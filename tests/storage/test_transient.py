"""Transient or permanent, told once where storage translates its backend's errors.

Against botocore's real exceptions, raised by real exchanges: a refused port, a connect
that times out, a server that stops answering or drops the connection, the S3-compatible
test server's own answers (no such key, no such bucket), and scripted HTTP answers for
what it does not produce on demand (5xx, throttling, a refused credential, a malformed
answer). Local storage's from real operating-system errors.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from forgesyte.faults import Dependency, transient_fault
from forgesyte.storage.base import results_key, video_key
from forgesyte.storage.errors import (
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    unavailable,
)
from forgesyte.storage.local import LocalStorage
from forgesyte.storage.s3 import MAX_ATTEMPTS, S3Storage, is_transient
from tests.support.scripted_http import Script, error_body, scripted_server, unanswered_address
from tests.support.services import S3Server, free_port


def _storage(endpoint: str, *, bucket: str = "bucket", read_timeout_s: float = 60) -> S3Storage:
    """S3 storage on endpoint with botocore's retries off: one exchange per call."""
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=0.5,
        read_timeout=read_timeout_s,
        s3={"addressing_style": "path"},
    )
    return S3Storage(bucket, client=boto3.client("s3", endpoint_url=endpoint, config=config))


def _failure(call: Callable[[], object]) -> StorageError:
    with pytest.raises(StorageError) as raised:
        call()
    return raised.value


def _cause(storage: S3Storage, call: Callable[[S3Storage], object]) -> BaseException:
    """The botocore exception a call of the S3 client raises (before any translation)."""
    with pytest.raises(Exception) as raised:
        call(storage)
    return raised.value


# -- connections ----------------------------------------------------------------------


def test_a_refused_connection_is_transient(s3_server: S3Server) -> None:
    storage = _storage(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    cause = _cause(storage, lambda s: s.client.put_object(Bucket="b", Key="k", Body=b"x"))
    assert isinstance(cause, EndpointConnectionError) and is_transient(cause)
    error = _failure(lambda: storage.put_bytes(results_key(uuid.uuid4()), b"x"))
    assert isinstance(error, StorageUnavailable) and error.transient
    assert error.reason == "cannot write: EndpointConnectionError"
    assert transient_fault(error) is Dependency.STORAGE


def test_a_connect_that_times_out_is_transient(s3_server: S3Server) -> None:
    with unanswered_address() as endpoint:
        storage = _storage(endpoint)
        cause = _cause(storage, lambda s: s.client.head_object(Bucket="b", Key="k"))
        assert isinstance(cause, ConnectTimeoutError) and is_transient(cause)
        assert _failure(lambda: storage.exists(video_key(uuid.uuid4()))).transient


def test_an_answer_that_never_comes_is_transient(s3_server: S3Server) -> None:
    with scripted_server(Script(hang=True)) as server:
        storage = _storage(server.url, read_timeout_s=0.5)
        cause = _cause(storage, lambda s: s.client.get_object(Bucket="b", Key="k"))
        assert isinstance(cause, ReadTimeoutError) and is_transient(cause)
        assert _failure(lambda: storage.open(video_key(uuid.uuid4()))).transient


def test_a_dropped_connection_is_transient(s3_server: S3Server) -> None:
    with scripted_server(Script(drop=True)) as server:
        storage = _storage(server.url)
        cause = _cause(storage, lambda s: s.client.put_object(Bucket="b", Key="k", Body=b"x"))
        assert isinstance(cause, ConnectionClosedError) and is_transient(cause)
        error = _failure(lambda: storage.put_bytes(results_key(uuid.uuid4()), b"x"))
        assert error.transient and error.reason == "cannot write: ConnectionClosedError"


# -- answers --------------------------------------------------------------------------

TRANSIENT_ANSWERS = {
    "500 InternalError": Script(500, body=error_body("InternalError", "We encountered an error")),
    "502 from a proxy": Script(502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"),
    "503 SlowDown": Script(503, body=error_body("SlowDown", "Reduce your request rate.")),
    "503 ServiceUnavailable": Script(503, body=error_body("ServiceUnavailable")),
    "400 Throttling": Script(400, body=error_body("Throttling", "Rate exceeded")),
    "429 Too Many Requests": Script(429, body=b""),
    "400 RequestTimeout": Script(400, body=error_body("RequestTimeout", "Idle too long")),
}
PERMANENT_ANSWERS = {
    "403 AccessDenied": Script(403, body=error_body("AccessDenied", "Access Denied")),
    "403 InvalidAccessKeyId": Script(403, body=error_body("InvalidAccessKeyId", "No such key id")),
    "403 SignatureDoesNotMatch": Script(403, body=error_body("SignatureDoesNotMatch")),
    "403 from a proxy": Script(403, {"Content-Type": "text/html"}, b"<html>Forbidden</html>"),
    "400 InvalidArgument": Script(400, body=error_body("InvalidArgument", "Bad part number")),
}
# a listing whose fields botocore cannot read: its parser raises ValueError
MALFORMED = {
    "an unreadable number": b"<ListBucketResult><KeyCount>many</KeyCount></ListBucketResult>",
    "an unreadable date": (
        b"<ListBucketResult><Contents><Key>forgesyte/videos/x.mp4</Key>"
        b"<LastModified>yesterday</LastModified></Contents></ListBucketResult>"
    ),
}


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[S3Storage, Callable[[Script], None]]]:
    """S3 storage on a scripted server, and a function that sets what it answers."""
    with scripted_server() as server:

        def answer(script: Script) -> None:
            server.script = script

        yield _storage(server.url), answer


@pytest.mark.parametrize("name", TRANSIENT_ANSWERS)
def test_server_errors_throttling_and_timeouts_are_transient(
    scripted: tuple[S3Storage, Callable[[Script], None]], name: str
) -> None:
    storage, answer = scripted
    answer(TRANSIENT_ANSWERS[name])
    for call in (
        lambda: storage.put_bytes(results_key(uuid.uuid4()), b"x"),
        lambda: storage.open(video_key(uuid.uuid4())),
        lambda: storage.keys_older_than("videos", 0),
    ):
        error = _failure(call)
        assert isinstance(error, StorageUnavailable) and error.transient, (name, error)


@pytest.mark.parametrize("name", PERMANENT_ANSWERS)
def test_refused_credentials_and_bad_requests_are_permanent(
    scripted: tuple[S3Storage, Callable[[Script], None]], name: str
) -> None:
    storage, answer = scripted
    answer(PERMANENT_ANSWERS[name])
    error = _failure(lambda: storage.open(video_key(uuid.uuid4())))
    assert isinstance(error, StorageUnavailable) and not error.transient, (name, error)
    assert transient_fault(error) is None
    if name.startswith("403 ") and "proxy" not in name:
        assert "check the S3 credentials" in str(error)


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_answer_is_permanent_and_still_a_storage_error(
    scripted: tuple[S3Storage, Callable[[Script], None]], name: str
) -> None:
    storage, answer = scripted
    answer(Script(200, {"Content-Type": "application/xml"}, MALFORMED[name]))
    cause = _cause(storage, lambda s: s.client.list_objects_v2(Bucket="bucket"))
    assert isinstance(cause, ValueError) and not is_transient(cause)
    error = _failure(lambda: storage.keys_older_than("videos", 0))
    assert isinstance(error, StorageUnavailable) and not error.transient
    assert error.reason == "cannot list: a malformed answer (ValueError)"


def test_an_unparseable_s3_answer_of_200_counts_as_botocore_says_a_500(
    scripted: tuple[S3Storage, Callable[[Script], None]],
) -> None:
    """S3 may put an error in a 200's body; botocore makes an unreadable one a 500."""
    storage, answer = scripted
    answer(Script(200, {"Content-Type": "application/xml"}, b"<ListBucketResult><broken"))
    assert _failure(lambda: storage.keys_older_than("videos", 0)).transient


def test_the_server_s_own_missing_key_and_missing_bucket_are_permanent(
    s3_endpoint_url: str, s3_bucket: str
) -> None:
    present = S3Storage.from_url(f"s3://{s3_bucket}/forgesyte", endpoint_url=s3_endpoint_url)
    missing_key = _failure(lambda: present.open(video_key(uuid.uuid4())))
    assert isinstance(missing_key, ObjectNotFound) and not missing_key.transient
    absent = S3Storage(f"missing-{uuid.uuid4().hex[:12]}", endpoint_url=s3_endpoint_url)
    missing_bucket = _failure(lambda: absent.put_bytes(results_key(uuid.uuid4()), b"x"))
    assert "the bucket does not exist" in str(missing_bucket) and not missing_bucket.transient


def test_the_server_s_client_retries_a_slow_down_itself_before_translating_it(
    s3_server: S3Server,
) -> None:
    """storage/s3.py's own client: MAX_ATTEMPTS tries of one call, then the error."""
    with scripted_server(TRANSIENT_ANSWERS["503 SlowDown"]) as server:
        storage = S3Storage("bucket", endpoint_url=server.url)
        error = _failure(lambda: storage.put_bytes(results_key(uuid.uuid4()), b"x"))
        assert error.transient
        assert len(server.requests) == MAX_ATTEMPTS


# -- local storage --------------------------------------------------------------------


def test_a_full_disk_is_transient(tmp_path: Path) -> None:
    with pytest.raises(OSError) as raised, Path("/dev/full").open("wb") as full:
        full.write(b"x")
        full.flush()
    assert raised.value.errno == errno.ENOSPC
    error = unavailable("cannot write to storage", raised.value)
    assert error.transient and str(error) == "cannot write to storage: No space left on device"


def test_a_storage_root_that_is_no_folder_is_permanent(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    storage = LocalStorage(blocker)
    error = _failure(lambda: storage.put_bytes(results_key(uuid.uuid4()), b"x"))
    assert isinstance(error, StorageUnavailable) and not error.transient
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ENOTDIR


def test_a_missing_local_object_is_permanent(tmp_path: Path) -> None:
    error = _failure(lambda: LocalStorage(tmp_path).open(video_key(uuid.uuid4())))
    assert isinstance(error, ObjectNotFound) and not error.transient
    assert transient_fault(error) is None
