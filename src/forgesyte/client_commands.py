"""The client verbs of `forgesyte`: submit, status, results, timeline, jobs, search, cancel,
delete, and `keys create | list | revoke` (with an admin key).

A thin layer over forgesyte.client: argument parsing, printing and exit codes; every
request goes through the library. For people at a terminal: human output by default
(aligned columns, relative times, colour only on a terminal), ``--json`` for scripts;
progress on stderr, data on stdout. The server comes from ``--url`` or FORGESYTE_URL, the
key from ``--api-key`` or FORGESYTE_API_KEY (the library reads the variables).

Exit codes: 0 ok; 1 the job failed (or was cancelled), or the server refused the request
(unknown job, conflict, server error); 2 usage or connection error (bad flags, unreadable
file, server unreachable, key refused, request refused as bad).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from forgesyte.client import (
    ApiError,
    Client,
    InvalidOptions,
    Job,
    JobStatus,
    SearchMatch,
    ServerUnreachable,
    Timeline,
)
from forgesyte.client.client import DEFAULT_URL, KEY_VARIABLE, URL_VARIABLE
from forgesyte.jobs.keys import Role
from forgesyte.jobs.models import JobStatus as JobState
from forgesyte.jobs.options import JobOptions

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE = 0, 1, 2
STATUSES = tuple(state.value for state in JobState)
USAGE_STATUSES = (400, 401, 403, 413, 422)  # the request itself is wrong: exit 2
SEARCH_PAGE_MAX = 100  # matches the server answers per page at most


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


def submit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job options the user set with flags (the others are not sent)."""
    values = {name: getattr(args, name) for name in JobOptions.model_fields}
    return {name: value for name, value in values.items() if value is not None}


# ---- human output ---------------------------------------------------------------------------


def clock(seconds: float) -> str:
    """A video time as ``MM:SS.d`` (minutes run past 59 for long videos)."""
    tenths = max(0, round(seconds * 10))
    minutes, tenths = divmod(tenths, 600)
    return f"{minutes:02d}:{tenths // 10:02d}.{tenths % 10}"


def relative_time(moment: datetime, now: datetime | None = None) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 d ago' for a moment in the past."""
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def format_timeline(timeline: Timeline) -> list[str]:
    """Human lines: the text segments, then the object tracks, then the shots (when the
    job looked for them)."""
    lines = [f"{clock(s.start_s)}\u2013{clock(s.end_s)}  {s.text}" for s in timeline.text]
    if not lines:
        lines.append("no text")
    lines.append("")
    lines += [
        f"{clock(t.start_s)}\u2013{clock(t.end_s)}  #{t.track_id} {t.class_name}"
        f"  ({t.frames} frames, best {t.confidence:.2f})"
        for t in timeline.objects
    ] or ["no objects"]
    if timeline.shots:
        lines.append("")
        lines += [
            f"{clock(shot.start_s)}\u2013{clock(shot.end_s)}  shot {shot.index + 1}"
            f"  (frames {shot.first_frame}-{shot.last_frame})"
            for shot in timeline.shots
        ]
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


def _print_status(job: JobStatus) -> None:
    rows = [
        ["job", job.job_id],
        ["status", job.status],
        ["progress", f"{job.progress:.0f}%"],
        ["created", relative_time(job.created_at)],
        ["updated", relative_time(job.updated_at)],
    ]
    if job.pipeline_id is not None:
        rows.insert(1, ["pipeline", job.pipeline_id])
    if job.filename is not None:
        rows.insert(1, ["file", job.filename])
    if job.error_message:
        rows.append(["error", job.error_message])
    console = _out()
    for line, (name, value) in zip(columns(rows), rows, strict=True):
        style = STATUS_STYLE.get(value, "") if name == "status" else ""
        console.print(line, style=style or None, markup=False)


