"""Real test services started by the tests themselves: PostgreSQL and an S3-compatible server.

Each helper is a context manager that starts the server on 127.0.0.1 on a free
port, yields how to reach it, and stops it and removes its files on exit. A
server that cannot be started raises ServiceUnavailableError with a message saying
what to install; the pytest fixtures turn that into a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

POSTGRES_USER = "postgres"
POSTGRES_DATABASE = "forgesyte_test"
POSTGRES_START_TIMEOUT_S = 30
S3_START_TIMEOUT_S = 30.0
INSTALL_HINT = (
    "install the PostgreSQL server: `apt-get install -y postgresql` "
    "(or `bash scripts/install_services.sh`)"
)
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class ServiceUnavailableError(RuntimeError):
    """A test service could not be started; the message says why and what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- PostgreSQL -----------------------------------------------------------------------


def find_postgres_bin() -> Path:
    """The folder of the newest installed PostgreSQL server binaries (initdb, pg_ctl)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise ServiceUnavailableError(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): "
            + INSTALL_HINT
        )

    def version(initdb: str) -> tuple[int, ...]:
        name = Path(initdb).parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    return Path(max(found, key=version)).parent


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server on loopback, trust auth, user ``postgres``."""

    host: str
    port: int
    database: str

    def url(self, database: str | None = None) -> str:
        """The SQLAlchemy URL of a database on this server (default: the test database)."""
        name = database or self.database
        return f"postgresql+psycopg://{POSTGRES_USER}@{self.host}:{self.port}/{name}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host, port=self.port, user=POSTGRES_USER, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its name (a fresh unique one by default)."""
        name = name or f"forgesyte_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", POSTGRES_USER, "--", *command]
    return command


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceUnavailableError(f"{what} failed (exit {result.returncode}): {output}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server in a temporary folder; stop it and remove it on exit.

    Commands (as the postgres user when root):
    ``initdb -D DIR/data -U postgres -A trust -E UTF8 --no-sync``, then
    ``pg_ctl -D DIR/data -l DIR/postgres.log -w start -o "-h 127.0.0.1 -p PORT -k DIR ..."``,
    and at the end ``pg_ctl -D DIR/data -m fast -w stop``.
    """
    bin_dir = find_postgres_bin()
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise ServiceUnavailableError("`runuser` (util-linux) is needed to run PostgreSQL as root")
    try:
        account = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        account = None
    if os.geteuid() == 0 and account is None:
        raise ServiceUnavailableError(f"no `{POSTGRES_USER}` system user: " + INSTALL_HINT)

    root = Path(tempfile.mkdtemp(prefix="forgesyte-pg-"))
    if os.geteuid() == 0 and account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
    data = root / "data"
    log = root / "postgres.log"
    started = False
    try:
        _run(
            _as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    POSTGRES_USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            "initdb",
        )
        # A port picked free can be taken before the server binds it: try a few.
        for attempt in range(3):
            port = free_port()
            options = (
                f"-h 127.0.0.1 -p {port} -k {root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            start = subprocess.run(
                _as_postgres(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        str(POSTGRES_START_TIMEOUT_S),
                        "start",
                    ]
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if start.returncode == 0:
                started = True
                break
            if attempt == 2:
                raise ServiceUnavailableError(
                    f"PostgreSQL did not start (pg_ctl exit {start.returncode}):\n{_tail(log)}"
                )
        server = PostgresServer(host="127.0.0.1", port=port, database=POSTGRES_DATABASE)
        server.create_database(POSTGRES_DATABASE)
        yield server
    finally:
        if started:
            subprocess.run(
                _as_postgres(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
                ),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


# -- S3-compatible server (moto) ------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server on loopback."""

    endpoint_url: str


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at the URL (proxies are bypassed: loopback only)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's standalone S3 server as a subprocess; terminate it on exit.

    Command: ``python -m moto.server -H 127.0.0.1 -p PORT``. The fake credentials
    in FAKE_AWS_ENV are what clients of this server should use.
    """
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise ServiceUnavailableError(
            f"moto's server is not installed ({exc}): run `uv sync` (dev group has moto[server])"
        ) from None
    root = Path(tempfile.mkdtemp(prefix="forgesyte-s3-"))
    log = root / "moto.log"
    port = free_port()
    # moto is not ours: no coverage measurement in it (the suite's runs set
    # COVERAGE_PROCESS_CONFIG for every Python subprocess, and tracing slows moto down)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env.update(FAKE_AWS_ENV)
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            command, stdout=log_handle, stderr=subprocess.STDOUT, env=env, cwd=root
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + S3_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise ServiceUnavailableError(
                    f"moto server exited with {process.returncode}:\n{_tail(log)}"
                )
            if _answers(f"{endpoint}/moto-api/"):
                break
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"moto server did not answer on {endpoint} within "
                    f"{S3_START_TIMEOUT_S:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.1)
        yield S3Server(endpoint_url=endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
