"""The job list, cancel and delete routes, through the API (workers played by the store)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobStore
from forgesyte.storage.base import results_key
from tests.api.conftest import MakeClient
from tests.support.storages import StorageBackend

LEASE_S = 30.0


def submit(client: TestClient, video: Path, **params: str) -> uuid.UUID:
    response = client.post(
        "/v1/video/submit",
        params=params,
        files={"file": ("clip.mp4", video.read_bytes(), "video/mp4")},
    )
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["job_id"])


def walk(client: TestClient, **params: str) -> list[dict[str, object]]:
    """Every job the list gives, following next_cursor to the end."""
    seen: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get("/v1/video/jobs", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"jobs", "next_cursor"}
        seen.extend(body["jobs"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


# -- the list ---------------------------------------------------------------------------------


def test_the_list_is_newest_first_with_status_objects(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    ids = [submit(client, score_video) for _ in range(3)]
    body = client.get("/v1/video/jobs").json()
    assert body["next_cursor"] is None
    assert [job["job_id"] for job in body["jobs"]] == [str(i) for i in reversed(ids)]
    first = body["jobs"][0]
    assert set(first) == {
        "job_id",
        "status",
        "progress",
        "created_at",
        "updated_at",
        "pipeline_id",
        "playable",
        "filename",
    }
    assert first["status"] == "pending" and first["pipeline_id"] == "ocr_only"
    assert first["playable"] is False
    claimed = store.claim_next("w1", LEASE_S)
    assert claimed is not None and store.fail(claimed.job_id, "w1", "the video was unreadable")
    failed = client.get("/v1/video/jobs", params={"status": "failed"}).json()["jobs"]
    assert [job["job_id"] for job in failed] == [str(ids[0])]
    assert failed[0]["error_message"] == "the video was unreadable"
    assert client.get("/v1/video/jobs", params={"pipeline_id": "detect"}).json()["jobs"] == []


def test_paging_visits_every_job_once_while_jobs_arrive(
    client: TestClient, score_video: Path
) -> None:
    ids = [submit(client, score_video) for _ in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/video/jobs", params=params).json()
        seen.extend(job["job_id"] for job in body["jobs"])
        submit(client, score_video)  # a newer job: never in this walk
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(ids)]
    assert len(walk(client, limit="200")) == 7 + 3


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"status": "done"},
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},  # base64 of "[]"
        {"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiYWJjIl0"},  # no zone, no uuid
        {"cursor": "x" * 300},
    ],
)
def test_bad_paging_is_a_400(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/v1/video/jobs", params=params)
    assert response.status_code == 400
    assert response.json()["detail"].split(":")[0] in {"limit", "status", "cursor"}


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_a_pending_then_a_running_job(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    pending = submit(client, score_video)
    response = client.post(f"/v1/video/cancel/{pending}")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["job_id"] == str(pending)
    assert client.get(f"/v1/video/status/{pending}").json()["status"] == "cancelled"
    assert client.post(f"/v1/video/cancel/{pending}").status_code == 409

    running = submit(client, score_video)
    job = store.claim_next("w1", LEASE_S)
    assert job is not None and job.job_id == running
    assert client.post(f"/v1/video/cancel/{running}").json()["status"] == "cancelled"
    assert not store.heartbeat(running, "w1", LEASE_S)  # the worker learns at its next write
    assert not store.complete(running, "w1", results_key(running), {})
    assert client.get(f"/v1/video/status/{running}").json()["status"] == "cancelled"


def test_cancel_answers_409_for_ended_jobs_and_404_for_unknown_ones(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    job_id = submit(client, score_video)
    assert store.claim_next("w1", LEASE_S) is not None
    assert store.complete(job_id, "w1", results_key(job_id), {})
    response = client.post(f"/v1/video/cancel/{job_id}")
    assert response.status_code == 409 and "completed" in response.json()["detail"]
    assert client.post(f"/v1/video/cancel/{uuid.uuid4()}").status_code == 404
    assert client.post("/v1/video/cancel/not-a-job").status_code == 404


# -- delete -----------------------------------------------------------------------------------


def test_delete_removes_the_row_the_video_and_the_results(
    make_client: MakeClient,
    storage_backend: StorageBackend,
    score_video: Path,
    store: JobStore,
) -> None:
    client = make_client(storage=storage_backend.storage)
    done, waiting = submit(client, score_video), submit(client, score_video)
    assert client.get(f"/v1/video/status/{done}").json()["status"] == "pending"  # cached
    job = store.claim_next("w1", LEASE_S)
    assert job is not None and job.job_id == done
    assert client.delete(f"/v1/video/jobs/{done}").status_code == 409  # running
    storage_backend.storage.put_bytes(results_key(done), b"{}")
    assert store.complete(done, "w1", results_key(done), {})
    assert client.get(f"/v1/video/status/{done}").json()["status"] == "completed"
    assert len(storage_backend.contents()) == 3

    response = client.delete(f"/v1/video/jobs/{done}")
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"/v1/video/status/{done}").status_code == 404
    assert storage_backend.contents() == [f"videos/{waiting}.mp4"]
    assert client.delete(f"/v1/video/jobs/{done}").status_code == 404

    assert client.delete(f"/v1/video/jobs/{waiting}").status_code == 204  # pending is fine
    assert storage_backend.contents() == []
    assert store.get(waiting) is None and store.claim_next("w1", LEASE_S) is None
    assert client.get("/v1/video/jobs").json() == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize("store", ["duckdb", "postgresql"], indirect=True)
def test_list_cancel_delete_on_the_databases(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    ids = [submit(client, score_video) for _ in range(5)]
    assert [job["job_id"] for job in walk(client, limit="2")] == [str(i) for i in reversed(ids)]
    assert client.post(f"/v1/video/cancel/{ids[0]}").status_code == 200
    cancelled = walk(client, status="cancelled")
    assert [job["job_id"] for job in cancelled] == [str(ids[0])]
    assert client.delete(f"/v1/video/jobs/{ids[0]}").status_code == 204
    assert store.get(ids[0]) is None
    assert store.count_by_status()[JobStatus.PENDING.value] == 4
