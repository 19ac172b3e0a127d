"""Logging: one JSON object per line, to stderr and to the log file.

Each line holds `ts` (UTC, ISO 8601), `level`, `logger`, `event` (the message), `pid`,
`job_id` when the line is about a job, any other `extra=` fields of the call, and
`exception` with the traceback when there is one. A call site names its job with
``log.info("job %s: completed", job_id, extra={"job_id": job_id})``; a line whose format
starts with "job %s" gets its first argument as job id even without `extra` (a safety net
for new call sites); uvicorn's access lines get the job id of a `/v1/video/...` path.

The log file rotates by size (LOG_FILE_MAX_BYTES, LOG_FILE_BACKUPS kept as `.1` ... `.5`).
Several processes may share one file (`serve` and `worker` processes on one host):
rotation is serialised by a lock file beside it, and a process whose file was renamed (by
another process's rotation, or by logrotate) reopens the path before writing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

LOG_FILE_MAX_BYTES = 10 * 1024 * 1024  # one file's size before it rotates
LOG_FILE_BACKUPS = 5  # rotated files kept: forgesyte.log.1 (newest) ... forgesyte.log.5

# attributes every LogRecord has; anything else on a record came from `extra=`
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}
_OWN_KEYS = ("ts", "level", "logger", "event", "pid", "job_id", "exception", "stack")
_DROPPED_KEYS = frozenset({"color_message"})  # uvicorn's ANSI-coloured copy of the message
_UUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_VIDEO_PATH_JOB_ID = re.compile(rf"^/v1/video/[a-z_]+/({_UUID})(?:[/?]|$)")


def _names_a_job(record: logging.LogRecord) -> bool:
    """A `log.x("job %s: ...", job_id, ...)` line that did not pass extra={"job_id": ...}."""
    return (
        isinstance(record.msg, str)
        and record.msg.startswith("job %s")
        and isinstance(record.args, tuple)
        and len(record.args) > 0
    )


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring for the keys)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "pid": record.process,
        }
        job_id = getattr(record, "job_id", None)
        if job_id is None and _names_a_job(record):
            job_id = record.args[0]  # type: ignore[index]
        if job_id is not None:
            payload["job_id"] = str(job_id)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in _OWN_KEYS and key not in _DROPPED_KEYS:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str)


# a query parameter that may carry a credential: the source route's signed token, or a key
# a client put in a URL by mistake (the API reads keys from headers only)
_CREDENTIAL_QUERY = re.compile(r"([?&](?:token|key|api_key|apikey)=)[^&#]*", re.IGNORECASE)


class AccessLogFields(logging.Filter):
    """Gives uvicorn's access lines `method`, `path`, `status_code`, and the job id of the path;
    the value of a query parameter that may carry a credential is written `[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields (uvicorn's args: client, method, path, HTTP version, status)."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status_code = args
            path = _CREDENTIAL_QUERY.sub(r"\1[redacted]", str(path))
            record.args = (client, method, path, version, status_code)
            record.method = method
            record.path = path
            record.status_code = status_code
            match = _VIDEO_PATH_JOB_ID.match(str(path))
            if match:
                record.job_id = match.group(1).lower()
        return True


class SharedRotatingFileHandler(RotatingFileHandler):
    """A size-rotating log file that several processes can append to and rotate safely."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.lock_path = f"{self.baseFilename}.lock"

    def _follow_renames(self) -> TextIO:
        """The open file, reopened first if it is no longer the one the path names."""
        try:
            named = os.stat(self.baseFilename)
        except FileNotFoundError:
            named = None
        if self.stream is not None:
            held = os.fstat(self.stream.fileno())
            if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                return self.stream
            self.stream.close()
        self.stream = self._open()
        return self.stream

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to the file the path names now, rotating it when full."""
        try:
            self._follow_renames()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def doRollover(self) -> None:  # noqa: N802 (the standard library's name)
        """Rotate, unless another process did while this one waited for the lock."""
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stream = self._follow_renames()
            stream.seek(0, os.SEEK_END)
            if stream.tell() < self.maxBytes:
                return  # someone else rotated: the file is fresh
            super().doRollover()


class _ToRoot(logging.Handler):
    """Hands a library's records to the root handlers (RapidOCR's logger does not propagate)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


_installed: list[logging.Handler] = []  # the root handlers configure_logging added last


def configure_logging(level: int | str, log_file: Path | None) -> None:
    """Send every log line as JSON to stderr and, when given, to log_file (rotated by size).

    Replaces handlers an earlier call installed, so calling it again reconfigures.
    Raises OSError when the log file cannot be opened.
    """
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(SharedRotatingFileHandler(log_file, LOG_FILE_MAX_BYTES, LOG_FILE_BACKUPS))
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed[:] = handlers
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)

    # RapidOCR installs its own coloured stderr handler unless its logger has one already
    ocr = logging.getLogger("RapidOCR")
    for handler in list(ocr.handlers):
        ocr.removeHandler(handler)
    forward = _ToRoot(logging.WARNING)
    ocr.addHandler(forward)

    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFields) for f in access.filters):
        access.addFilter(AccessLogFields())


def configure_child_logging() -> None:
    """Logging of an analysis child: warnings and above, as JSON, to stderr (its parent's)."""
    configure_logging(logging.WARNING, None)
