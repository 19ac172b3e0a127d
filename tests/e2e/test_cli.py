"""The `forgesyte` command: migrations on demand, the worker process, the client commands."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from forgesyte.cli import build_parser, main
from forgesyte.client import option_fields
from forgesyte.client_commands import option_flag, submit_options
from forgesyte.jobs.options import JobOptions
from tests.support.server import FORGESYTE, ServerProcess, WorkerProcess, wait_for_end
from tests.support.videos import write_counter_video
from tests.video.shot_videos import CUTS


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FORGESYTE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FORGESYTE_DATABASE_URL", raising=False)
    return tmp_path


def test_db_upgrade_downgrade_current(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == "schema revision: none (empty)"
    assert main(["db", "upgrade"]) == 0
    assert "0005_keys" in capsys.readouterr().out
    assert (data_dir / "forgesyte.duckdb").is_file()
    assert main(["db", "downgrade", "base"]) == 0
    assert capsys.readouterr().out.strip() == "schema revision: none (empty)"
    assert main(["db", "upgrade", "head"]) == 0
    assert "0005_keys" in capsys.readouterr().out


def test_negative_worker_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "-1"]) == 2
    assert "--workers must be >= 0" in capsys.readouterr().err


def test_worker_process_starts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path / "worker.log", env={"FORGESYTE_DATA_DIR": str(tmp_path)})
    try:
        worker.start()
        worker.wait_idle()  # its analysis child is up and waits for a job
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
    assert wait_for_end(url, job_id, 60)[0].status == "completed"
    assert main(["status", "--json", "--url", url, job_id]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert main(["results", "--url", url, job_id]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results["results"]) == 20
    assert results["options"] == JobOptions().to_json()
    assert wait_for_end(url, sampled_job_id, 60)[0].status == "completed"
    assert main(["results", "--url", url, sampled_job_id]) == 0
    sampled = json.loads(capsys.readouterr().out)
    assert sampled["options"] == {
        "frame_stride": 1,
        "max_frames": 3,
        "sample_fps": 2.5,
        "skip_unchanged": True,
        "detect_shots": False,
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
        if action.dest not in {"help", "url", "api_key", "json", "wait", "pipeline_id", "file"}
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
    assert submit_options(args) == {"sample_fps": 2.0, "skip_unchanged": False}
    # what the client sends for them, read back as the server reads it
    sent = option_fields(submit_options(args))
    assert sent == {"sample_fps": "2.0", "skip_unchanged": "false"}
    assert JobOptions.from_form(sent) == JobOptions(sample_fps=2.0)
    # a combination the model refuses is refused before anything is uploaded
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read")
    url = "http://127.0.0.1:9"  # nothing may be contacted
    with pytest.raises(SystemExit) as exited:
        main(["submit", "--url", url, "--frame-stride", "2", "--sample-fps", "2", str(video)])
    assert exited.value.code == 2
    assert "cannot be combined" in capsys.readouterr().err


@dataclass(frozen=True)
class CommandRun:
    """What one `forgesyte` command printed, and its exit code."""

    returncode: int
    stdout: str
    stderr: str


def _client_env(url: str | None, api_key: str | None) -> dict[str, str]:
    """The environment without FORGESYTE_* variables, then the server and key if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGESYTE_")}
    if url is not None:
        env["FORGESYTE_URL"] = url
    if api_key is not None:
        env["FORGESYTE_API_KEY"] = api_key
    return env


def _forgesyte_process(
    *argv: str, url: str | None = None, api_key: str | None = None
) -> CommandRun:
    """Run the installed `forgesyte` console script in its own process."""
    done = subprocess.run(
        [FORGESYTE, *argv],
        env=_client_env(url, api_key),
        capture_output=True,
        text=True,
        timeout=180,
    )
    return CommandRun(done.returncode, done.stdout, done.stderr)


