"""A real server on loopback: an OCR job's timeline through the API and `forgesyte timeline`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import cv2
import httpx
import numpy as np
import pytest
import webvtt

from forgesyte.cli import main
from forgesyte.client import Timeline
from forgesyte.client_commands import clock, format_timeline
from tests.support.server import ServerProcess, run_job
from tests.support.videos import write_text_video

GATE_TEXTS = ["GATE 7 OPEN"] * 6 + [""] * 4 + ["EXIT"] * 4  # 10 fps, 1.4 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = ServerProcess(tmp_path_factory.mktemp("server"), workers=1).start()
    yield started
    assert started.terminate() == 0, started.log_text()


@pytest.fixture(scope="module")
def gate_job(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    video = write_text_video(tmp_path_factory.mktemp("v") / "gate.mp4", GATE_TEXTS)
    status = run_job(
        server.url, video.read_bytes(), timeout_s=180, pipeline_id="ocr_only", frame_stride=2
    )
    assert status.status == "completed", status
    return status.job_id


def test_clock_and_format() -> None:
    assert clock(2.0) == "00:02.0" and clock(5.44) == "00:05.4" and clock(3725.0) == "62:05.0"
    span = {"first_frame": 0, "last_frame": 10, "frames": 3}
    timeline = Timeline.from_json(
        {
            "job_id": "j",
            "text": [
                {
                    "text": "GATE 7 OPEN",
                    "start_s": 2.0,
                    "end_s": 5.4,
                    "confidence": 0.9,
                    "box": [[0, 0], [1, 0], [1, 1], [0, 1]],
                    **span,
                }
            ],
            "objects": [
                {
                    "track_id": 1,
                    "class_name": "car",
                    "start_s": 0.0,
                    "end_s": 1.0,
                    "confidence": 0.8765,
                    "box": [0, 0, 1, 1],
                    **span,
                }
            ],
        }
    )
    assert format_timeline(timeline) == [
        "00:02.0\u201300:05.4  GATE 7 OPEN",
        "",
        "00:00.0\u201300:01.0  #1 car  (3 frames, best 0.88)",
    ]
    assert format_timeline(Timeline(job_id="j")) == ["no text", "", "no objects"]


def test_timeline_cli_vtt_and_preview_on_a_real_server(
    server: ServerProcess, gate_job: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timeline", "--url", server.url, gate_job]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.casefold() for line in printed] == [
        "00:00.0\u201300:00.4  gate 7 open",
        "00:01.0\u201300:01.2  exit",
        "",
        "no objects",
    ]
    vtt = httpx.get(f"{server.url}/v1/video/timeline/{gate_job}", params={"format": "vtt"})
    captions = webvtt.from_buffer(io.StringIO(vtt.text)).captions
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:00.000", "00:00:00.600"),
        ("00:00:01.000", "00:00:01.400"),
    ]
    lines = httpx.get(f"{server.url}/v1/video/results/{gate_job}", params={"format": "jsonl"})
    assert [json.loads(x)["frame_index"] for x in lines.text.splitlines()] == list(range(0, 14, 2))
    preview = httpx.get(f"{server.url}/v1/video/preview/{gate_job}", params={"frame_index": 2})
    assert preview.status_code == 200
    image = cv2.imdecode(np.frombuffer(preview.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (180, 320, 3)
    missing = httpx.get(f"{server.url}/v1/video/preview/{gate_job}", params={"frame_index": 3})
    assert missing.status_code == 404


def test_timeline_cli_on_an_unknown_job(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["timeline", "--url", server.url, "00000000-0000-0000-0000-000000000000"])
    assert exited.value.code == 1
    assert "HTTP 404" in capsys.readouterr().err
