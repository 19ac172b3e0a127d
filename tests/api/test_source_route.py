"""GET /v1/video/source/{job_id} and /v1/video/source-url/{job_id}, on local storage and S3.

The job is completed the way the worker completes one (its summary says what plays); the
video is 1.5 MiB of known bytes behind an `ftyp` box, so every byte of an answer is checked.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from forgesyte.api.routes import source
from forgesyte.api.source_tokens import SOURCE_URL_TTL_S, SourceTokens
from forgesyte.jobs.store import JobStore
from forgesyte.results.media import PLAYBACK_FIELD, Playback
from forgesyte.settings import Settings
from forgesyte.storage.base import playable_key, results_key, video_key
from forgesyte.storage.s3 import S3Storage
from tests.api.conftest import MakeClient
from tests.support.storages import StorageBackend

KEY = "source-test-key-0123456789"
VIDEO = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + random.Random(5).randbytes(
    3 * 512 * 1024
)
AUTH = {"Authorization": f"Bearer {KEY}"}


def _complete(store: JobStore, job_id: uuid.UUID, playback: Playback | None) -> None:
    assert (claimed := store.claim_next("w", 30)) is not None and claimed.job_id == job_id
    summary: dict[str, Any] = {"frames_analysed": 1, "video": {}}
    if playback is not None:
        summary[PLAYBACK_FIELD] = playback.to_json()
    assert store.complete(job_id, "w", results_key(job_id), summary)


def _submit(client: TestClient, headers: dict[str, str] | None = None) -> uuid.UUID:
    answer = client.post(
        "/v1/video/submit", files={"file": ("v.mp4", VIDEO)}, headers=headers or {}
    )
    assert answer.status_code == 200, answer.text
    return uuid.UUID(answer.json()["job_id"])


@pytest.fixture
def client(make_client: MakeClient, storage_backend: StorageBackend) -> TestClient:
    return make_client(storage=storage_backend.storage)


@pytest.fixture
def playable_job(client: TestClient, store: JobStore) -> uuid.UUID:
    """A completed job whose upload plays as it is (H.264)."""
    job_id = _submit(client)
    _complete(store, job_id, Playback("h264", copy=False))
    return job_id


def _source(client: TestClient, job_id: uuid.UUID, **headers: str) -> Any:
    return client.get(f"/v1/video/source/{job_id}", headers=headers)


def test_the_whole_video_is_200_with_its_length_tag_and_ranges_offered(
    client: TestClient, playable_job: uuid.UUID
) -> None:
    answer = _source(client, playable_job)
    assert answer.status_code == 200 and answer.content == VIDEO
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["content-length"] == str(len(VIDEO))
    assert answer.headers["etag"].startswith('"') and "content-range" not in answer.headers
    status = client.get(f"/v1/video/status/{playable_job}").json()
    assert status["playable"] is True


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-1", 0, 1),
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, len(VIDEO) - 1),
        ("bytes=-500", len(VIDEO) - 500, len(VIDEO) - 1),
        (f"bytes={len(VIDEO) - 3}-{len(VIDEO) + 50}", len(VIDEO) - 3, len(VIDEO) - 1),
    ],
)
def test_one_range_is_206_with_exactly_its_bytes(
    client: TestClient, playable_job: uuid.UUID, header: str, start: int, end: int
) -> None:
    answer = _source(client, playable_job, Range=header)
    assert answer.status_code == 206
    assert answer.content == VIDEO[start : end + 1]
    assert answer.headers["content-range"] == f"bytes {start}-{end}/{len(VIDEO)}"
    assert answer.headers["content-length"] == str(end - start + 1)
    assert answer.headers["accept-ranges"] == "bytes" and answer.headers["etag"]


def test_ranges_across_storage_windows_are_read_window_by_window(
    client: TestClient, playable_job: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "SOURCE_WINDOW_BYTES", 64 * 1024)
    answer = _source(client, playable_job, Range="bytes=1000-300000")
    assert answer.status_code == 206 and answer.content == VIDEO[1000:300001]
    assert _source(client, playable_job).content == VIDEO


def test_a_range_past_the_end_is_416_with_the_size(
    client: TestClient, playable_job: uuid.UUID
) -> None:
    for header in (f"bytes={len(VIDEO)}-", f"bytes={len(VIDEO) + 10}-{len(VIDEO) + 20}"):
        answer = _source(client, playable_job, Range=header)
        assert answer.status_code == 416
        assert answer.json() == {
            "detail": f"the range starts past the video's end ({len(VIDEO)} bytes)"
        }
        assert answer.headers["content-range"] == f"bytes */{len(VIDEO)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=oops", "lines=0-4"])
def test_several_or_malformed_ranges_get_the_whole_video(
    client: TestClient, playable_job: uuid.UUID, header: str
) -> None:
    answer = _source(client, playable_job, Range=header)
    assert answer.status_code == 200 and answer.content == VIDEO


def test_if_range_with_another_tag_gets_the_whole_video(
    client: TestClient, playable_job: uuid.UUID
) -> None:
    etag = _source(client, playable_job, Range="bytes=0-0").headers["etag"]
    same = _source(client, playable_job, Range="bytes=5-9", **{"If-Range": etag})
    assert same.status_code == 206 and same.content == VIDEO[5:10]
    other = _source(client, playable_job, Range="bytes=5-9", **{"If-Range": '"other"'})
    assert other.status_code == 200 and other.content == VIDEO


def test_a_copy_is_served_when_the_upload_does_not_play(
    client: TestClient, store: JobStore, storage_backend: StorageBackend
) -> None:
    job_id = _submit(client)
    copy = b"\x00\x00\x00\x18ftypisom" + b"the playable copy" * 100
    storage_backend.storage.put_bytes(playable_key(job_id), copy)
    _complete(store, job_id, Playback("mpeg4", copy=True))
    assert _source(client, job_id).content == copy
    assert _source(client, job_id, Range="bytes=4-7").content == b"ftyp"


def test_nothing_to_play_is_404_and_playable_false(client: TestClient, store: JobStore) -> None:
    pending = _submit(client)
    answer = _source(client, pending)
    assert answer.status_code == 404 and "pending" in answer.json()["detail"]
    assert client.get(f"/v1/video/status/{pending}").json()["playable"] is False
    assert client.get(f"/v1/video/source-url/{pending}").status_code == 404
    _complete(store, pending, None)  # completed, but no copy could be made
    answer = _source(client, pending)
    assert answer.status_code == 404 and "no video a browser can play" in answer.json()["detail"]
    assert client.get(f"/v1/video/status/{pending}").json()["playable"] is False
    listed = client.get("/v1/video/jobs").json()["jobs"]
    assert [job["playable"] for job in listed] == [False]
    assert _source(client, uuid.uuid4()).status_code == 404


@pytest.mark.parametrize("storage_backend", ["s3"], indirect=True)
def test_on_s3_every_read_is_a_ranged_get_of_at_most_one_window(
    client: TestClient,
    playable_job: uuid.UUID,
    storage_backend: StorageBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = storage_backend.storage
    assert isinstance(storage, S3Storage)
    window = 256 * 1024
    monkeypatch.setattr(source, "SOURCE_WINDOW_BYTES", window)
    ranges: list[str | None] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        ranges.append(params.get("Range"))

    storage.client.meta.events.register("provide-client-params.s3.GetObject", record)
    answer = _source(client, playable_job, Range="bytes=100000-700000")
    assert answer.status_code == 206 and answer.content == VIDEO[100000:700001]
    assert ranges == [
        "bytes=100000-362143",
        "bytes=362144-624287",
        "bytes=624288-700000",
    ]
    ranges.clear()
    assert _source(client, playable_job).content == VIDEO  # the whole: windows too
    assert None not in ranges and len(ranges) == -(-len(VIDEO) // window)


# -- signed links -----------------------------------------------------------------------


@pytest.fixture
def keyed(make_client: MakeClient, storage_backend: StorageBackend) -> TestClient:
    return make_client(storage=storage_backend.storage, api_key=KEY)


def _keyed_job(keyed: TestClient, store: JobStore) -> uuid.UUID:
    job_id = _submit(keyed, AUTH)
    _complete(store, job_id, Playback("h264", copy=False))
    return job_id


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_a_signed_link_opens_its_job_for_an_hour_without_the_key(
    keyed: TestClient, store: JobStore
) -> None:
    job_id = _keyed_job(keyed, store)
    assert _source(keyed, job_id).status_code == 401
    assert _source(keyed, job_id, **AUTH).content == VIDEO
    assert keyed.get(f"/v1/video/source-url/{job_id}").status_code == 401
    before = time.time()
    signed = keyed.get(f"/v1/video/source-url/{job_id}", headers=AUTH)
    assert signed.status_code == 200
    body = signed.json()
    url = body["url"]
    assert KEY not in url and urlsplit(url).path == f"/v1/video/source/{job_id}"
    expires = body["expires_at"]
    lifetime = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp() - before
    assert SOURCE_URL_TTL_S - 5 <= lifetime <= SOURCE_URL_TTL_S + 1
    answer = keyed.get(url, headers={"Range": "bytes=4-7"})
    assert answer.status_code == 206 and answer.content == b"ftyp"


def test_a_token_does_not_open_another_job_nor_survive_tampering_or_its_hour(
    keyed: TestClient, store: JobStore
) -> None:
    job_id, other = _keyed_job(keyed, store), _keyed_job(keyed, store)
    url = keyed.get(f"/v1/video/source-url/{job_id}", headers=AUTH).json()["url"]
    token = _token(url)

    def with_token(target: uuid.UUID, value: str) -> Any:
        return keyed.get(f"/v1/video/source/{target}", params={"token": value})

    assert with_token(job_id, token).status_code == 200
    refused = with_token(other, token)
    assert refused.status_code == 401 and "not valid for this job" in refused.json()["detail"]
    expires, signature = token.split(".")
    tampered = f"{expires}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert with_token(job_id, tampered).status_code == 401
    later = f"{int(expires) + 3600}.{signature}"  # a later expiry under the old signature
    assert with_token(job_id, later).status_code == 401
    for junk in ("", "abc", "12.", ".sig", "9" * 30 + ".x"):
        assert with_token(job_id, junk).status_code == 401, junk
    tokens = SourceTokens.for_settings(Settings(api_key=KEY))
    old, _ = tokens.issue(job_id, time.time() - SOURCE_URL_TTL_S - 10)
    expired = with_token(job_id, old)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    signed_elsewhere = SourceTokens.for_settings(Settings(api_key="another-key-0123456789"))
    assert with_token(job_id, signed_elsewhere.issue(job_id, time.time())[0]).status_code == 401


def test_a_token_stops_working_when_its_job_is_deleted(
    keyed: TestClient, store: JobStore, storage_backend: StorageBackend
) -> None:
    job_id = _keyed_job(keyed, store)
    url = keyed.get(f"/v1/video/source-url/{job_id}", headers=AUTH).json()["url"]
    assert keyed.get(url).status_code == 200
    assert keyed.delete(f"/v1/video/jobs/{job_id}", headers=AUTH).status_code == 204
    assert keyed.get(url).status_code == 404
    assert video_key(job_id) not in storage_backend.contents()


def test_replicas_with_the_same_key_accept_each_others_links(
    make_client: MakeClient, storage_backend: StorageBackend, store: JobStore
) -> None:
    first = make_client(storage=storage_backend.storage, api_key=KEY)
    second = make_client(storage=storage_backend.storage, api_key=KEY)
    job_id = _keyed_job(first, store)
    url = first.get(f"/v1/video/source-url/{job_id}", headers=AUTH).json()["url"]
    assert second.get(url).status_code == 200
    secret = "a-signing-secret-for-replicas"
    third = make_client(storage=storage_backend.storage, api_key=KEY, signing_secret=secret)
    fourth = make_client(
        storage=storage_backend.storage, api_key="rotated-key-0123456789", signing_secret=secret
    )
    url = third.get(f"/v1/video/source-url/{job_id}", headers=AUTH).json()["url"]
    assert fourth.get(url).status_code == 200  # the secret, not the key, signs
    assert second.get(url).status_code == 401


def test_without_a_key_the_route_is_open_and_links_still_work(
    client: TestClient, playable_job: uuid.UUID
) -> None:
    url = client.get(f"/v1/video/source-url/{playable_job}").json()["url"]
    assert client.get(url).content == VIDEO
    assert _source(client, playable_job).status_code == 200
