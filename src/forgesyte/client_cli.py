"""The client verbs of `forgesyte`: submit, status, results, timeline, jobs, cancel, delete.

For people at a terminal: human output by default (aligned columns, relative times, colour
only on a terminal), ``--json`` for scripts; progress on stderr, data on stdout.
The server comes from ``--url`` or FORGESYTE_URL, the key from ``--api-key`` or
FORGESYTE_API_KEY (read here, at the command line's edge).

Exit codes: 0 ok; 1 the job failed (or was cancelled), or the server refused the request
(unknown job, conflict, server error); 2 usage or connection error (bad flags, unreadable
file, server unreachable, key refused, request refused as bad).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from forgesyte.jobs.options import InvalidOptions, JobOptions

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "FORGESYTE_URL"
KEY_VARIABLE = "FORGESYTE_API_KEY"
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE = 0, 1, 2
FINISHED = ("completed", "failed", "cancelled")
POLL_INTERVAL_S = 0.5
REQUEST_TIMEOUT_S = 60.0
CONTINUE_WAIT_S = 3.0  # how long an upload waits for "100 Continue" before sending anyway
UPLOAD_CHUNK_BYTES = 256 * 1024
USAGE_STATUSES = (400, 401, 403, 413, 422)  # the request itself is wrong: exit 2


class ClientError(Exception):
    """A request that did not succeed; ``exit_code`` says how the command ends."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Client:
    """A tiny HTTP client of the public API (standard library only)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Send a request; the open response (the caller closes it). Raises ClientError."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(target, data=body, method=method, headers=headers or {})
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            return urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            detail = _detail(exc.read())
            code = EXIT_USAGE if exc.code in USAGE_STATUSES else EXIT_JOB_FAILED
            raise ClientError(f"HTTP {exc.code}: {detail}", code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach {self.url}: {reason}", EXIT_USAGE) from None

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request whose answer is JSON."""
        with self.request(method, path, **kwargs) as response:
            return json.load(response)

    def upload(self, path: str, body: Iterator[bytes], headers: dict[str, str]) -> Any:
        """POST a large body with ``Expect: 100-continue``; the answer's JSON.

        The server refuses a bad key, a body over its limit or a full house before it reads
        a byte of the body, and then closes the connection: sent at once, the body would
        end in a broken pipe that hides the answer. So the body follows only the server's
        "100 Continue" (or, from a server that ignores Expect, after CONTINUE_WAIT_S).
        """
        parts = urllib.parse.urlsplit(self.url)
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(parts.netloc, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.putrequest("POST", parts.path + path)
            for name, value in headers.items():
                connection.putheader(name, value)
            if self.api_key:
                connection.putheader("Authorization", f"Bearer {self.api_key}")
            connection.putheader("Expect", "100-continue")
            connection.endheaders()
            refusal = _early_answer(connection)
            if refusal is None:
                for chunk in body:
                    connection.send(chunk)
                response = connection.getresponse()
                status, answer = response.status, response.read()
            else:
                status, answer = refusal
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot reach {self.url}: {exc}", EXIT_USAGE) from None
        finally:
            connection.close()
        if status >= 400:
            code = EXIT_USAGE if status in USAGE_STATUSES else EXIT_JOB_FAILED
            raise ClientError(f"HTTP {status}: {_detail(answer)}", code)
        return json.loads(answer)


def _early_answer(connection: http.client.HTTPConnection) -> tuple[int, bytes] | None:
    """After an upload's headers: None to send the body, or the server's early answer."""
    sock = connection.sock
    readable, _, _ = select.select([sock], [], [], CONTINUE_WAIT_S)
    if not readable:
        return None  # no word from the server: send the body (RFC 9110, 10.1.1)
    with sock.makefile("rb", buffering=0) as reader:  # unbuffered: reads no more than this
        line = reader.readline(65537)
        version, _, rest = line.decode("latin-1").partition(" ")
        if not version.startswith("HTTP/") or not rest[:3].isdigit():
            raise http.client.BadStatusLine(line.decode("latin-1"))
        fields = http.client.parse_headers(reader)
        if rest[:3] == "100":
            return None
        return int(rest[:3]), reader.read(int(fields.get("Content-Length", "0")))


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:500]
    return detail if isinstance(detail, str) else json.dumps(detail)


# ---- job options as flags -------------------------------------------------------------------