def _forgesyte(*argv: str, url: str | None = None, api_key: str | None = None) -> CommandRun:
    """Run `forgesyte` in this process (its `main`), as the console script would.

    The environment, standard output (with its byte buffer) and standard error are the
    command's own for the call, and the exit code is what the script would exit with.
    A process costs a second of CPU with coverage; `_forgesyte_process` keeps one real run
    of the script in each test that checks what a user sees.
    """
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    stderr = io.StringIO()
    with (
        mock.patch.dict(os.environ, _client_env(url, api_key), clear=True),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            returncode = main(list(argv))
        except SystemExit as exited:
            code = exited.code
            returncode = code if isinstance(code, int) else (0 if code is None else 1)
    stdout.flush()
    written = stdout.buffer
    assert isinstance(written, io.BytesIO)
    return CommandRun(returncode, written.getvalue().decode("utf-8"), stderr.getvalue())


def test_submit_wait_shows_progress_on_stderr_and_a_summary_then_the_timeline(
    live_server: ServerProcess, score_video: Path
) -> None:
    done = _forgesyte_process(
        "submit", str(score_video), "--wait", "--frame-stride", "5", url=live_server.url
    )
    assert done.returncode == 0, done.stderr
    summary, hint = done.stdout.strip().splitlines()
    job_id = summary.split()[1]
    assert re.fullmatch(
        rf"job {job_id} completed in \d+\.\d s: 4 frame\(s\) analysed with ocr_only, "
        r"2 text segment\(s\), 0 object track\(s\)",
        summary,
    ), summary
    assert hint == f"next: forgesyte timeline {job_id}"
    assert f"job {job_id} submitted" in done.stderr
    assert "\x1b[" not in done.stdout  # no colour when stdout is not a terminal

    timeline = _forgesyte("timeline", job_id, url=live_server.url)
    assert timeline.returncode == 0, timeline.stderr
    assert timeline.stdout.splitlines()[:2] == [
        "00:00.0\u201300:00.5  SCORE 2-1",
        "00:01.0\u201300:01.5  HALF TIME",
    ]
    vtt = _forgesyte("timeline", job_id, "--format", "vtt", url=live_server.url)
    assert vtt.stdout.startswith("WEBVTT") and "HALF TIME" in vtt.stdout

    status = _forgesyte("status", job_id, url=live_server.url)
    assert status.returncode == 0
    lines = dict(line.split(None, 1) for line in status.stdout.splitlines())
    assert lines["job"] == job_id and lines["status"] == "completed"
    assert lines["progress"] == "100%" and lines["created"].endswith(" ago")

    results = _forgesyte("results", job_id, "--format", "jsonl", url=live_server.url)
    entries = [json.loads(line) for line in results.stdout.splitlines()]
    assert [e["frame_index"] for e in entries] == [0, 5, 10, 15]
    page = _forgesyte("results", job_id, "--offset", "1", "--limit", "2", url=live_server.url)
    document = json.loads(page.stdout)
    assert [e["frame_index"] for e in document["results"]] == [5, 10]
    assert document["next_offset"] == 3 and document["frames_analysed"] == 4


def test_submit_detect_shots_and_the_timeline_prints_the_shots(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    video = CUTS.write(tmp_path / "cuts.mp4")  # five takes of 1-1.5 s joined by cuts
    done = _forgesyte(
        "submit", str(video), "--wait", "--detect-shots", "--sample-fps", "1",
        "--pipeline-id", "testkit_noop", url=live_server.url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()[0]
    found = "0 text segment(s), 0 object track(s), 5 shot(s)"
    assert summary.endswith(f": 7 frame(s) analysed with testkit_noop, {found}"), summary
    job_id = summary.split()[1]
    timeline = _forgesyte("timeline", job_id, url=live_server.url)
    assert timeline.returncode == 0, timeline.stderr
    assert timeline.stdout.splitlines() == [
        "no text",
        "",
        "no objects",
        "",
        "00:00.0\u201300:01.5  shot 1  (frames 0-44)",
        "00:01.5\u201300:03.0  shot 2  (frames 45-89)",
        "00:03.0\u201300:04.5  shot 3  (frames 90-134)",
        "00:04.5\u201300:06.0  shot 4  (frames 135-179)",
        "00:06.0\u201300:07.0  shot 5  (frames 180-209)",
    ]
    as_json = json.loads(_forgesyte("timeline", job_id, "--json", url=live_server.url).stdout)
    assert [shot["first_frame"] for shot in as_json["shots"]] == [0, 45, 90, 135, 180]


def test_exit_codes_failed_job_unknown_job_and_no_server(
    live_server: ServerProcess, score_video: Path
) -> None:
    failed = _forgesyte(
        "submit",
        str(score_video),
        "--pipeline-id",
        "testkit_missing_key",
        "--wait",
        "--json",
        url=live_server.url,
    )
    assert failed.returncode == 1, failed.stderr
    status = json.loads(failed.stdout)
    assert status["status"] == "failed" and status["error_message"]
    again = _forgesyte("status", status["job_id"], "--json", url=live_server.url)
    assert again.returncode == 1 and json.loads(again.stdout)["status"] == "failed"

    unknown = _forgesyte("status", "00000000-0000-0000-0000-000000000000", url=live_server.url)
    assert unknown.returncode == 1
    assert "HTTP 404" in unknown.stderr and unknown.stdout == ""

    nobody = _forgesyte("status", "00000000-0000-0000-0000-000000000000", url="http://127.0.0.1:9")
    assert nobody.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in nobody.stderr
    not_http = _forgesyte("status", "00000000-0000-0000-0000-000000000000", url="ftp://host")
    assert not_http.returncode == 2 and "not an http(s) URL" in not_http.stderr

    missing = _forgesyte("submit", "/nonexistent/clip.mp4", url=live_server.url)
    assert missing.returncode == 2 and "no such file" in missing.stderr

    bad_flag = _forgesyte("jobs", "--status", "sleeping", url=live_server.url)
    assert bad_flag.returncode == 2


def test_the_api_key_comes_from_the_flag_or_the_environment(
    tmp_path: Path, score_video: Path
) -> None:
    server = ServerProcess(
        tmp_path / "keyed",
        workers=1,
        env={"FORGESYTE_API_KEY": "cli-key", "FORGESYTE_MAX_UPLOAD_MB": "8"},
    ).start()
    # 16 MB: the server answers before reading it, so sent at once it met a broken pipe
    large = tmp_path / "large.mp4"
    large.write_bytes(score_video.read_bytes() + bytes(16 * 1024 * 1024))
    try:
        refused = _forgesyte("submit", str(score_video), url=server.url)
        assert refused.returncode == 2 and "HTTP 401" in refused.stderr
        wrong = _forgesyte_process("submit", str(large), "--api-key", "nope", url=server.url)
        assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr, wrong.stderr
        too_large = _forgesyte("submit", str(large), url=server.url, api_key="cli-key")
        assert too_large.returncode == 2 and "HTTP 413" in too_large.stderr, too_large.stderr
        by_env = _forgesyte(
            "submit",
            str(score_video),
            "--pipeline-id",
            "testkit_noop",
            "--max-frames",
            "2",
            "--wait",
            url=server.url,
            api_key="cli-key",
        )
        assert by_env.returncode == 0, by_env.stderr
        job_id = by_env.stdout.split()[1]
        by_flag = _forgesyte(
            "status", job_id, "--json", "--api-key", "cli-key", "--url", server.url
        )
        assert by_flag.returncode == 0 and json.loads(by_flag.stdout)["status"] == "completed"
    finally:
        server.terminate()


def test_jobs_cancel_and_delete(live_server: ServerProcess, tmp_path: Path) -> None:
    url = live_server.url
    long_video = write_counter_video(tmp_path / "long.mp4", 300)  # a minute of testkit_sleep
    submitted = _forgesyte(
        "submit", str(long_video), "--pipeline-id", "testkit_sleep", "--json", url=url
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]

    listed = _forgesyte("jobs", "--json", "--pipeline-id", "testkit_sleep", url=url)
    jobs = json.loads(listed.stdout)["jobs"]
    assert job_id in [job["job_id"] for job in jobs]
    assert all(job["pipeline_id"] == "testkit_sleep" for job in jobs)
    table = _forgesyte("jobs", "--limit", "200", url=url).stdout.splitlines()
    assert table[0].split() == ["JOB", "STATUS", "PROGRESS", "PIPELINE", "FILE", "CREATED"]
    (row,) = [line for line in table if line.startswith(job_id)]
    assert row.split()[3] == "testkit_sleep" and row.endswith(" ago")

    cancelled = _forgesyte("cancel", job_id, url=url)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"job {job_id} ")
    # wait with the library (a `forgesyte status` process per poll costs a second of CPU)
    assert wait_for_end(url, job_id, 30)[0].status == "cancelled"
    assert _forgesyte("status", job_id, url=url).returncode == 1  # cancelled: not ok
    again = _forgesyte("cancel", job_id, url=url)
    assert again.returncode == 1 and "HTTP 409" in again.stderr

    deleted = _forgesyte("delete", job_id, url=url)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"job {job_id} deleted"
    gone = _forgesyte("status", job_id, url=url)
    assert gone.returncode == 1 and "HTTP 404" in gone.stderr
    bad_page = _forgesyte("jobs", "--cursor", "not-a-cursor", url=url)
    assert bad_page.returncode == 2 and "HTTP 400" in bad_page.stderr