def _emit(args: argparse.Namespace, data: Mapping[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(dict(data), indent=2))
    else:
        human()


# ---- the verbs ------------------------------------------------------------------------------


class UsageError(Exception):
    """A command the user got wrong (exit 2), found before anything is sent."""


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def cmd_submit(args: argparse.Namespace, client: Client) -> int:
    """Upload a video; print its job id, or with --wait follow it to the end."""
    err = _err()
    with _progress(err) as bar:
        task = bar.add_task("upload", total=None, detail="")
        try:
            job = client.submit(
                args.file,
                pipeline_id=args.pipeline_id,
                on_upload=lambda sent, size: bar.update(task, completed=sent, total=size),
                **submit_options(args),
            )
        except (InvalidOptions, FileNotFoundError) as exc:  # found before anything is sent
            raise UsageError(str(exc)) from None
    if not args.wait:
        print(json.dumps({"job_id": job.id}) if args.json else job.id)
        return EXIT_OK
    err.print(f"job {job.id} submitted", markup=False)
    with _progress(err) as bar:
        task = bar.add_task("analyse", total=100.0, detail="pending")
        final = job.wait(
            on_progress=lambda seen: bar.update(task, completed=seen.progress, detail=seen.status)
        )
    return _summarise(job, final, args, time.monotonic() - args.started)


def _summarise(job: Job, final: JobStatus, args: argparse.Namespace, elapsed_s: float) -> int:
    """The end of `submit --wait`: one short human summary (or the status with --json)."""
    if final.status != "completed":
        if args.json:
            print(json.dumps(dict(final.raw), indent=2))
        else:
            reason = f": {final.error_message}" if final.error_message else ""
            _out().print(f"job {job.id} {final.status}{reason}", style="red", markup=False)
        return EXIT_JOB_FAILED
    if args.json:
        print(json.dumps(dict(final.raw), indent=2))
        return EXIT_OK
    first = job.results_page(limit=1)
    try:
        timeline = job.timeline()
        found = f"{len(timeline.text)} text segment(s), {len(timeline.objects)} object track(s)"
        if timeline.shots:
            found += f", {len(timeline.shots)} shot(s)"
    except ApiError:
        found = "no timeline"
    _out().print(
        f"job {job.id} completed in {elapsed_s:.1f} s: {first.frames_analysed} frame(s) "
        f"analysed with {first.pipeline_id}, {found}",
        style="green",
        markup=False,
    )
    print(f"next: forgesyte timeline {job.id}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    """A job's status; exit 1 when it failed or was cancelled."""
    job = client.job(args.job_id).status()
    _emit(args, job.raw, lambda: _print_status(job))
    return EXIT_OK if job.status not in ("failed", "cancelled") else EXIT_JOB_FAILED


def cmd_results(args: argparse.Namespace, client: Client) -> int:
    """A completed job's results, streamed to stdout as JSON or JSON Lines."""
    client.job(args.job_id).write_results(
        sys.stdout.buffer, format=args.format, offset=args.offset, limit=args.limit
    )
    if args.format == "json":
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return EXIT_OK


def cmd_timeline(args: argparse.Namespace, client: Client) -> int:
    """A job's text segments, object tracks and shots (or the WebVTT subtitles)."""
    job = client.job(args.job_id)
    if args.format == "vtt":
        sys.stdout.write(job.vtt())
        return EXIT_OK
    timeline = job.timeline()
    _emit(args, timeline.raw, lambda: print("\n".join(format_timeline(timeline))))
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, client: Client) -> int:
    """The jobs, newest first, one line each."""
    page = client.jobs_page(args.status, args.pipeline_id, limit=args.limit, cursor=args.cursor)

    def human() -> None:
        if not page.items:
            print("no jobs")
            return
        rows = [["JOB", "STATUS", "PROGRESS", "PIPELINE", "FILE", "CREATED"]] + [
            [
                job.job_id,
                job.status,
                f"{job.progress:.0f}%",
                job.pipeline_id,
                job.filename or "-",
                relative_time(job.created_at),
            ]
            for job in page.items
        ]
        console = _out()
        for index, line in enumerate(columns(rows)):
            style = "bold" if index == 0 else STATUS_STYLE.get(rows[index][1])
            console.print(line, style=style, markup=False)
        if page.next is not None:
            _err().print(f"more: --cursor {page.next}", markup=False)

    _emit(args, page.raw, human)
    return EXIT_OK


def format_matches(matches: list[SearchMatch]) -> list[str]:
    """Human lines of search matches: file, time range, text or class, score, job id."""
    what = "CLASS" if matches and matches[0].kind == "object" else "TEXT"
    rows = [["FILE", "TIME", what, "SCORE", "JOB"]] + [
        [
            match.filename or "-",
            f"{clock(match.start_s)}\u2013{clock(match.end_s)}",
            (match.text if match.kind == "text" else match.class_name) or "",
            f"{match.score:.2f}",
            match.job_id,
        ]
        for match in matches
    ]
    return columns(rows)


def cmd_search(args: argparse.Namespace, client: Client) -> int:
    """Moments across every completed job: text (OCR errors forgiven) or objects."""
    if args.object and args.with_class is not None:
        raise UsageError("--with keeps text beside an object: it does not go with --object")
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    found = client.search(
        args.text,
        kind="object" if args.object else "text",
        with_=args.with_class,
        page_size=min(args.limit, SEARCH_PAGE_MAX),
    )
    matches = list(itertools.islice(found, args.limit))

    def human() -> None:
        if not matches:
            print("no matches")
            return
        console = _out()
        for index, line in enumerate(format_matches(matches)):
            console.print(line, style="bold" if index == 0 else None, markup=False)

    _emit(args, {"matches": [dict(match.raw) for match in matches]}, human)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    """Cancel a pending or running job."""
    job = client.job(args.job_id).cancel()
    _emit(args, job.raw, lambda: print(f"job {job.job_id} {job.status}"))
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, client: Client) -> int:
    """Delete a finished job: its row, video and results."""
    client.job(args.job_id).delete()
    _emit(
        args, {"job_id": args.job_id, "deleted": True}, lambda: print(f"job {args.job_id} deleted")
    )
    return EXIT_OK


