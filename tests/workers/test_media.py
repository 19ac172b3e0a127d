"""A job's media, as its analysis child makes them: track ids per frame, thumbnails, a copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from forgesyte_testkit import Marks

from forgesyte.results.media import (
    ThumbnailCounts,
    index_entry_span,
    read_index_entry,
)
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video import playable
from forgesyte.video.playable import probe_codec
from forgesyte.workers.media import make_job_media
from forgesyte.workers.protocol import MediaRequest
from tests.support.videos import MARKS_SIZE_WH, marks_boxes, marks_frame, write_marks_video

FRAMES = 20
FPS = 10
BEST_SQUARE_FRAME = 6  # an analysed frame: the red square's surest reading


def _entries() -> list[dict[str, Any]]:
    """What testkit_marks finds on every second frame; the square surest at frame 6."""
    entries = []
    for index in range(0, FRAMES, 2):
        found = Marks().run(marks_frame(index, FRAMES), {})
        for item in found:
            if item.get("class_name") == "square":
                item["confidence"] = round(0.9 - abs(index - BEST_SQUARE_FRAME) / 100, 4)
        entries.append(
            {"frame_index": index, "timestamp_s": index / FPS, "result": {"marks": found}}
        )
    return entries


def _media(tmp_path: Path, codec: str) -> tuple[Any, dict[str, Any]]:
    """The media of a marks video in `codec`, made in tmp_path/<codec>/scratch; the timeline."""
    video = write_marks_video(tmp_path / f"{codec}.mp4", FRAMES, codec=codec, fps=FPS)
    scratch = tmp_path / codec / "scratch"
    scratch.mkdir(parents=True)
    with FrameResultsWriter(scratch) as writer:
        writer.start(MARKS_SIZE_WH)
        for entry in _entries():
            writer.add(entry)
        writer.finish()
    request = MediaRequest(
        str(video), str(writer.results_path), str(writer.timeline_path), str(scratch)
    )
    done = make_job_media(request, max_frame_pixels=8192 * 4320, threads=1)
    return done, json.loads(writer.timeline_path.read_bytes())


def _thumbnail(pack: bytes, counts: ThumbnailCounts, kind: str, index: int) -> np.ndarray:
    position = counts.position(kind, index)
    assert position is not None
    start, end = index_entry_span(position)
    entry = read_index_entry(pack[start : end + 1])
    assert entry is not None
    offset, length = entry
    image = cv2.imdecode(np.frombuffer(pack[offset : offset + length], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_each_detection_gets_the_timeline_s_track_id(tmp_path: Path) -> None:
    done, timeline = _media(tmp_path, "h264")
    tracks = {track["class_name"]: track["track_id"] for track in timeline["objects"]}
    assert sorted(tracks) == ["square", "tile"]
    lines = [json.loads(line) for line in Path(done.tracks_path).read_bytes().splitlines()]
    assert [line["frame_index"] for line in lines] == list(range(0, FRAMES, 2))
    for line, entry in zip(lines, _entries(), strict=True):
        detections = [item for item in entry["result"]["marks"] if "class_name" in item]
        assert line["track_ids"] == [tracks[item["class_name"]] for item in detections]


def test_thumbnails_are_crops_around_the_best_reading(tmp_path: Path) -> None:
    done, timeline = _media(tmp_path, "h264")
    counts = ThumbnailCounts(**done.thumbnails)
    assert counts == ThumbnailCounts(text=2, object=2, shot=0)
    assert [segment["text"] for segment in timeline["text"]] == ["TOP", "BOTTOM"]
    pack = Path(done.thumbnails_path).read_bytes()
    square_index = next(
        i for i, track in enumerate(timeline["objects"]) if track["class_name"] == "square"
    )
    square = _thumbnail(pack, counts, "object", square_index)
    x1, y1, x2, y2 = marks_boxes(BEST_SQUARE_FRAME, FRAMES)["square"]
    assert timeline["objects"][square_index]["box"] == [x1, y1, x2, y2]  # the surest reading
    # a crop around the box with half its size on each side: the square in the middle
    assert square.shape[:2] == (2 * (y2 - y1), 2 * (x2 - x1))
    middle = square[square.shape[0] // 2, square.shape[1] // 2]
    assert middle[2] > 200 and middle[0] < 80  # red (BGR)
    bar = _thumbnail(pack, counts, "text", 0)
    assert bar[bar.shape[0] // 2, bar.shape[1] // 2].max() < 60  # the black bar
    assert max(bar.shape[:2]) <= 192


def test_an_h264_upload_plays_as_it_is_and_an_mp4v_one_gets_a_copy(tmp_path: Path) -> None:
    h264, _ = _media(tmp_path, "h264")
    assert h264.playable and h264.copy_path is None and h264.codec == "h264"
    assert h264.summary()["playback"] == {"codec": "h264", "copy": False}
    mp4v, _ = _media(tmp_path, "mp4v")
    assert mp4v.playable and mp4v.codec == "mpeg4" and mp4v.copy_path is not None
    assert probe_codec(Path(mp4v.copy_path)).browser_playable
    assert mp4v.summary()["playback"] == {"codec": "mpeg4", "copy": True}


def test_without_an_h264_encoder_nothing_plays_and_the_note_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(playable, "H264_ENCODERS", ("no_such_encoder",))
    done, _ = _media(tmp_path, "mp4v")
    assert not done.playable and done.copy_path is None
    assert "no playable copy of the mpeg4 video could be made" in done.note
    assert "playback" not in done.summary() and done.summary()["thumbnails"]["text"] == 2
    assert not (tmp_path / "mp4v" / "scratch" / "playable.mp4").exists()
