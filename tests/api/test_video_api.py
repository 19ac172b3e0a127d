"""The public API contract: submit, status, results, and every error case.

The job store is the in-memory one (tests/api/conftest.py: the database is not under
test here); the tests that touch storage run on local storage and on S3 (the
``storage_backend`` fixture).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.options import JobOptions
from forgesyte.jobs.store import JobStore
from tests.api.conftest import MakeClient
from tests.support.storages import StorageBackend

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def submit(client: TestClient, data: bytes, **params: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/v1/video/submit", params=params, files={"file": ("clip.mp4", data, "video/mp4")}
    )
    return response.status_code, response.json()


def test_submit_stores_the_video_and_enqueues_a_pending_job(
    make_client: MakeClient,
    storage_backend: StorageBackend,
    score_video: Path,
    store: JobStore,
) -> None:
    client = make_client(storage=storage_backend.storage)
    status, body = submit(client, score_video.read_bytes(), frame_stride="2", max_frames="5")
    assert status == 200
    job_id = uuid.UUID(str(body["job_id"]))
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.PENDING
    assert job.options == {
        "frame_stride": 2,
        "max_frames": 5,
        "sample_fps": None,
        "skip_unchanged": False,
        "detect_shots": False,
    }
    assert job.pipeline_id == "ocr_only"
    assert job.input_path == f"videos/{job_id}.mp4"
    assert storage_backend.read(job.input_path) == score_video.read_bytes()
    assert storage_backend.contents() == [job.input_path]


def test_options_may_come_as_form_fields(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    response = client.post(
        "/v1/video/submit",
        data={"frame_stride": "3", "pipeline_id": "ocr_only"},
        files={"file": ("clip.mp4", score_video.read_bytes(), "video/mp4")},
    )
    assert response.status_code == 200
    job = store.get(uuid.UUID(response.json()["job_id"]))
    assert job is not None and job.options["frame_stride"] == 3


def test_status_of_a_new_job(client: TestClient, score_video: Path) -> None:
    _, body = submit(client, score_video.read_bytes())
    response = client.get(f"/v1/video/status/{body['job_id']}")
    assert response.status_code == 200
    status = response.json()
    assert set(status) == {
        "job_id",
        "status",
        "progress",
        "created_at",
        "updated_at",
        "playable",
        "filename",
    }
    assert status["filename"] == "clip.mp4"
    assert status["status"] == "pending" and status["progress"] == 0.0
    assert status["playable"] is False
    assert status["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("data", "params", "detail"),
    [
        (PNG_BYTES, {}, "not an MP4"),
        (b"hello, this is a text file named .mp4 and long enough to sniff " * 2, {}, "not an MP4"),
        (b"", {}, "empty"),
        (b"\x00\x00\x00\x18ftyp", {}, None),  # short but an MP4 header: accepted at submit
        (None, {"pipeline_id": "nope"}, "unknown pipeline 'nope'; available pipelines: "),
        (None, {"frame_stride": "0"}, "frame_stride"),
        (None, {"frame_stride": "abc"}, "frame_stride"),
        (None, {"max_frames": "0"}, "max_frames"),
        (None, {"max_frames": "-3"}, "max_frames"),
        (None, {"sample_fps": "0"}, "sample_fps"),
        (None, {"sample_fps": "nan"}, "sample_fps"),
        (None, {"sample_fps": "fast"}, "sample_fps"),
        (None, {"sample_fps": "5", "frame_stride": "2"}, "cannot be combined"),
        (None, {"skip_unchanged": "perhaps"}, "skip_unchanged"),
        (None, {"pipeline_id": "yolo_ocr"}, "unavailable: yolo.detect: no YOLO model"),
    ],
)
def test_bad_submissions_get_400_and_leave_nothing(
    make_client: MakeClient,
    storage_backend: StorageBackend,
    score_video: Path,
    store: JobStore,
    data: bytes | None,
    params: dict[str, str],
    detail: str | None,
) -> None:
    client = make_client(storage=storage_backend.storage)
    status, body = submit(client, score_video.read_bytes() if data is None else data, **params)
    if detail is None:
        assert status == 200
        return
    assert status == 400
    assert detail in str(body["detail"])
    assert storage_backend.contents() == []
    assert store.count_by_status()["pending"] == 0


def test_unknown_pipeline_lists_the_known_ones(client: TestClient, score_video: Path) -> None:
    _, body = submit(client, score_video.read_bytes(), pipeline_id="nope")
    assert "ocr_only" in str(body["detail"])


def test_unknown_form_option_is_refused(client: TestClient, score_video: Path) -> None:
    response = client.post(
        "/v1/video/submit",
        data={"frame_strid": "3"},
        files={"file": ("clip.mp4", score_video.read_bytes(), "video/mp4")},
    )
    assert response.status_code == 400
    assert "frame_strid" in response.json()["detail"]


def test_missing_file_field_and_non_multipart_bodies(client: TestClient) -> None:
    response = client.post("/v1/video/submit", data={"pipeline_id": "ocr_only"}, files={})
    assert response.status_code == 400
    response = client.post(
        "/v1/video/submit",
        files={"other": ("x.mp4", b"\x00\x00\x00\x18ftypisom", "video/mp4")},
    )
    assert response.status_code == 400 and "'file'" in response.json()["detail"]
    response = client.post(
        "/v1/video/submit", content=b"raw", headers={"content-type": "video/mp4"}
    )
    assert response.status_code == 400 and "multipart/form-data" in response.json()["detail"]


def test_upload_over_the_limit_gets_413_and_leaves_nothing(
    make_client: MakeClient, storage_backend: StorageBackend, score_video: Path, store: JobStore
) -> None:
    client = make_client(storage=storage_backend.storage, max_upload_mb=0.01)  # about 10 KiB
    data = score_video.read_bytes()
    assert len(data) > 12 * 1024
    status, body = submit(client, data)
    assert status == 413 and "limit" in str(body["detail"])
    assert storage_backend.contents() == []
    assert sum(store.count_by_status().values()) == 0


def test_storage_write_error_gives_503_and_no_job(
    make_client: MakeClient,
    storage_backend: StorageBackend,
    score_video: Path,
    store: JobStore,
    tmp_path: Path,
) -> None:
    client = make_client(storage=storage_backend.broken())
    status, body = submit(client, score_video.read_bytes())
    assert status == 503
    assert "storage is not accepting uploads" in str(body["detail"])
    assert str(tmp_path) not in str(body["detail"])
    assert sum(store.count_by_status().values()) == 0


@pytest.mark.parametrize(
    "job_id", [str(uuid.uuid4()), "not-a-uuid", "1234"], ids=["unknown", "not-a-uuid", "1234"]
)
def test_unknown_and_malformed_ids_get_404(client: TestClient, job_id: str) -> None:
    assert client.get(f"/v1/video/status/{job_id}").status_code == 404
    response = client.get(f"/v1/video/results/{job_id}")
    assert response.status_code == 404 and "not found" in response.json()["detail"]


def test_results_of_a_job_that_is_not_completed_get_404(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    _, body = submit(client, score_video.read_bytes())
    job_id = uuid.UUID(str(body["job_id"]))
    response = client.get(f"/v1/video/results/{job_id}")
    assert response.status_code == 404 and "pending" in response.json()["detail"]
    store.claim_next("w", 30)
    store.fail(job_id, "w", "video could not be decoded: no frames")
    response = client.get(f"/v1/video/results/{job_id}")
    assert response.status_code == 404
    assert "failed" in response.json()["detail"] and "no frames" in response.json()["detail"]
    status = client.get(f"/v1/video/status/{job_id}").json()
    assert status["status"] == "failed"
    assert status["error_message"] == "video could not be decoded: no frames"


def test_results_of_a_completed_job(
    make_client: MakeClient, storage_backend: StorageBackend, score_video: Path, store: JobStore
) -> None:
    client = make_client(storage=storage_backend.storage)
    _, body = submit(client, score_video.read_bytes())
    job_id = uuid.UUID(str(body["job_id"]))
    store.claim_next("w", 30)
    entry = {"frame_index": 0, "result": {"ocr": []}, "timestamp_s": 0.0}
    storage_backend.storage.put_bytes(f"results/{job_id}.jsonl", json.dumps(entry).encode())
    store.complete(job_id, "w", f"results/{job_id}.jsonl", {"frames_analysed": 1})
    response = client.get(f"/v1/video/results/{job_id}")
    assert response.status_code == 200
    results = response.json()
    assert results["results"] == [entry] and results["frames_analysed"] == 1
    assert results["job_id"] == str(job_id)
    assert results["created_at"].endswith("Z") and results["updated_at"].endswith("Z")
    status = client.get(f"/v1/video/status/{job_id}").json()
    assert status["status"] == "completed" and status["progress"] == 100.0


def test_health_and_docs(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/video/submit", "/v1/video/status/{job_id}", "/v1/video/results/{job_id}"} <= set(
        spec["paths"]
    )


def test_submit_openapi_lists_exactly_the_job_options(client: TestClient) -> None:
    """The form and query parameters are derived from JobOptions: its fields, its bounds."""
    operation = client.get("/openapi.json").json()["paths"]["/v1/video/submit"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    options = {name: form["properties"][name] for name in set(form["properties"]) - {"file"}}
    assert set(options) == {"pipeline_id", "callback_url", *JobOptions.model_fields}
    query = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    assert query == options
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"idempotency-key"}
    for name, info in JobOptions.model_fields.items():
        assert options[name]["description"] == info.description
    assert options["frame_stride"] == {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": JobOptions.model_fields["frame_stride"].description,
    }
    assert options["sample_fps"]["exclusiveMinimum"] == 0
    assert options["sample_fps"]["maximum"] == 1000
    assert options["skip_unchanged"]["type"] == "boolean"
    assert {"400", "401", "408", "409", "413", "503"} <= set(operation["responses"])


def test_idempotency_key(
    make_client: MakeClient, storage_backend: StorageBackend, score_video: Path, store: JobStore
) -> None:
    client = make_client(storage=storage_backend.storage)
    data = score_video.read_bytes()
    headers = {"Idempotency-Key": "upload-42"}
    files = {"file": ("clip.mp4", data, "video/mp4")}
    first = client.post("/v1/video/submit", headers=headers, files=files)
    again = client.post("/v1/video/submit", headers=headers, files=files)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    other = client.post(
        "/v1/video/submit", headers=headers, files=files, params={"frame_stride": "2"}
    )
    assert other.status_code == 409
    assert sum(store.count_by_status().values()) == 1
    assert storage_backend.contents() == [f"videos/{first.json()['job_id']}.mp4"]


def test_api_key_guards_v1_but_not_health(make_client: MakeClient, score_video: Path) -> None:
    client = make_client(api_key="s3cret")
    missing = client.get(f"/v1/video/status/{uuid.uuid4()}")
    assert missing.status_code == 401
    wrong = client.get(f"/v1/video/status/{uuid.uuid4()}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    bearer = client.get(
        f"/v1/video/status/{uuid.uuid4()}", headers={"Authorization": "Bearer s3cret"}
    )
    assert bearer.status_code == 404
    header = client.get(f"/v1/video/status/{uuid.uuid4()}", headers={"X-API-Key": "s3cret"})
    assert header.status_code == 404
    assert client.get("/healthz").status_code == 200


def test_pipelines_are_listed(client: TestClient) -> None:
    body = client.get("/v1/pipelines").json()
    ids = {p["id"]: p for p in body["pipelines"]}
    assert ids["ocr_only"]["available"] is True
    assert ids["ocr_only"]["nodes"][0]["plugin_type"] == "ocr"
    assert body["broken_plugins"] == {}


def test_sampling_options_are_stored(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    status, body = submit(client, score_video.read_bytes(), sample_fps="2.5", skip_unchanged="true")
    assert status == 200
    job = store.get(uuid.UUID(str(body["job_id"])))
    assert job is not None
    assert job.options["sample_fps"] == 2.5 and job.options["skip_unchanged"] is True


def test_pipelines_on_a_fresh_install(client: TestClient) -> None:
    body = client.get("/v1/pipelines").json()
    listed = {p["id"]: p for p in body["pipelines"]}
    assert {"ocr_only", "yolo_ocr", "plates_ocr", "people_detect"} <= set(listed)
    assert listed["plates_ocr"]["available"] is True
    assert [n["tool_type"] for n in listed["plates_ocr"]["nodes"]] == ["plates", "read"]
    assert listed["yolo_ocr"]["available"] is False
    assert "FORGESYTE_YOLO_MODEL" in listed["yolo_ocr"]["unavailable_reason"]
    assert listed["yolo_ocr"]["edges"] == [{"from_node": "detect", "to_node": "ocr"}]
    assert body["refused_pipelines"] == {}


def test_status_answers_follow_changes_made_through_the_store(
    client: TestClient, score_video: Path, store: JobStore
) -> None:
    _, body = submit(client, score_video.read_bytes())
    job_id = uuid.UUID(str(body["job_id"]))
    assert client.get(f"/v1/video/status/{job_id}").json()["status"] == "pending"
    claimed = store.claim_next("w", 30)  # the same store the app reads through
    assert claimed is not None
    assert client.get(f"/v1/video/status/{job_id}").json()["status"] == "running"
    store.set_progress(job_id, "w", 42.0, 30)
    assert client.get(f"/v1/video/status/{job_id}").json()["progress"] == 42.0
    store.fail(job_id, "w", "no frames")
    status = client.get(f"/v1/video/status/{job_id}").json()
    assert status["status"] == "failed" and status["error_message"] == "no frames"
