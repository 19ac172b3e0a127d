"""API key, CORS and error bodies on real servers: locked when asked, shut by default, no leaks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forgesyte.api.health import HEALTH_CACHE_S
from tests.faults.helpers import BOUNDARY, assert_no_leak, assert_no_orphans, job_counts
from tests.support.server import ServerProcess, submit

API_KEY = "s3cret-key-for-faults"
ORIGIN = "http://example.test"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The API alone (no workers), with an API key and one allowed CORS origin."""
    env = {"FORGESYTE_API_KEY": API_KEY, "FORGESYTE_CORS_ORIGINS": f'["{ORIGIN}"]'}
    server = ServerProcess(tmp_path_factory.mktemp("guarded"), workers=0, env=env).start()
    try:
        yield server
        assert server.terminate() == 0
    finally:
        server.kill()


def test_the_api_key_guards_every_v1_route_but_not_health(
    guarded_server: ServerProcess, small_video: Path
) -> None:
    url = guarded_server.url
    some_job = f"{url}/v1/video/status/{uuid.uuid4()}"
    for response in (
        httpx.get(some_job, timeout=10),
        httpx.get(f"{url}/v1/video/results/{uuid.uuid4()}", timeout=10),
        httpx.get(f"{url}/v1/pipelines", timeout=10),
        submit(url, small_video.read_bytes(), pipeline_id="testkit_noop"),
        httpx.get(some_job, headers={"Authorization": "Bearer wrong"}, timeout=10),
        httpx.get(some_job, headers={"X-API-Key": API_KEY[:-1]}, timeout=10),
        httpx.get(some_job, headers={"Authorization": API_KEY}, timeout=10),  # no scheme
    ):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert API_KEY not in response.text
        assert_no_leak(response.text, guarded_server.data_dir)
    assert sum(job_counts(guarded_server).values()) == 0, "a refused submit keeps nothing"

    bearer = {"Authorization": f"Bearer {API_KEY}"}
    x_api_key = {"X-API-Key": API_KEY}
    assert httpx.get(some_job, headers=bearer, timeout=10).status_code == 404
    assert httpx.get(some_job, headers=x_api_key, timeout=10).status_code == 404
    assert httpx.get(f"{url}/v1/pipelines", headers=x_api_key, timeout=10).status_code == 200
    accepted = submit(url, small_video.read_bytes(), headers=bearer, pipeline_id="testkit_noop")
    assert accepted.status_code == 200, accepted.text
    job_id = accepted.json()["job_id"]
    status = httpx.get(f"{url}/v1/video/status/{job_id}", headers=x_api_key, timeout=10)
    assert status.json()["status"] == "pending"  # no workers in this server
    time.sleep(HEALTH_CACHE_S)  # /healthz counts again at most once a second
    health = httpx.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["jobs"]["pending"] == 1
    assert_no_orphans(guarded_server, headers=bearer)


def test_cors_answers_only_the_configured_origin(guarded_server: ServerProcess) -> None:
    url = f"{guarded_server.url}/healthz"
    allowed = httpx.get(url, headers={"Origin": ORIGIN}, timeout=10)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.get(url, headers={"Origin": "http://elsewhere.test"}, timeout=10)
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        f"{guarded_server.url}/v1/video/submit",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Idempotency-Key",
        },
        timeout=10,
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN


def test_cors_is_off_by_default(hostile_server: ServerProcess) -> None:
    plain = httpx.get(f"{hostile_server.url}/healthz", headers={"Origin": ORIGIN}, timeout=10)
    assert plain.status_code == 200
    assert not [h for h in plain.headers if h.startswith("access-control-")]
    preflight = httpx.options(
        f"{hostile_server.url}/v1/video/submit",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert not [h for h in preflight.headers if h.startswith("access-control-")]


def test_error_bodies_show_no_trace_and_no_path(
    hostile_server: ServerProcess, small_video: Path
) -> None:
    url = hostile_server.url
    multipart = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    responses = [
        httpx.get(f"{url}/v1/video/status/{uuid.uuid4()}", timeout=10),
        httpx.get(f"{url}/v1/video/status/..%2F..%2Fetc%2Fpasswd", timeout=10),
        httpx.get(f"{url}/v1/video/results/not-a-uuid", timeout=10),
        httpx.get(f"{url}/v1/nothing-here", timeout=10),
        httpx.get(f"{url}/v1/video/submit", timeout=10),  # wrong method
        httpx.post(f"{url}/v1/video/submit", content=b"raw bytes", timeout=10),
        httpx.post(f"{url}/v1/video/submit", content=b"--x\r\n\x00garbage", headers=multipart),
        httpx.post(f"{url}/v1/video/submit?frame_stride=zero", timeout=10),
        httpx.post(f"{url}/v1/video/submit?pipeline_id=../../etc", timeout=10),
        submit(url, b"\x89PNG\r\n\x1a\n" + bytes(100)),
        submit(url, small_video.read_bytes(), pipeline_id="testkit_noop", sample_fps="nan"),
        submit(url, small_video.read_bytes(), headers={"Idempotency-Key": "k" * 300}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), response.text
        assert "detail" in response.json()
        assert_no_leak(response.text, hostile_server.data_dir)
    assert_no_orphans(hostile_server)
