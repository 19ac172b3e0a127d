"""A corpus of corrupt and hostile files against a real server.

Each file ends in a clear 400 at submit or a failed job with an error_message; none
crashes or hangs the server, and none leaves a file or a job row behind.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import (
    assert_every_frame_once,
    assert_no_leak,
    assert_no_orphans,
    file_part_prologue,
    job_counts,
    multipart_head,
    results_of,
    temporary_files,
    wait_for_no_temporary_files,
)
from tests.support.server import ServerProcess, submit, wait_for_end
from tests.support.videos import (
    audio_only_mp4,
    faststart_mp4,
    garbage_after_ftyp_mp4,
    header_only_mp4,
    huge_largesize_mp4,
    huge_moov_size_mp4,
    huge_sample_count_mp4,
    png_bytes,
    random_bytes,
    write_counter_video,
    zero_size_box_mp4,
)

FRAMES = 30
TRUNCATION_POINTS = 10
REFUSED = "400"  # refused at submit
UNDECODABLE = "video could not be decoded"  # accepted, then its job fails with this
CLAMPED = "clamped"  # a size past the end of the file is clamped: all frames, or a clean failure

Maker = Callable[[Path], bytes]


def _make_corpus(folder: Path) -> dict[str, tuple[bytes, str, str]]:
    """name -> (file bytes, expected outcome, a piece of the expected detail or message)."""
    moov_last = write_counter_video(folder / "moov_last.mp4", FRAMES, size_wh=(96, 64))
    good = faststart_mp4(moov_last, folder / "faststart.mp4")
    data = good.read_bytes()
    corpus: dict[str, tuple[bytes, str, str]] = {
        "zero_bytes": (b"", REFUSED, "empty"),
        "text_named_mp4": (b"hello, this is not a video\n" * 40, REFUSED, "not an MP4"),
        "png_named_mp4": (png_bytes(), REFUSED, "not an MP4"),
        "random_bytes": (random_bytes(8192), REFUSED, "not an MP4"),
        "cut_inside_ftyp": (data[:6], REFUSED, "not an MP4"),
        "header_only_ftyp": (header_only_mp4(folder / "h.mp4").read_bytes(), UNDECODABLE, ""),
        "random_after_ftyp": (
            garbage_after_ftyp_mp4(folder / "g.mp4").read_bytes(),
            UNDECODABLE,
            "",
        ),
        "audio_track_only": (audio_only_mp4(folder / "a.mp4").read_bytes(), UNDECODABLE, ""),
        "mdat_largesize_2_62": (huge_largesize_mp4(folder / "l.mp4").read_bytes(), UNDECODABLE, ""),
        "box_size_zero": (
            zero_size_box_mp4(moov_last, folder / "z.mp4").read_bytes(),
            UNDECODABLE,
            "",
        ),
        "stsz_count_0x3fffffff": (
            huge_sample_count_mp4(good, folder / "s.mp4").read_bytes(),
            UNDECODABLE,
            "",
        ),
        "moov_size_0xffffffff_last": (
            huge_moov_size_mp4(moov_last, folder / "m1.mp4").read_bytes(),
            CLAMPED,
            "",
        ),
        "moov_size_0xffffffff_first": (
            huge_moov_size_mp4(good, folder / "m2.mp4").read_bytes(),
            CLAMPED,
            "",
        ),
    }
    for step in range(1, TRUNCATION_POINTS + 1):
        # cuts through moov (nothing opens) and through mdat (decoding stops early)
        cut = len(data) * step // (TRUNCATION_POINTS + 1)
        corpus[f"truncated_{step}_of_{TRUNCATION_POINTS + 1}"] = (data[:cut], UNDECODABLE, "")
    return corpus


CORPUS_NAMES = [
    "zero_bytes",
    "text_named_mp4",
    "png_named_mp4",
    "random_bytes",
    "cut_inside_ftyp",
    "header_only_ftyp",
    "random_after_ftyp",
    "audio_track_only",
    "mdat_largesize_2_62",
    "box_size_zero",
    "stsz_count_0x3fffffff",
    "moov_size_0xffffffff_last",
    "moov_size_0xffffffff_first",
    *(f"truncated_{step}_of_{TRUNCATION_POINTS + 1}" for step in range(1, TRUNCATION_POINTS + 1)),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str, str]]:
    """The hostile files, made once."""
    made = _make_corpus(tmp_path_factory.mktemp("corpus"))
    assert sorted(made) == sorted(CORPUS_NAMES)
    return made


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_a_hostile_file_is_refused_or_fails_cleanly_and_leaves_nothing(
    hostile_server: ServerProcess, corpus: dict[str, tuple[bytes, str, str]], name: str
) -> None:
    data, expected, detail = corpus[name]
    rows_before = sum(job_counts(hostile_server).values())
    response = submit(hostile_server.url, data, pipeline_id="testkit_noop")
    assert_no_leak(response.text, hostile_server.data_dir)
    if expected == REFUSED:
        assert response.status_code == 400, response.text
        assert detail in response.json()["detail"]
        assert sum(job_counts(hostile_server).values()) == rows_before
    else:
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        status, _ = wait_for_end(hostile_server.url, job_id, timeout_s=60)
        if expected == CLAMPED and status.status == "completed":
            assert_every_frame_once(results_of(hostile_server, job_id), FRAMES)
        else:
            assert status.status == "failed", status
            assert status.error_message.startswith(UNDECODABLE), status
            assert_no_leak(status.error_message, hostile_server.data_dir)
        assert sum(job_counts(hostile_server).values()) == rows_before + 1
    assert httpx.get(f"{hostile_server.url}/healthz", timeout=10).json()["status"] == "ok"
    assert_no_orphans(hostile_server)


def test_an_upload_that_stops_midway_leaves_nothing(
    hostile_server: ServerProcess, small_video: Path
) -> None:
    rows_before = sum(job_counts(hostile_server).values())
    declared = (1 << 20) + (512 << 10)  # 1.5 MiB: under the 2 MiB limit
    with socket.create_connection(("127.0.0.1", hostile_server.port)) as sock:
        sock.sendall(multipart_head(hostile_server.port, declared) + file_part_prologue())
        sock.sendall(small_video.read_bytes()[:64] + bytes((1 << 20) + 4096))
        deadline = time.monotonic() + 10
        while not temporary_files(hostile_server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert temporary_files(hostile_server), "the first MiB should be in a temporary file"
    # the client is gone: the server drops what it had written
    wait_for_no_temporary_files(hostile_server)
    assert sum(job_counts(hostile_server).values()) == rows_before
    assert_no_orphans(hostile_server)
