"""JSON log lines, the job id on job lines, and a log file several processes share."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from forgesyte.cli import main
from forgesyte.logs import (
    AccessLogFields,
    JsonFormatter,
    SharedRotatingFileHandler,
    configure_logging,
)
from tests.support.server import FORGESYTE

JOB_ID = uuid.UUID("8c9b7598-c23f-4d30-af09-dc788ea9a1d3")


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("forgesyte.test")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None, extra=extra)


def test_a_line_is_one_json_object_with_the_contract_keys() -> None:
    line = JsonFormatter().format(
        _record("job %s: claimed by %s", JOB_ID, "w-1", job_id=JOB_ID, worker="w-1")
    )
    entry = json.loads(line)
    assert entry["event"] == f"job {JOB_ID}: claimed by w-1"
    assert entry["level"] == "INFO" and entry["logger"] == "forgesyte.test"
    assert entry["job_id"] == str(JOB_ID)
    assert entry["worker"] == "w-1"  # other extra fields come along
    assert entry["ts"].endswith("Z") and entry["ts"][10] == "T"
    assert isinstance(entry["pid"], int)


def test_a_job_line_without_extra_still_carries_its_job_id() -> None:
    entry = json.loads(JsonFormatter().format(_record("job %s: completed", JOB_ID)))
    assert entry["job_id"] == str(JOB_ID)
    plain = json.loads(JsonFormatter().format(_record("storage sweep: removed %s", "x")))
    assert "job_id" not in plain


def test_a_traceback_stays_inside_the_one_line() -> None:
    logger = logging.getLogger("forgesyte.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_access_lines_name_the_job_of_their_path() -> None:
    fields = AccessLogFields()
    status = _record(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/v1/video/status/{JOB_ID}", "1.1", 200
    )
    assert fields.filter(status)
    entry = json.loads(JsonFormatter().format(status))
    assert entry["job_id"] == str(JOB_ID)
    assert (entry["method"], entry["path"], entry["status_code"]) == (
        "GET",
        f"/v1/video/status/{JOB_ID}",
        200,
    )
    health = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/healthz", "1.1", 200)
    fields.filter(health)
    assert "job_id" not in json.loads(JsonFormatter().format(health))


def test_configure_writes_stderr_and_the_file_and_tames_rapidocr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "forgesyte.log"
    configure_logging(logging.INFO, log_file)
    configure_logging(logging.INFO, log_file)  # again: replaces, does not duplicate
    ocr = logging.getLogger("RapidOCR")
    ocr.setLevel(logging.INFO)  # what RapidOCR does when imported
    ocr.propagate = False
    logging.getLogger("forgesyte.test").info("job %s: accepted", JOB_ID, extra={"job_id": JOB_ID})
    ocr.info("model loaded")  # below warning: dropped
    ocr.warning("low confidence")

    in_file = [json.loads(line) for line in log_file.read_text().splitlines()]
    on_stderr = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert in_file == on_stderr
    assert [(e["logger"], e["event"]) for e in in_file] == [
        ("forgesyte.test", f"job {JOB_ID}: accepted"),
        ("RapidOCR", "low confidence"),
    ]
    assert in_file[0]["job_id"] == str(JOB_ID)


WRITER = """
import logging, sys
from pathlib import Path
from forgesyte.cli import main
from forgesyte.logs import JsonFormatter, SharedRotatingFileHandler
handler = SharedRotatingFileHandler(Path(sys.argv[1]), int(sys.argv[2]), 100)
handler.setFormatter(JsonFormatter())
log = logging.getLogger("writer")
log.addHandler(handler)
log.setLevel(logging.INFO)
for index in range(int(sys.argv[3])):
    log.info("line %d", index, extra={"writer": sys.argv[4], "index": index})
"""


def test_processes_sharing_a_rotating_file_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "forgesyte.log"
    lines_each, max_bytes = 1500, 16 * 1024
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(max_bytes), str(lines_each), name]
        )
        for name in ("a", "b", "c")
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0

    files = [path, *sorted(tmp_path.glob("forgesyte.log.*[0-9]"))]
    assert len(files) > 10  # it did rotate, many times
    seen: list[tuple[str, int]] = []
    for file in files:
        assert file.stat().st_size <= max_bytes + 512  # one line over at most
        seen += [(e["writer"], e["index"]) for e in map(json.loads, file.read_text().splitlines())]
    assert sorted(seen) == sorted((name, i) for name in "abc" for i in range(lines_each))


def test_a_file_renamed_away_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "forgesyte.log"
    handler = SharedRotatingFileHandler(path, 1024 * 1024, 2)
    handler.setFormatter(JsonFormatter())
    try:
        handler.handle(_record("before"))
        path.rename(tmp_path / "moved.log")  # what logrotate's default (create) does
        handler.handle(_record("after"))
    finally:
        handler.close()
    assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["after"]
    moved = (tmp_path / "moved.log").read_text().splitlines()
    assert [json.loads(x)["event"] for x in moved] == ["before"]


def test_the_log_file_is_in_the_data_dir_unless_set_elsewhere_or_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `forgesyte db ...` in this process: each logging set-up is undone after the test
    monkeypatch.setenv("FORGESYTE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FORGESYTE_DATABASE_URL", raising=False)
    monkeypatch.delenv("FORGESYTE_LOG_FILE", raising=False)
    default = tmp_path / "data" / "forgesyte.log"
    assert main(["db", "upgrade"]) == 0
    written = [json.loads(line) for line in default.read_text().splitlines()]
    assert any(e["logger"].startswith("alembic") for e in written)  # the upgrade's lines
    assert [json.loads(line) for line in capsys.readouterr().err.splitlines()] == written

    elsewhere = tmp_path / "logs" / "ops.log"
    monkeypatch.setenv("FORGESYTE_LOG_FILE", str(elsewhere))
    assert main(["db", "current"]) == 0
    assert elsewhere.is_file()

    default.unlink()
    monkeypatch.setenv("FORGESYTE_LOG_FILE", "")
    assert main(["db", "current"]) == 0
    assert not default.exists()


def test_a_log_file_that_cannot_be_written_stops_the_start_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(  # the real command: the start stops before anything is served
        [FORGESYTE, "serve"],
        env={
            **os.environ,
            "FORGESYTE_DATA_DIR": str(tmp_path / "data"),
            "FORGESYTE_LOG_FILE": str(tmp_path),  # a folder
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"forgesyte: cannot write the log file {tmp_path}")
    assert len(done.stderr.strip().splitlines()) == 1
