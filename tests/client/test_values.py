"""The values the client builds from the server's JSON: known fields kept, unknown ones
ignored, later fields optional, a broken answer an ApiError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from forgesyte.client import (
    ApiError,
    FrameEntry,
    JobListEntry,
    JobStatus,
    ObjectTrack,
    Shot,
    TextSegment,
    Timeline,
)

STATUS = {
    "job_id": "8c9b7598-c23f-4d30-af09-dc788ea9a1d3",
    "status": "completed",
    "progress": 100.0,
    "created_at": "2026-11-26T11:25:19.715030Z",
    "updated_at": "2026-11-26T11:25:22.100913Z",
}
SEGMENT = {
    "text": "GATE 7 OPEN",
    "start_s": 2.0,
    "end_s": 5.0,
    "first_frame": 20,
    "last_frame": 50,
    "frames": 7,
    "confidence": 0.9991,
    "box": [[15.0, 67.0], [279.0, 68.0], [279.0, 116.0], [15.0, 116.0]],
}
TRACK = {
    "track_id": 1,
    "class_name": "person",
    "start_s": 0.0,
    "end_s": 1.0,
    "first_frame": 0,
    "last_frame": 10,
    "frames": 3,
    "confidence": 0.8765,
    "box": [1.0, 2.0, 30.0, 40.0],
}


def test_a_status_of_todays_server_and_of_a_newer_one() -> None:
    today = JobStatus.from_json(STATUS)
    assert today.created_at == datetime(2026, 11, 26, 11, 25, 19, 715030, tzinfo=UTC)
    assert (today.error_message, today.pipeline_id, today.filename, today.playable) == (
        None,
        None,
        None,
        False,
    )
    assert today.finished and today.raw == STATUS
    newer: dict[str, Any] = {
        **STATUS,
        "status": "archived",  # a status this client does not know reads as itself
        "pipeline_id": "detect",
        "filename": "match.mp4",
        "playable": True,
        "owner": "alice",  # a field this client does not know is ignored
    }
    status = JobStatus.from_json(newer)
    assert (status.status, status.pipeline_id, status.filename, status.playable) == (
        "archived",
        "detect",
        "match.mp4",
        True,
    )
    assert not status.finished and status.raw["owner"] == "alice"
    assert status == JobStatus.from_json({**newer, "owner": "bob"})  # raw is not compared


def test_a_list_entry_has_its_pipeline() -> None:
    entry = JobListEntry.from_json({**STATUS, "pipeline_id": "ocr_only"})
    assert isinstance(entry, JobStatus) and entry.pipeline_id == "ocr_only"
    with pytest.raises(ApiError, match="lacks pipeline_id"):
        JobListEntry.from_json(STATUS)


def test_a_timeline_with_and_without_shots() -> None:
    shot = {"index": 0, "start_s": 0.0, "end_s": 4.9, "first_frame": 0, "last_frame": 49}
    timeline = Timeline.from_json(
        {"job_id": "j", "text": [SEGMENT], "objects": [TRACK], "shots": [shot]}
    )
    (segment,) = timeline.text
    assert segment == TextSegment(**{**SEGMENT, "box": tuple(map(tuple, SEGMENT["box"]))})
    assert hash(segment)  # frozen all the way down
    assert timeline.objects == (ObjectTrack(**{**TRACK, "box": (1.0, 2.0, 30.0, 40.0)}),)
    assert timeline.shots == (Shot(**shot),)
    older = Timeline.from_json({"job_id": "j", "text": [], "objects": []})
    assert older.shots == () and older.raw == {"job_id": "j", "text": [], "objects": []}


def test_a_frame_entry_keeps_its_result_as_sent() -> None:
    entry = FrameEntry.from_json(
        {"frame_index": 5, "timestamp_s": 0.5, "result": {"ocr": []}, "reused_from": 0}
    )
    assert (entry.frame_index, entry.result, entry.reused_from) == (5, {"ocr": []}, 0)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([STATUS], "expected a JSON object"),
        ({**STATUS, "created_at": "yesterday"}, "bad timestamp"),
        ({"job_id": "j", "status": "running"}, "lacks progress, created_at, updated_at"),
    ],
)
def test_an_answer_that_is_not_a_status_is_an_api_error(answer: Any, problem: str) -> None:
    with pytest.raises(ApiError, match=problem) as failed:
        JobStatus.from_json(answer)
    assert failed.value.status_code is None
