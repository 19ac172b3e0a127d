"""The `forgesyte` command: migrations on demand, the worker process, the client commands."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from forgesyte.cli import build_parser, main, option_flag, submit_fields
from forgesyte.jobs.options import JobOptions
from tests.support.server import FORGESYTE, ServerProcess, WorkerProcess


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FORGESYTE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FORGESYTE_DATABASE_URL", raising=False)
    return tmp_path


def test_db_upgrade_downgrade_current(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == "schema revision: none (empty)"
    assert main(["db", "upgrade"]) == 0
    assert "0001_create_jobs" in capsys.readouterr().out
    assert (data_dir / "forgesyte.duckdb").is_file()
    assert main(["db", "downgrade", "base"]) == 0
    assert capsys.readouterr().out.strip() == "schema revision: none (empty)"
    assert main(["db", "upgrade", "head"]) == 0
    assert "0001_create_jobs" in capsys.readouterr().out


def test_negative_worker_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "-1"]) == 2
    assert "--workers must be >= 0" in capsys.readouterr().err


def test_worker_process_starts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path / "worker.log", env={"FORGESYTE_DATA_DIR": str(tmp_path)})
    try:
        worker.start(timeout_s=60)
        worker.wait_idle(timeout_s=60)  # its analysis child is up and waits for a job
        assert worker.terminate(timeout_s=60) == 0, worker.log_text()
    finally:
        worker.kill()


def test_client_commands_and_the_locked_duckdb_message(
    live_server: ServerProcess, score_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = live_server.url
    assert main(["submit", "--url", url, "--pipeline-id", "testkit_grey", str(score_video)]) == 0
    job_id = capsys.readouterr().out.strip()
    # every option has its flag; the server stores what the flags asked for
    flags = ["--max-frames", "3", "--sample-fps", "2.5", "--skip-unchanged"]
    assert (
        main(["submit", "--url", url, "--pipeline-id", "testkit_grey", *flags, str(score_video)])
        == 0
    )
    sampled_job_id = capsys.readouterr().out.strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert main(["status", "--url", url, job_id]) == 0
        status = json.loads(capsys.readouterr().out)
        if status["status"] == "completed":
            break
        time.sleep(0.2)
    assert status["status"] == "completed"
    assert main(["results", "--url", url, job_id]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results["results"]) == 20
    assert results["options"] == JobOptions().to_json()
    while time.monotonic() < deadline:
        assert main(["status", "--url", url, sampled_job_id]) == 0
        if json.loads(capsys.readouterr().out)["status"] == "completed":
            break
        time.sleep(0.2)
    assert main(["results", "--url", url, sampled_job_id]) == 0
    sampled = json.loads(capsys.readouterr().out)
    assert sampled["options"] == {
        "frame_stride": 1,
        "max_frames": 3,
        "sample_fps": 2.5,
        "skip_unchanged": True,
    }
    assert 0 < len(sampled["results"]) <= 3
    with pytest.raises(SystemExit) as exited:
        main(["status", "--url", url, "00000000-0000-0000-0000-000000000000"])
    assert exited.value.code == 1
    assert "HTTP 404" in capsys.readouterr().err

    # a second process on the server's DuckDB file gets one clear line
    env = {**os.environ, "FORGESYTE_DATA_DIR": str(live_server.data_dir)}
    done = subprocess.run(
        [FORGESYTE, "worker", "--concurrency", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert "in use by another process" in message
    assert "forgesyte serve --workers N" in message and "PostgreSQL" in message


def _submit_parser() -> argparse.ArgumentParser:
    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = commands.choices["submit"]
    return parser


def test_submit_has_one_flag_per_job_option_with_its_description() -> None:
    """The flags are derived from JobOptions: exactly its fields, nothing hand-written."""
    flags = {
        action.dest: action
        for action in _submit_parser()._actions
        if action.dest not in {"help", "url", "pipeline_id", "file"}
    }
    assert set(flags) == set(JobOptions.model_fields)
    for name, info in JobOptions.model_fields.items():
        assert option_flag(name) in flags[name].option_strings
        assert info.description and info.description in str(flags[name].help)
        assert flags[name].default is None  # unset flags are not sent: the server's default


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--frame-stride", "0"], "greater than or equal to 1"),
        (["--max-frames", "2.5"], "valid integer"),
        (["--sample-fps", "0"], "greater than 0"),
        (["--sample-fps", "1001"], "less than or equal to 1000"),
        (["--sample-fps", "nan"], "finite number"),
    ],
)
def test_submit_flags_check_the_models_bounds(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["submit", *argv, "clip.mp4"])
    assert exited.value.code == 2
    assert problem in capsys.readouterr().err


def test_submit_sends_only_the_options_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["submit", "--sample-fps", "2", "--no-skip-unchanged", "clip.mp4"]
    )
    assert submit_fields(args) == {"sample_fps": "2.0", "skip_unchanged": "false"}
    assert JobOptions.from_form(submit_fields(args)) == JobOptions(sample_fps=2.0)
    # a combination the model refuses is refused before anything is uploaded
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read")
    url = "http://127.0.0.1:9"  # nothing may be contacted
    assert (
        main(["submit", "--url", url, "--frame-stride", "2", "--sample-fps", "2", str(video)]) == 2
    )
    assert "cannot be combined" in capsys.readouterr().err