def cmd_keys_create(args: argparse.Namespace, client: Client) -> int:
    """Make a key and print it: the server never shows it again."""
    made = client.create_key(args.name, args.role)

    def human() -> None:
        _err().print(
            f"key {made.name} ({made.role}) made; it is not shown again: keep it now",
            style="yellow",
            markup=False,
        )
        print(made.key)

    _emit(args, made.raw, human)
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace, client: Client) -> int:
    """The live keys: name, role, when made, when last used (never their text)."""
    keys = client.keys()

    def human() -> None:
        if not keys:
            print("no keys (FORGESYTE_API_KEY is the admin key; an open server has none)")
            return
        rows = [["NAME", "ROLE", "CREATED", "LAST USED"]] + [
            [
                key.name,
                key.role,
                relative_time(key.created_at),
                relative_time(key.last_used_at) if key.last_used_at else "never",
            ]
            for key in keys
        ]
        console = _out()
        for index, line in enumerate(columns(rows)):
            console.print(line, style="bold" if index == 0 else None, markup=False)

    _emit(args, {"keys": [dict(key.raw) for key in keys]}, human)
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace, client: Client) -> int:
    """Revoke a key: refused everywhere within 2 s; its jobs stay."""
    client.revoke_key(args.name)
    _emit(args, {"name": args.name, "revoked": True}, lambda: print(f"key {args.name} revoked"))
    return EXIT_OK


Verb = Callable[[argparse.Namespace, Client], int]
ROLES = tuple(role.value for role in Role)  # what a key may be


def _exit_code(error: ApiError) -> int:
    if isinstance(error, ServerUnreachable) or error.status_code in USAGE_STATUSES:
        return EXIT_USAGE
    return EXIT_JOB_FAILED


