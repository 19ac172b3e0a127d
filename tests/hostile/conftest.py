"""One real `forgesyte serve` for the hostile decoder inputs, and the files they need."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, run_job
from tests.support.videos import write_counter_video
from tests.video.crafted import frame_count_bomb_mp4, write_h264_video

# A job the old decoder would have kept running is cut off here, so a failing run of
# these tests still ends; every test asserts a far shorter time to a terminal state.
HOSTILE_DECODE_ENV = {"FORGESYTE_MAX_UPLOAD_MB": "8", "FORGESYTE_JOB_TIMEOUT_S": "60"}


@pytest.fixture(scope="package")
def decode_server(
    tmp_path_factory: pytest.TempPathFactory, hostile_files: dict[str, Path]
) -> Iterator[ServerProcess]:
    """One worker, so a job that blocks it would hold up the next one.

    Warm: one honest job has completed, so the analysis child's start-up is not timed.
    """
    server = ServerProcess(
        tmp_path_factory.mktemp("hostile-decode"), workers=1, env=HOSTILE_DECODE_ENV
    )
    server.start()
    try:
        honest = hostile_files["honest"].read_bytes()
        status = run_job(server.url, honest, timeout_s=180, pipeline_id="testkit_grey")
        assert status.status == "completed", status
        yield server
        code = server.terminate()
        assert code == 0, f"exit code {code} on SIGTERM:\n{server.log_text()}"
    finally:
        server.kill()


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small honest video, a frame-count bomb made from it, and an 8000x8000 video."""
    folder = tmp_path_factory.mktemp("hostile-files")
    honest = write_counter_video(folder / "honest.mp4", 30, size_wh=(96, 64))
    return {
        "honest": honest,
        "bomb": frame_count_bomb_mp4(honest, folder / "bomb.mp4"),
        "huge": write_h264_video(
            folder / "huge.mp4", 1, size_wh=(8000, 8000), b_frames=0, noise=False
        ),
    }