def option_flag(name: str) -> str:
    """The command-line flag of a job option: frame_stride -> --frame-stride."""
    return "--" + name.replace("_", "-")


def _option_parser(name: str) -> Callable[[str], Any]:
    """An argparse type that checks one option's value against JobOptions' type and bounds."""

    def parse(text: str) -> Any:
        try:
            return JobOptions.parse_value(name, text)
        except InvalidOptions as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _option_help(description: str, schema: dict[str, Any]) -> str:
    """An option's help: its description, its bounds and its default, from its schema."""
    bounds = [
        f"{symbol} {schema[key]:g}"
        for key, symbol in (
            ("exclusiveMinimum", ">"),
            ("minimum", ">="),
            ("exclusiveMaximum", "<"),
            ("maximum", "<="),
        )
        if key in schema
    ]
    default = schema.get("default")
    details = [schema["type"] + (f" {', '.join(bounds)}" if bounds else "")]
    details.append("default: unset" if default is None else f"default: {json.dumps(default)}")
    return f"{description} ({'; '.join(details)})"


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per JobOptions field, with its description, type and bounds.

    Unset flags are not sent, so the server applies the model's defaults.
    """
    schemas = JobOptions.form_schema()
    for name, info in JobOptions.model_fields.items():
        help_text = _option_help(info.description or name, schemas[name])
        if info.annotation is bool:
            parser.add_argument(
                option_flag(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                option_flag(name),
                dest=name,
                type=_option_parser(name),
                default=None,
                metavar="N",
                help=help_text,
            )


def submit_fields(args: argparse.Namespace) -> dict[str, str]:
    """The form fields a submit sends: the pipeline and every option the user set."""
    fields = {} if args.pipeline_id is None else {"pipeline_id": args.pipeline_id}
    for name in JobOptions.model_fields:
        value = getattr(args, name)
        if value is not None:
            fields[name] = json.dumps(value)
    return fields


# ---- human output ---------------------------------------------------------------------------


def clock(seconds: float) -> str:
    """A video time as ``MM:SS.d`` (minutes run past 59 for long videos)."""
    tenths = max(0, round(seconds * 10))
    minutes, tenths = divmod(tenths, 600)
    return f"{minutes:02d}:{tenths // 10:02d}.{tenths % 10}"


def relative_time(iso: str, now: datetime | None = None) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 d ago' for an ISO 8601 timestamp."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def format_timeline(timeline: dict[str, Any]) -> list[str]:
    """Human lines: the text segments, then the object tracks."""
    lines = [
        f"{clock(s['start_s'])}\u2013{clock(s['end_s'])}  {s['text']}" for s in timeline["text"]
    ]
    if not lines:
        lines.append("no text")
    lines.append("")
    tracks = timeline["objects"]
    lines += [
        f"{clock(t['start_s'])}\u2013{clock(t['end_s'])}  #{t['track_id']} {t['class_name']}"
        f"  ({t['frames']} frames, best {t['confidence']:.2f})"
        for t in tracks
    ] or ["no objects"]
    return lines


def columns(rows: list[list[str]]) -> list[str]:
    """Rows as lines of left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
}


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _print_status(job: dict[str, Any]) -> None:
    rows = [
        ["job", job["job_id"]],
        ["status", job["status"]],
        ["progress", f"{job['progress']:.0f}%"],
        ["created", relative_time(job["created_at"])],
        ["updated", relative_time(job["updated_at"])],
    ]
    if "pipeline_id" in job:
        rows.insert(1, ["pipeline", job["pipeline_id"]])
    if job.get("error_message"):
        rows.append(["error", job["error_message"]])
    console = _out()
    for line, (name, value) in zip(columns(rows), rows, strict=True):
        style = STATUS_STYLE.get(value, "") if name == "status" else ""
        console.print(line, style=style or None, markup=False)


