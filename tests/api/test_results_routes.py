"""Results paging and JSON Lines, the timeline (JSON and WebVTT) and preview frames.

Results are written by the real writer (JSON Lines + timeline) and put in storage the way
the worker does, then read through the API on each database and each storage.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import webvtt
from fastapi.testclient import TestClient

from forgesyte.api import context as app_context
from forgesyte.api.routes import timeline as timeline_route
from forgesyte.jobs.store import JobStore
from forgesyte.results.storing import StagedUpload
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.storage.base import results_key, timeline_key
from forgesyte.submission.errors import RetryLater
from forgesyte.video.shots import Shot
from tests.api.conftest import MakeClient
from tests.support.storages import StorageBackend

FPS = 10.0
BOX = [[20.0, 70.0], [200.0, 70.0], [200.0, 110.0], [20.0, 110.0]]


def entry(frame_index: int, text: str | None) -> dict[str, Any]:
    """A frame entry with one OCR line (or none) and one detection."""
    lines = [{"text": text, "confidence": 0.9, "box": BOX}] if text else []
    person = {"xyxy": [10.0, 5.0, 60.0, 170.0], "confidence": 0.8, "class_id": 0}
    return {
        "frame_index": frame_index,
        "timestamp_s": round(frame_index / FPS, 6),
        "result": {"ocr": lines, "people": [{**person, "class_name": "person"}]},
    }


def submit(client: TestClient, video: Path) -> uuid.UUID:
    response = client.post("/v1/video/submit", files={"file": ("v.mp4", video.read_bytes())})
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["job_id"])


def complete(
    store: JobStore,
    backend: StorageBackend,
    job_id: uuid.UUID,
    entries: list[Any],
    tmp: Path,
    shots: tuple[Shot, ...] = (),
) -> None:
    """Write the entries (and shots) as the analysis child does, store them as the worker
    does."""
    folder = tmp / str(job_id)
    folder.mkdir()
    with FrameResultsWriter(folder) as writer:
        writer.start((320, 180))
        for item in entries:
            writer.add(item)
        writer.finish(shots)
    with StagedUpload(backend.storage) as upload:
        upload.upload(writer.results_path, results_key(job_id))
        upload.upload(writer.timeline_path, timeline_key(job_id))
        upload.commit()
    claimed = store.claim_next("w", 30)
    assert claimed is not None and claimed.job_id == job_id
    video = {"frame_count": 20, "fps": FPS, "width": 320, "height": 180}
    summary = {"frames_analysed": len(entries), "video": video}
    assert store.complete(job_id, "w", results_key(job_id), summary)


@pytest.fixture
def client(make_client: MakeClient, storage_backend: StorageBackend) -> TestClient:
    return make_client(storage=storage_backend.storage)


@pytest.fixture
def many_frames_job(
    client: TestClient,
    store: JobStore,
    storage_backend: StorageBackend,
    score_video: Path,
    tmp_path: Path,
) -> uuid.UUID:
    """A completed job of 25 entries (frames 0, 2, ..., 48)."""
    job_id = submit(client, score_video)
    complete(store, storage_backend, job_id, [entry(i, "X") for i in range(0, 50, 2)], tmp_path)
    return job_id


@pytest.fixture
def score_job(
    client: TestClient,
    store: JobStore,
    storage_backend: StorageBackend,
    score_video: Path,
    tmp_path: Path,
) -> uuid.UUID:
    """A completed job over the score video: frames 0, 5, 10, 15, two text segments."""
    job_id = submit(client, score_video)
    texts = ["SCORE 2-1", "SCORE 2-1", "HALF TIME", "HALF TIME"]
    entries = [entry(i * 5, text) for i, text in enumerate(texts)]
    complete(store, storage_backend, job_id, entries, tmp_path)
    return job_id


def test_pages_follow_next_offset_and_visit_every_entry_once(
    client: TestClient, many_frames_job: uuid.UUID
) -> None:
    seen: list[int] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        response = client.get(
            f"/v1/video/results/{many_frames_job}", params={"offset": offset, "limit": 10}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["frames_analysed"] == 25 and body["pipeline_id"] == "ocr_only"
        seen += [item["frame_index"] for item in body["results"]]
        offset = body["next_offset"]
        pages += 1
    assert pages == 3 and seen == list(range(0, 50, 2))


def test_the_whole_document_and_jsonl(
    client: TestClient, many_frames_job: uuid.UUID, storage_backend: StorageBackend
) -> None:
    whole = client.get(f"/v1/video/results/{many_frames_job}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    body = whole.json()
    assert body["next_offset"] is None and body["video"]["width"] == 320
    assert body["results"] == [entry(i, "X") for i in range(0, 50, 2)]
    assert body["created_at"].endswith("Z") and body["options"]["frame_stride"] == 1
    lines = client.get(f"/v1/video/results/{many_frames_job}", params={"format": "jsonl"})
    assert lines.status_code == 200
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert lines.content == storage_backend.read(results_key(many_frames_job))
    assert [json.loads(x) for x in lines.content.splitlines()] == body["results"]
    page = client.get(
        f"/v1/video/results/{many_frames_job}",
        params={"format": "jsonl", "offset": 24, "limit": 5},
    )
    assert [json.loads(x)["frame_index"] for x in page.content.splitlines()] == [48]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"format": "xml"}, {"offset": "a"}],
)
def test_bad_paging_values_are_400(
    client: TestClient, many_frames_job: uuid.UUID, params: dict[str, Any]
) -> None:
    response = client.get(f"/v1/video/results/{many_frames_job}", params=params)
    assert response.status_code == 400 and response.json()["detail"]


def test_timeline_json_and_vtt(client: TestClient, score_job: uuid.UUID) -> None:
    response = client.get(f"/v1/video/timeline/{score_job}")
    assert response.status_code == 200
    assert response.content.startswith(f'{{"job_id":"{score_job}",'.encode())
    timeline = response.json()
    assert [(s["text"], s["start_s"], s["end_s"], s["frames"]) for s in timeline["text"]] == [
        ("SCORE 2-1", 0.0, 0.5, 2),
        ("HALF TIME", 1.0, 1.5, 2),
    ]
    assert timeline["text"][0]["box"] == BOX and timeline["text"][0]["confidence"] == 0.9
    assert [(t["track_id"], t["class_name"], t["frames"]) for t in timeline["objects"]] == [
        (1, "person", 4)
    ]
    assert timeline["shots"] == []  # submitted without detect_shots
    vtt = client.get(f"/v1/video/timeline/{score_job}", params={"format": "vtt"})
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    captions = webvtt.from_buffer(io.StringIO(vtt.text)).captions
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:00.000", "00:00:00.600", "SCORE 2-1"),
        ("00:00:01.000", "00:00:01.600", "HALF TIME"),
    ]


def test_preview_is_the_frame_at_the_video_size_with_boxes_drawn(
    client: TestClient, score_job: uuid.UUID, score_video: Path
) -> None:
    response = client.get(f"/v1/video/preview/{score_job}", params={"frame_index": 10})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (180, 320, 3)
    capture = cv2.VideoCapture(str(score_video))
    for _ in range(11):
        ok, plain = capture.read()
    capture.release()
    assert ok
    # the drawn boxes change the frame; elsewhere it is the decoded frame (JPEG-close)
    drawn = np.abs(image.astype(int) - plain.astype(int)).max(axis=2) > 60
    assert drawn[70, 20:200].mean() > 0.5  # the text line's top edge
    assert drawn[5:170, 10].mean() > 0.5  # the person's left edge
    assert drawn[140:170, 250:300].mean() == 0.0


@pytest.mark.parametrize("frame_index", ["3", "99"])
def test_preview_of_a_frame_not_analysed_is_404(
    client: TestClient, score_job: uuid.UUID, frame_index: str
) -> None:
    response = client.get(f"/v1/video/preview/{score_job}", params={"frame_index": frame_index})
    assert response.status_code == 404
    assert response.json()["detail"] == f"job {score_job} did not analyse frame {frame_index}"


def test_preview_needs_a_frame_index(client: TestClient, score_job: uuid.UUID) -> None:
    for params in ({}, {"frame_index": -1}, {"frame_index": "x"}):
        assert client.get(f"/v1/video/preview/{score_job}", params=params).status_code == 400


SHOTS = (Shot(0, 0.0, 0.9, 0, 9), Shot(1, 1.0, 1.9, 10, 19))


def test_shots_in_the_timeline_and_as_vtt_chapters(
    client: TestClient,
    store: JobStore,
    storage_backend: StorageBackend,
    score_video: Path,
    tmp_path: Path,
) -> None:
    job_id = submit(client, score_video)
    entries = [entry(0, "SCORE 2-1"), entry(10, "HALF TIME")]
    complete(store, storage_backend, job_id, entries, tmp_path, SHOTS)
    timeline = client.get(f"/v1/video/timeline/{job_id}").json()
    assert timeline["shots"] == [shot.to_json() for shot in SHOTS]
    chapters = client.get(
        f"/v1/video/timeline/{job_id}", params={"format": "vtt", "track": "chapters"}
    )
    assert chapters.status_code == 200 and chapters.headers["content-type"].startswith("text/vtt")
    cues = webvtt.from_buffer(io.StringIO(chapters.text)).captions
    # one chapter per shot, each to the next shot's start, the last to its last frame's end
    assert [(c.start, c.end, c.text) for c in cues] == [
        ("00:00:00.000", "00:00:01.000", "Shot 1"),
        ("00:00:01.000", "00:00:02.000", "Shot 2"),
    ]
    subtitles = client.get(
        f"/v1/video/timeline/{job_id}", params={"format": "vtt", "track": "subtitles"}
    )
    assert [c.text for c in webvtt.from_buffer(io.StringIO(subtitles.text)).captions] == [
        "SCORE 2-1",
        "HALF TIME",
    ]
    assert subtitles.text == client.get(f"/v1/video/timeline/{job_id}?format=vtt").text
    bad = client.get(f"/v1/video/timeline/{job_id}", params={"format": "vtt", "track": "audio"})
    assert bad.status_code == 400
    assert "track" in bad.json()["detail"] and "'subtitles' or 'chapters'" in bad.json()["detail"]


def test_a_job_without_shots_has_no_chapters(client: TestClient, score_job: uuid.UUID) -> None:
    answer = client.get(f"/v1/video/timeline/{score_job}?format=vtt&track=chapters")
    assert answer.status_code == 200 and answer.text == "WEBVTT\n\n"


@pytest.mark.parametrize("chunk_bytes", [7, 64 * 1024])
def test_a_timeline_stored_before_shots_answers_with_no_shots(
    client: TestClient,
    store: JobStore,
    storage_backend: StorageBackend,
    score_video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_bytes: int,
) -> None:
    """The stored file is streamed (in chunks of any size): "shots": [] is added when it
    has none, and a stored "shots" key is found even when it straddles two chunks."""
    monkeypatch.setattr(timeline_route, "CHUNK_BYTES", chunk_bytes)
    entries = [entry(i, f"LINE {i}") for i in range(0, 20, 2)]
    old = submit(client, score_video)
    complete(store, storage_backend, old, entries, tmp_path)
    stored = json.loads(storage_backend.read(timeline_key(old)))
    del stored["shots"]
    storage_backend.storage.put_bytes(
        timeline_key(old), json.dumps(stored, separators=(",", ":")).encode()
    )
    new = submit(client, score_video)
    complete(store, storage_backend, new, entries, tmp_path, SHOTS)
    for job_id, shots in ((old, []), (new, [shot.to_json() for shot in SHOTS])):
        answer = client.get(f"/v1/video/timeline/{job_id}")
        assert answer.status_code == 200
        assert answer.content.startswith(f'{{"job_id":"{job_id}",'.encode())
        assert answer.json() == {**stored, "job_id": str(job_id), "shots": shots}


@pytest.mark.parametrize(
    "route", ["results/{}", "timeline/{}", "timeline/{}?format=vtt", "preview/{}?frame_index=0"]
)
def test_404s_are_the_same_as_for_results(
    client: TestClient, store: JobStore, score_video: Path, route: str
) -> None:
    unknown = uuid.uuid4()
    answer = client.get(f"/v1/video/{route.format(unknown)}")
    assert answer.status_code == 404 and answer.json() == {"detail": f"job {unknown} not found"}
    malformed = client.get(f"/v1/video/{route.format('not-a-uuid')}")
    assert malformed.status_code == 404
    pending = submit(client, score_video)
    answer = client.get(f"/v1/video/{route.format(pending)}")
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        f"job {pending} is pending; results exist once it is completed"
    )
    claimed = store.claim_next("w", 30)
    assert claimed is not None and store.fail(pending, "w", "video could not be decoded")
    answer = client.get(f"/v1/video/{route.format(pending)}")
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        f"job {pending} failed, so it has no results: video could not be decoded"
    )


def test_a_job_stored_as_one_document_before_json_lines_still_answers(
    client: TestClient, store: JobStore, storage_backend: StorageBackend, score_video: Path
) -> None:
    job_id = submit(client, score_video)
    entries = [entry(0, "SCORE 2-1"), entry(10, "HALF TIME")]
    document = {"job_id": str(job_id), "frames_analysed": 2, "results": entries}
    storage_backend.storage.put_bytes(f"results/{job_id}.json", json.dumps(document).encode())
    assert store.claim_next("w", 30) is not None
    assert store.complete(job_id, "w", f"results/{job_id}.json", {"frames_analysed": 2})
    whole = client.get(f"/v1/video/results/{job_id}").json()
    assert whole["results"] == entries and whole["next_offset"] is None
    page = client.get(f"/v1/video/results/{job_id}", params={"offset": 1, "format": "jsonl"})
    assert [json.loads(line) for line in page.content.splitlines()] == entries[1:]
    preview = client.get(f"/v1/video/preview/{job_id}", params={"frame_index": 10})
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
    timeline = client.get(f"/v1/video/timeline/{job_id}")
    assert timeline.status_code == 404
    assert timeline.json()["detail"] == (
        f"job {job_id} completed before timelines were made; submit it again"
    )


def test_previews_past_the_concurrency_limit_get_429_with_retry_after(
    client: TestClient, score_job: uuid.UUID
) -> None:
    slots = client.app.state.context.preview_slots  # type: ignore[attr-defined]
    with contextlib.ExitStack() as held:
        for _ in range(app_context.MAX_CONCURRENT_PREVIEWS):
            held.enter_context(slots.hold())
        with pytest.raises(RetryLater):  # every slot is taken
            held.enter_context(slots.hold())
        busy = client.get(f"/v1/video/preview/{score_job}", params={"frame_index": 10})
        assert busy.status_code == 429
        assert busy.headers["Retry-After"] == str(app_context.PREVIEW_RETRY_AFTER_S)
        assert "previews are being drawn" in busy.json()["detail"]
    again = client.get(f"/v1/video/preview/{score_job}", params={"frame_index": 10})
    assert again.status_code == 200
