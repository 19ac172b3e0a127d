"""Hostile videos against a real server: each ends in a 400 or a job that ends (failed or
completed from the frames the file really holds) within seconds, never reads another
job's video, and leaves the worker free for the next job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from forgesyte.client import JobStatus
from tests.support.server import ServerProcess, submit, submit_video, wait_for_end
from tests.video.crafted import concat_playlist, ftyp_then_concat_playlist, hls_playlist

TERMINAL_WITHIN_S = 10.0  # a hostile file ends within this (the old code hung or read on)
HUGE_REASON = (
    "video could not be decoded: the video's frames are 8000x8000 (64000000 pixels), "
    "over the limit of 35389440"
)


def run_job(server: ServerProcess, data: bytes, **options: Any) -> tuple[JobStatus, float]:
    """Submit and wait (past the bound, so a slow job shows its real time): status, seconds."""
    started = time.monotonic()
    job_id = submit_video(server.url, data, pipeline_id="testkit_grey", **options)
    status, _ = wait_for_end(server.url, job_id, timeout_s=90)
    elapsed = time.monotonic() - started
    print(f"{options or 'defaults'}: {status.status} in {elapsed:.2f} s")
    return status, elapsed


def assert_worker_free(server: ServerProcess, honest: Path) -> None:
    """The next honest job completes promptly: nothing is left blocking the worker."""
    status, elapsed = run_job(server, honest.read_bytes())
    assert status.status == "completed", status
    assert elapsed < TERMINAL_WITHIN_S


@pytest.mark.parametrize(
    "options",
    [{}, {"sample_fps": 1}, {"sample_fps": 0.01}, {"frame_stride": 1000}, {"max_frames": 5}],
    ids=["defaults", "sample_fps-1", "sample_fps-0.01", "stride-1000", "max_frames-5"],
)
def test_a_frame_count_bomb_ends_in_seconds(
    decode_server: ServerProcess, hostile_files: dict[str, Path], options: dict[str, Any]
) -> None:
    bomb = hostile_files["bomb"].read_bytes()
    assert len(bomb) < 4096
    status, elapsed = run_job(decode_server, bomb, **options)
    assert elapsed < TERMINAL_WITHIN_S, f"{status} after {elapsed:.1f} s"
    if status.status == "failed":
        assert status.error_message.startswith("video could not be decoded: "), status
        assert "declared frames" in status.error_message
    else:
        assert status.status == "completed", status
    assert_worker_free(decode_server, hostile_files["honest"])


def test_huge_frames_fail_with_their_size(
    decode_server: ServerProcess, hostile_files: dict[str, Path]
) -> None:
    status, elapsed = run_job(decode_server, hostile_files["huge"].read_bytes())
    assert status.status == "failed", status
    assert status.error_message == HUGE_REASON
    assert elapsed < TERMINAL_WITHIN_S
    assert_worker_free(decode_server, hostile_files["honest"])


def _victim(server: ServerProcess, honest: Path) -> tuple[str, Path]:
    """Another user's completed job: its id and where its video is stored."""
    job_id = submit_video(server.url, honest.read_bytes(), pipeline_id="testkit_grey")
    status, _ = wait_for_end(server.url, job_id, timeout_s=60)
    assert status.status == "completed", status
    stored = server.data_dir / "storage" / "videos" / f"{job_id}.mp4"
    assert stored.is_file()
    return job_id, stored


# The old OpenCV decoder read the victim through the first (its job completed with the
# victim's frames); FFmpeg's own guards (concat's safe mode, HLS's extension check)
# stopped the others there. All must stay unread whatever the FFmpeg build does.
PLAYLISTS = {
    "ffconcat-by-storage-name": lambda job_id, stored: concat_playlist(f"{job_id}.mp4"),
    "ffconcat-by-absolute-path": lambda job_id, stored: concat_playlist(str(stored)),
    "ftyp-box-then-ffconcat": lambda job_id, stored: ftyp_then_concat_playlist(f"{job_id}.mp4"),
    "hls-by-storage-name": lambda job_id, stored: hls_playlist(f"{job_id}.mp4"),
    "hls-by-absolute-path": lambda job_id, stored: hls_playlist(str(stored)),
}


@pytest.mark.parametrize("name", list(PLAYLISTS))
def test_a_playlist_never_reads_another_jobs_video(
    decode_server: ServerProcess, hostile_files: dict[str, Path], name: str
) -> None:
    job_id, stored = _victim(decode_server, hostile_files["honest"])
    playlist = PLAYLISTS[name](job_id, stored)
    started = time.monotonic()
    response = submit(decode_server.url, playlist, pipeline_id="testkit_grey")
    if response.status_code == 400:  # refused at the door: nothing was read
        print(f"{name}: 400 in {time.monotonic() - started:.2f} s")
        return
    assert response.status_code == 200, response.text
    playlist_job = response.json()["job_id"]
    status, _ = wait_for_end(decode_server.url, playlist_job, timeout_s=60)
    elapsed = time.monotonic() - started
    print(f"{name}: {status.status} in {elapsed:.2f} s")
    assert status.status == "failed", f"the playlist job read a video: {status}"
    assert status.error_message.startswith("video could not be decoded: "), status
    assert str(decode_server.data_dir) not in status.error_message
    results = httpx.get(f"{decode_server.url}/v1/video/results/{playlist_job}", timeout=10)
    assert results.status_code == 404  # no frames, from the named file or any other
    assert elapsed < TERMINAL_WITHIN_S