def _emit(args: argparse.Namespace, data: Any, human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        human()


# ---- the verbs ------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.api_key)


def _multipart_stream(
    path: Path, fields: dict[str, str], on_sent: Callable[[int], None]
) -> tuple[Iterator[bytes], int, str]:
    """A streamed multipart body (the file read in chunks), its length and content type."""
    boundary = uuid.uuid4().hex
    head = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
            for name, value in fields.items()
        )
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name.replace(chr(34), "")}"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
    )
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def chunks() -> Iterator[bytes]:
        yield head
        handle: BinaryIO
        with path.open("rb") as handle:
            while chunk := handle.read(UPLOAD_CHUNK_BYTES):
                yield chunk
                on_sent(len(chunk))
        yield tail

    return chunks(), len(head) + size + len(tail), f"multipart/form-data; boundary={boundary}"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def cmd_submit(args: argparse.Namespace) -> int:
    """Upload a video; print its job id, or with --wait follow it to the end."""
    fields = submit_fields(args)
    try:
        JobOptions.from_form({k: v for k, v in fields.items() if k != "pipeline_id"})
    except InvalidOptions as exc:  # the server would refuse them: say so before uploading
        raise ClientError(str(exc), EXIT_USAGE) from None
    path = Path(args.file)
    if not path.is_file():
        raise ClientError(f"{args.file}: no such file", EXIT_USAGE)
    client = _client(args)
    err = _err()
    with _progress(err) as bar:
        task = bar.add_task("upload", total=path.stat().st_size, detail="")
        body, length, content_type = _multipart_stream(
            path, fields, lambda sent: bar.advance(task, sent)
        )
        created = client.upload(
            "/v1/video/submit",
            body,
            headers={"Content-Type": content_type, "Content-Length": str(length)},
        )
    job_id = created["job_id"]
    if not args.wait:
        print(json.dumps(created) if args.json else job_id)
        return EXIT_OK
    err.print(f"job {job_id} submitted", markup=False)
    job = _wait(client, job_id, err)
    return _summarise(client, job, args, time.monotonic() - args.started)


def _wait(client: Client, job_id: str, err: Console) -> dict[str, Any]:
    with _progress(err) as bar:
        task = bar.add_task("analyse", total=100.0, detail="pending")
        while True:
            job: dict[str, Any] = client.json("GET", f"/v1/video/status/{job_id}")
            bar.update(task, completed=job["progress"], detail=f"{job['status']}")
            if job["status"] in FINISHED:
                return job
            time.sleep(POLL_INTERVAL_S)


