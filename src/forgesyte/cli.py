"""The `forgesyte` command: serve, worker, db; the client verbs live in
forgesyte.client_commands."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from forgesyte.client_commands import add_client_commands
from forgesyte.settings import Settings, default_worker_count

if TYPE_CHECKING:
    from forgesyte.runtime import Runtime

log = logging.getLogger("forgesyte")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_LOG_FILE_COMMANDS = ("serve", "worker", "db")  # the client verbs log to stderr only


def _configure_logging(level: str, command: str) -> None:
    """JSON lines to stderr; the server commands also write FORGESYTE_LOG_FILE (rotated)."""
    from forgesyte.logs import configure_logging

    log_file = Settings().resolved_log_file() if command in _LOG_FILE_COMMANDS else None
    try:
        configure_logging(getattr(logging, level.upper(), logging.INFO), log_file)
    except OSError as exc:
        print(f"forgesyte: cannot write the log file {log_file}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def _display_url(url: str) -> str:
    from forgesyte.db.engine import display_url

    return display_url(url)


def _build_runtime_or_exit(settings: Settings, workers: int) -> Runtime:
    # the server modules (SQLAlchemy, FastAPI) load here, not for the client verbs
    from forgesyte.db.engine import DatabaseLockedError
    from forgesyte.runtime import build_runtime

    try:
        return build_runtime(settings, workers=workers)
    except DatabaseLockedError as exc:
        print(f"forgesyte: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _is_loopback(host: str) -> bool:
    """Whether host names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_checks(settings: Settings, host: str) -> bool:
    """Start-up checks of `serve`: False (after one clear line) when it must not start."""
    if settings.api_key is not None and not settings.api_key.strip():
        print(
            "forgesyte: FORGESYTE_API_KEY is set but empty; set a key, or unset it to run "
            "without authentication",
            file=sys.stderr,
        )
        return False
    if settings.api_key is None and not _is_loopback(host):
        log.warning(
            "serving on %s with no FORGESYTE_API_KEY: until a key is made (forgesyte keys "
            "create), anyone who can reach this address can submit videos and read every "
            "job's results",
            host,
        )
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API and the worker loops in one process."""
    import uvicorn

    from forgesyte.api.app import create_app
    from forgesyte.workers.pool import WorkerPool

    settings = Settings()
    if not _serve_checks(settings, args.host):
        return 2
    # the API and the workers share this process and its job store: enqueueing a job wakes
    # an idle worker at once (Runtime.wakeup), instead of leaving the job for its next poll
    workers = default_worker_count() if args.workers is None else args.workers
    runtime = _build_runtime_or_exit(settings, workers)
    pool = WorkerPool(runtime, workers)

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after its shutdown, which would end the process
            # with -SIGTERM; we finish the workers first and exit 0 instead.
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in _EXIT_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if pool.stop_event.is_set() and self.should_exit:
                log.warning("second %s: stopping now", signal.Signals(sig).name)
            else:
                log.info(
                    "%s: stopping; running jobs get the grace period", signal.Signals(sig).name
                )
            pool.stop_event.set()  # stop claiming at once
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        create_app(runtime.context),
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        log_config=None,  # uvicorn's lines go through our JSON handlers (forgesyte.logs)
        timeout_graceful_shutdown=5,
    )
    pool.start()
    log.info(
        "forgesyte serving on http://%s:%d with %d worker(s); database %s",
        args.host,
        args.port,
        workers,
        _display_url(settings.resolved_database_url()),
    )
    try:
        _Server(config).run()
    finally:
        pool.stop(settings.shutdown_grace_s + 10.0)
        runtime.close()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run worker loops only (PostgreSQL deployments)."""
    from forgesyte.workers.pool import WorkerPool

    settings = Settings()
    runtime = _build_runtime_or_exit(settings, args.concurrency)
    pool = WorkerPool(runtime, args.concurrency)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if pool.stop_event.is_set():
            raise SystemExit(1)
        log.info("received %s: finishing running jobs", signal.Signals(signum).name)
        pool.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    pool.start()
    log.info("forgesyte worker running %d worker loop(s)", args.concurrency)
    while not pool.stop_event.is_set() and any(t.is_alive() for t in pool.threads):
        pool.stop_event.wait(0.5)
    pool.stop(settings.shutdown_grace_s + 10.0)  # running jobs finish or are handed back
    runtime.close()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Schema migrations on demand."""
    from forgesyte.db.engine import DatabaseLockedError
    from forgesyte.db.migrate import run_schema_command

    url = Settings().resolved_database_url()
    try:
        revision = run_schema_command(url, args.db_command, getattr(args, "revision", None))
    except DatabaseLockedError as exc:
        print(f"forgesyte: {exc}", file=sys.stderr)
        return 2
    print(f"schema revision: {revision or 'none (empty)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="forgesyte", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and workers in one process")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--workers", type=int, default=None, help="worker loops (default: cores; 0: API only)"
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser(
        "worker", help="run worker loops only (PostgreSQL, or a DuckDB file no other process holds)"
    )
    worker.add_argument("--concurrency", type=int, default=default_worker_count())
    worker.set_defaults(handler=cmd_worker)

    db = commands.add_parser("db", help="schema migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="upgrade the schema (default: to head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", help="downgrade the schema to a revision")
    downgrade.add_argument("revision")
    db_commands.add_parser("current", help="print the schema revision")
    db.set_defaults(handler=cmd_db)

    add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `forgesyte` console script."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level, args.command)
    if getattr(args, "workers", None) is not None and args.workers < 0:
        print("forgesyte: --workers must be >= 0", file=sys.stderr)
        return 2
    result: int = args.handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
