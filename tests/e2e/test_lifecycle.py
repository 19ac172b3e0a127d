"""End to end: a real `forgesyte serve`, real MP4s, real OCR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import HALF_TIME_TEXT, SCORE_TEXT
from tests.support.server import ServerProcess, run_job, submit_video, wait_for_end
from tests.support.videos import (
    garbage_after_ftyp_mp4,
    header_only_mp4,
    truncated_mp4,
    write_counter_video,
)

REPO = Path(__file__).resolve().parents[2]


def test_ocr_job_reads_the_right_text_at_the_right_frames(
    live_server: ServerProcess, score_video: Path
) -> None:
    job_id = submit_video(live_server.url, score_video.read_bytes(), frame_stride=5)
    status, progress = wait_for_end(live_server.url, job_id)
    assert status.status == "completed", status
    assert status.progress == 100.0
    assert progress == sorted(progress), "progress never goes back"
    results = httpx.get(f"{live_server.url}/v1/video/results/{job_id}", timeout=10).json()
    frames = results["results"]
    assert [f["frame_index"] for f in frames] == [0, 5, 10, 15]
    assert [f["timestamp_s"] for f in frames] == [0.0, 0.5, 1.0, 1.5]
    texts = [" ".join(line["text"] for line in f["result"]["ocr"]) for f in frames]
    assert texts == [SCORE_TEXT, SCORE_TEXT, HALF_TIME_TEXT, HALF_TIME_TEXT]
    assert results["video"] == {"fps": 10.0, "frame_count": 20, "height": 180, "width": 320}


def test_corrupt_videos_fail_and_the_next_good_job_completes(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    good = write_counter_video(tmp_path / "good.mp4", 30)
    broken = [
        header_only_mp4(tmp_path / "header.mp4"),
        truncated_mp4(good, tmp_path / "truncated.mp4", 0.5),
        garbage_after_ftyp_mp4(tmp_path / "garbage.mp4"),
    ]
    bad_ids = [
        submit_video(live_server.url, path.read_bytes(), pipeline_id="testkit_grey")
        for path in broken
    ]
    good_id = submit_video(live_server.url, good.read_bytes(), pipeline_id="testkit_grey")
    for job_id in bad_ids:
        status, _ = wait_for_end(live_server.url, job_id)
        assert status.status == "failed"
        assert status.error_message and status.error_message.startswith(
            "video could not be decoded"
        )
        results = httpx.get(f"{live_server.url}/v1/video/results/{job_id}", timeout=10)
        assert results.status_code == 404 and "failed" in results.json()["detail"]
    status, _ = wait_for_end(live_server.url, good_id)
    assert status.status == "completed"
    health = httpx.get(f"{live_server.url}/healthz", timeout=10).json()
    assert health["status"] == "ok"


def test_smoke_script_passes_against_the_live_server(live_server: ServerProcess) -> None:
    env = {**os.environ, "JOB_PROCESSING_SMOKE_TEST": "1", "BASE_URL": live_server.url}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_test.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout


def test_smoke_script_refuses_to_run_unless_asked() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOB_PROCESSING_SMOKE_TEST"}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_test.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "JOB_PROCESSING_SMOKE_TEST" in done.stderr


def test_user_pipelines_and_a_third_party_plugin_run_in_a_real_server(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    listed = httpx.get(f"{live_server.url}/v1/pipelines", timeout=10).json()
    ids = {p["id"]: p for p in listed["pipelines"]}
    assert ids["testkit_grey"]["available"] is True  # from FORGESYTE_PIPELINES_DIR
    assert ids["testkit_grey"]["nodes"][0]["plugin_type"] == "testkit"  # entry-point plugin
    video = write_counter_video(tmp_path / "v.mp4", 60, fps=30.0)
    status = run_job(live_server.url, video.read_bytes(), pipeline_id="testkit_grey", sample_fps=4)
    assert status.status == "completed"
    results = httpx.get(f"{live_server.url}/v1/video/results/{status.job_id}", timeout=10).json()
    assert [f["frame_index"] for f in results["results"]] == [0, 8, 15, 23, 30, 38, 45, 53]
    assert all(isinstance(f["result"]["grey"], float) for f in results["results"])


def test_an_out_of_the_box_detector_pipeline_runs(
    live_server: ServerProcess, score_video: Path
) -> None:
    status = run_job(
        live_server.url, score_video.read_bytes(), pipeline_id="people_detect", max_frames=3
    )
    assert status.status == "completed", status
    results = httpx.get(f"{live_server.url}/v1/video/results/{status.job_id}", timeout=10).json()
    assert len(results["results"]) == 3
    assert all(f["result"] == {"people": []} for f in results["results"])