def _connect(args: argparse.Namespace) -> Client:
    try:
        return Client(args.url, args.api_key)
    except ValueError as exc:  # not an http(s) URL
        raise UsageError(str(exc)) from None


def _run(handler: Verb) -> Callable[[argparse.Namespace], int]:
    """The verb with its Client, its errors turned into a message and an exit code."""

    def run(args: argparse.Namespace) -> int:
        args.started = time.monotonic()
        try:
            with _connect(args) as client:
                return handler(args, client)
        except UsageError as exc:
            print(f"forgesyte: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except ApiError as exc:
            print(f"forgesyte: {exc}", file=sys.stderr)
            raise SystemExit(_exit_code(exc)) from None
        except KeyboardInterrupt:
            print("forgesyte: interrupted (the job goes on on the server)", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None

    run.__doc__ = handler.__doc__
    return run


def add_client_commands(commands: Any) -> None:
    """Add the client verbs to the `forgesyte` command's subparsers."""
    verbs: list[tuple[str, Verb, str]] = [
        ("submit", cmd_submit, "submit a video (--wait: follow it with a progress bar)"),
        ("status", cmd_status, "show a job's status"),
        ("results", cmd_results, "print a completed job's results (JSON or JSON Lines)"),
        ("timeline", cmd_timeline, "show a job's text segments, object tracks and shots"),
        ("jobs", cmd_jobs, "list the jobs, newest first"),
        ("search", cmd_search, "find text (or objects) across every completed job"),
        ("cancel", cmd_cancel, "cancel a pending or running job"),
        ("delete", cmd_delete, "delete a finished job and its files"),
    ]
    for name, handler, helptext in verbs:
        client = commands.add_parser(name, help=helptext, description=helptext)
        _connection_flags(client)
        if name == "submit":
            client.add_argument("file", help="the video (MP4)")
            client.add_argument(
                "--pipeline-id", default=None, help="the pipeline to run (server default: ocr_only)"
            )
            add_option_flags(client)
            client.add_argument(
                "--wait", action="store_true", help="follow the job to its end with a progress bar"
            )
        elif name == "search":
            client.add_argument("text", help="the text to find (case, spaces, OCR slips forgiven)")
            client.add_argument(
                "--object", action="store_true", help="TEXT is an object class (person, car)"
            )
            client.add_argument(
                "--with",
                dest="with_class",
                metavar="CLASS",
                default=None,
                help="only text that is on screen while an object of CLASS is",
            )
            client.add_argument(
                "--limit", type=int, default=20, help="matches to show, best first (default 20)"
            )
        elif name == "jobs":
            client.add_argument("--status", choices=STATUSES)
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
    _add_keys_commands(commands)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    """--url, --api-key and --json, which every client verb takes."""
    parser.add_argument(
        "--url", default=None, help=f"the server (default: ${URL_VARIABLE} or {DEFAULT_URL})"
    )
    parser.add_argument(
        "--api-key", default=None, help=f"the server's API key (default: ${KEY_VARIABLE})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _add_keys_commands(commands: Any) -> None:
    """`forgesyte keys create NAME --role ROLE | list | revoke NAME` (an admin key's verbs)."""
    helptext = "make, list and revoke API keys (with an admin key)"
    keys = commands.add_parser("keys", help=helptext, description=helptext)
    verbs = keys.add_subparsers(dest="keys_command", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="make a key; it is printed once")
    create.add_argument("name", help="[a-z0-9_-]{1,64}: the owner of the jobs it submits")
    create.add_argument("--role", choices=ROLES, default="user", help="default: user")
    listing = verbs.add_parser("list", help="the live keys (never their text)")
    revoke = verbs.add_parser("revoke", help="revoke a key (its jobs stay)")
    revoke.add_argument("name")
    for parser, handler in ((create, cmd_keys_create), (listing, cmd_keys_list),
                            (revoke, cmd_keys_revoke)):  # fmt: skip
        _connection_flags(parser)
        parser.set_defaults(handler=_run(handler))