def _summarise(
    client: Client, job: dict[str, Any], args: argparse.Namespace, elapsed_s: float
) -> int:
    """The end of `submit --wait`: one short human summary (or the status with --json)."""
    job_id = job["job_id"]
    if job["status"] != "completed":
        if args.json:
            print(json.dumps(job, indent=2))
        else:
            reason = f": {job['error_message']}" if job.get("error_message") else ""
            _out().print(f"job {job_id} {job['status']}{reason}", style="red", markup=False)
        return EXIT_JOB_FAILED
    if args.json:
        print(json.dumps(job, indent=2))
        return EXIT_OK
    results = client.json("GET", f"/v1/video/results/{job_id}", params={"limit": 1})
    try:
        timeline = client.json("GET", f"/v1/video/timeline/{job_id}")
        found = (
            f"{len(timeline['text'])} text segment(s), {len(timeline['objects'])} object track(s)"
        )
    except ClientError:
        found = "no timeline"
    _out().print(
        f"job {job_id} completed in {elapsed_s:.1f} s: {results['frames_analysed']} frame(s) "
        f"analysed with {results['pipeline_id']}, {found}",
        style="green",
        markup=False,
    )
    print(f"next: forgesyte timeline {job_id}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """A job's status; exit 1 when it failed or was cancelled."""
    job = _client(args).json("GET", f"/v1/video/status/{args.job_id}")
    _emit(args, job, lambda: _print_status(job))
    return EXIT_OK if job["status"] not in ("failed", "cancelled") else EXIT_JOB_FAILED


def cmd_results(args: argparse.Namespace) -> int:
    """A completed job's results, streamed to stdout as JSON or JSON Lines."""
    params = {"format": args.format, "offset": args.offset or None, "limit": args.limit}
    with _client(args).request("GET", f"/v1/video/results/{args.job_id}", params=params) as answer:
        while chunk := answer.read(64 * 1024):
            sys.stdout.buffer.write(chunk)
    if args.format == "json":
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return EXIT_OK


def cmd_timeline(args: argparse.Namespace) -> int:
    """A job's text segments, then its object tracks (or the WebVTT file)."""
    client = _client(args)
    if args.format == "vtt":
        path = f"/v1/video/timeline/{args.job_id}"
        with client.request("GET", path, params={"format": "vtt"}) as answer:
            sys.stdout.write(answer.read().decode("utf-8"))
        return EXIT_OK
    timeline = client.json("GET", f"/v1/video/timeline/{args.job_id}")
    _emit(args, timeline, lambda: print("\n".join(format_timeline(timeline))))
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    """The jobs, newest first, one line each."""
    params = {
        "status": args.status,
        "pipeline_id": args.pipeline_id,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    page = _client(args).json("GET", "/v1/video/jobs", params=params)

    def human() -> None:
        jobs = page["jobs"]
        if not jobs:
            print("no jobs")
            return
        rows = [["JOB", "STATUS", "PROGRESS", "PIPELINE", "CREATED"]] + [
            [
                job["job_id"],
                job["status"],
                f"{job['progress']:.0f}%",
                job.get("pipeline_id", ""),
                relative_time(job["created_at"]),
            ]
            for job in jobs
        ]
        console = _out()
        for index, line in enumerate(columns(rows)):
            style = "bold" if index == 0 else STATUS_STYLE.get(rows[index][1])
            console.print(line, style=style, markup=False)
        if page.get("next_cursor"):
            _err().print(f"more: --cursor {page['next_cursor']}", markup=False)

    _emit(args, page, human)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a pending or running job."""
    job = _client(args).json("POST", f"/v1/video/cancel/{args.job_id}")
    _emit(args, job, lambda: print(f"job {job['job_id']} {job['status']}"))
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a finished job: its row, video and results."""
    with _client(args).request("DELETE", f"/v1/video/jobs/{args.job_id}"):
        pass
    _emit(
        args, {"job_id": args.job_id, "deleted": True}, lambda: print(f"job {args.job_id} deleted")
    )
    return EXIT_OK


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        args.started = time.monotonic()
        try:
            return handler(args)
        except ClientError as exc:
            print(f"forgesyte: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("forgesyte: interrupted (the job goes on on the server)", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None

    run.__doc__ = handler.__doc__
    return run


def add_client_commands(commands: Any) -> None:
    """Add the client verbs to the `forgesyte` command's subparsers."""
    verbs: list[tuple[str, Callable[[argparse.Namespace], int], str]] = [
        ("submit", cmd_submit, "submit a video (--wait: follow it with a progress bar)"),
        ("status", cmd_status, "show a job's status"),
        ("results", cmd_results, "print a completed job's results (JSON or JSON Lines)"),
        ("timeline", cmd_timeline, "show a job's text segments and object tracks"),
        ("jobs", cmd_jobs, "list the jobs, newest first"),
        ("cancel", cmd_cancel, "cancel a pending or running job"),
        ("delete", cmd_delete, "delete a finished job and its files"),
    ]
    for name, handler, helptext in verbs:
        client = commands.add_parser(name, help=helptext, description=helptext)
        client.add_argument(
            "--url",
            default=os.environ.get(URL_VARIABLE) or DEFAULT_URL,
            help=f"the server (default: ${URL_VARIABLE} or {DEFAULT_URL})",
        )
        client.add_argument(
            "--api-key",
            default=os.environ.get(KEY_VARIABLE) or None,
            help=f"the server's API key (default: ${KEY_VARIABLE})",
        )
        client.add_argument("--json", action="store_true", help="print JSON for scripts")
        if name == "submit":
            client.add_argument("file", help="the video (MP4)")
            client.add_argument(
                "--pipeline-id", default=None, help="the pipeline to run (server default: ocr_only)"
            )
            add_option_flags(client)
            client.add_argument(
                "--wait", action="store_true", help="follow the job to its end with a progress bar"
            )
        elif name == "jobs":
            client.add_argument("--status", choices=["pending", "running", *FINISHED])
            client.add_argument("--pipeline-id", default=None)
            client.add_argument("--limit", type=int, default=None, help="1-200 (default 50)")
            client.add_argument("--cursor", default=None, help="the next page's cursor")
        else:
            client.add_argument("job_id")
        if name == "results":
            client.add_argument("--format", choices=["json", "jsonl"], default="json")
            client.add_argument("--offset", type=int, default=0)
            client.add_argument("--limit", type=int, default=None)
        if name == "timeline":
            client.add_argument("--format", choices=["text", "vtt"], default="text")
        client.set_defaults(handler=_run(handler))
