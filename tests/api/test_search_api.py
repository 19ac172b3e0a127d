"""GET /v1/search over HTTP, and the uploaded file's name on jobs (status, list, search).

The matching itself is the search contract's (tests/search); here: the answer's shape,
paging with next_cursor, every bad input a 400 naming it, and hostile file names.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from forgesyte.jobs.store import JobStore
from tests.search.indexing import completed_job, text, track

BOUNDARY = "forgesyte-test-boundary"


def multipart(video: bytes, disposition: bytes) -> bytes:
    """A multipart body with one file part whose Content-Disposition is given raw."""
    return (
        f"--{BOUNDARY}\r\n".encode()
        + b"Content-Disposition: "
        + disposition
        + b"\r\nContent-Type: video/mp4\r\n\r\n"
        + video
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def submit_named(client: TestClient, video: Path, disposition: bytes) -> str:
    response = client.post(
        "/v1/video/submit",
        content=multipart(video.read_bytes(), disposition),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


LONG = "x" * 9_996 + ".mp4"


@pytest.mark.parametrize(
    ("disposition", "kept"),
    [
        (b'form-data; name="file"; filename="match.mp4"', "match.mp4"),
        (b'form-data; name="file"; filename="../../etc/passwd.mp4"', "passwd.mp4"),
        (b'form-data; name="file"; filename="C:\\\\Users\\\\me\\\\derby day.mp4"', "derby day.mp4"),
        (b'form-data; name="file"; filename="/srv/videos/"', None),  # a folder, no name
        (b'form-data; name="file"; filename="a\x01b\x1fc\x7fd\tok.mp4"', "abcdok.mp4"),
        ('form-data; name="file"; filename="evil\u202egpj.mp4"'.encode(), "evilgpj.mp4"),
        (f'form-data; name="file"; filename="{LONG}"'.encode(), "x" * 255),
        ('form-data; name="file"; filename="{}"'.format("é" * 300).encode(), "é" * 255),
        (b'form-data; name="file"; filename="\xff\xfeclip\xc3.mp4"', "\ufffd\ufffdclip\ufffd.mp4"),
        (b'form-data; name="file"; filename=""', None),
        (b'form-data; name="file"; filename=".."', None),
        (b'form-data; name="file"', None),  # no name at all
    ],
)
def test_a_job_keeps_the_uploads_base_name_cleaned(
    client: TestClient, score_video: Path, disposition: bytes, kept: str | None
) -> None:
    job_id = submit_named(client, score_video, disposition)
    status = client.get(f"/v1/video/status/{job_id}").json()
    listed = client.get("/v1/video/jobs").json()["jobs"][0]
    assert listed["job_id"] == job_id
    assert status.get("filename") == kept
    assert listed.get("filename") == kept


def test_search_answers_matches_with_the_contracts_fields(
    client: TestClient, store: JobStore
) -> None:
    job_id = completed_job(
        store, [text("PLATFORM 9", 2.0, 4.5)], [track("person", 1.0, 3.0)], filename="station.mp4"
    )
    answer = client.get("/v1/search", params={"q": "platf0rm 9"}).json()
    assert answer == {
        "matches": [
            {
                "job_id": str(job_id),
                "filename": "station.mp4",
                "kind": "text",
                "text": "PLATFORM 9",
                "start_s": 2.0,
                "end_s": 4.5,
                "confidence": 0.9,
                "score": 0.8889,
            }
        ],
        "next_cursor": None,
    }
    objects = client.get("/v1/search", params={"q": "Person", "kind": "object"}).json()
    assert objects["matches"] == [
        {
            "job_id": str(job_id),
            "filename": "station.mp4",
            "kind": "object",
            "class_name": "person",
            "start_s": 1.0,
            "end_s": 3.0,
            "confidence": 0.8,
            "score": 1.0,
        }
    ]
    beside = client.get("/v1/search", params={"q": "platform 9", "with": "person"}).json()
    assert [m["start_s"] for m in beside["matches"]] == [2.0]
    assert client.get("/v1/search", params={"q": "platform 9", "with": "dog"}).json() == {
        "matches": [],
        "next_cursor": None,
    }


def test_next_cursor_pages_through_every_match_once(client: TestClient, store: JobStore) -> None:
    for _ in range(3):
        completed_job(store, [text(f"EXIT {n}", float(n)) for n in range(5)])
    seen: list[tuple[str, float]] = []
    params: dict[str, str] = {"q": "exit", "limit": "4"}
    pages = 0
    while True:
        answer = client.get("/v1/search", params=params).json()
        seen += [(m["job_id"], m["start_s"]) for m in answer["matches"]]
        pages += 1
        if answer["next_cursor"] is None:
            break
        params["cursor"] = answer["next_cursor"]
    assert pages == 4 and len(seen) == 15 == len(set(seen))
    assert client.get("/v1/search", params={"q": "exit"}).json()["next_cursor"] is None  # 15 < 20


def _forged(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "q:"),
        ({"q": "x"}, "q:"),
        ({"q": "   "}, "q:"),
        ({"q": "x" * 201}, "q:"),
        ({"q": "exit", "kind": "shots"}, "kind:"),
        ({"q": "person", "kind": "object", "with": "dog"}, "with:"),
        ({"q": "exit", "limit": "0"}, "limit:"),
        ({"q": "exit", "limit": "101"}, "limit:"),
        ({"q": "exit", "limit": "ten"}, "limit:"),
        ({"q": "exit", "cursor": "not a cursor!"}, "cursor:"),
        ({"q": "exit", "cursor": _forged({"a": 1})}, "cursor:"),
        ({"q": "exit", "cursor": _forged([0, "yesterday", "x", 0, 0, "f"])}, "cursor:"),
        ({"q": "exit", "cursor": "A" * 600}, "cursor:"),
    ],
)
def test_bad_input_gets_a_400_naming_it(
    client: TestClient, params: dict[str, str], named: str
) -> None:
    response = client.get("/v1/search", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(named)


def test_a_cursor_pages_only_its_own_search(client: TestClient, store: JobStore) -> None:
    completed_job(store, [text(f"EXIT {n}", float(n)) for n in range(3)])
    cursor = client.get("/v1/search", params={"q": "exit", "limit": "1"}).json()["next_cursor"]
    assert client.get("/v1/search", params={"q": "EXIT", "cursor": cursor}).status_code == 200
    other = client.get("/v1/search", params={"q": "exit 1", "cursor": cursor})
    assert other.status_code == 400 and "another search" in other.json()["detail"]
    values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for index, wrong in [(0, -1), (0, 1.5), (0, True), (3, "soon"), (4, -2), (1, "2026-01-01")]:
        mangled = list(values)
        mangled[index] = wrong
        response = client.get("/v1/search", params={"q": "exit", "cursor": _forged(mangled)})
        assert response.status_code == 400, (index, wrong)
        assert response.json()["detail"].startswith("cursor:")


@pytest.mark.parametrize("store", ["duckdb", "postgresql"], indirect=True)
def test_the_route_on_the_databases(client: TestClient, store: JobStore) -> None:
    first = completed_job(store, [text("GATE 7 OPEN", 1.0)], filename="a.mp4")
    second = completed_job(store, [text("GATE 7 0PEN", 2.0), text("GATE 7 OPEN", 3.0)])
    answer = client.get("/v1/search", params={"q": "Gate 7 open", "limit": "2"}).json()
    assert [(m["job_id"], m["score"]) for m in answer["matches"]] == [
        (str(second), 1.0),
        (str(first), 1.0),
    ]
    rest = client.get(
        "/v1/search", params={"q": "Gate 7 open", "limit": "2", "cursor": answer["next_cursor"]}
    ).json()
    assert [(m["job_id"], m["score"]) for m in rest["matches"]] == [(str(second), 0.8889)]
    assert rest["next_cursor"] is None
    assert uuid.UUID(answer["matches"][0]["job_id"]) == second


def test_a_name_past_the_disposition_limit_and_other_long_headers_are_refused(
    client: TestClient, score_video: Path
) -> None:
    huge = b'form-data; name="file"; filename="' + b"y" * 50_000 + b'.mp4"'
    long_type = b'form-data; name="file"; filename="v.mp4"\r\nX-Note: ' + b"z" * 2_000
    for disposition in (huge, long_type):
        response = client.post(
            "/v1/video/submit",
            content=multipart(score_video.read_bytes(), disposition),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert response.status_code == 400, response.text
    assert client.get("/v1/video/jobs").json()["jobs"] == []
