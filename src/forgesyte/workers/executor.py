"""Runs one job's analysis in a warm child process, watching it for crashes, hangs and memory.

The executor is the one place that starts the child and the one place a start failure is
turned into a value: `start()` answers ChildReady or AnalysisFailed(CHILD_START), and `run()`
returns that failure as its outcome, like a crash or a timeout. Every child process the
server starts (this warm one, and the short-lived ones that draw previews) is started by
`spawn_child`, from the scrubbed environment, and held to its `ChildLimits`.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.spawn
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from forgesyte.plugins.base import PluginConfig
from forgesyte.video.service import DEFAULT_MAX_FRAME_PIXELS
from forgesyte.workers.analysis_child import child_main
from forgesyte.workers.protocol import (
    AnalysisDone,
    AnalysisFailed,
    AnalysisInterrupted,
    AnalysisOutcome,
    ChildReady,
    ChildRequest,
    FailureReason,
    MediaDone,
    Progress,
    SegmentsPlanned,
    StopChild,
)
from forgesyte.workers.shared_cores import SharedCores

WATCH_INTERVAL_S = 0.1  # seconds between checks of the child while it works
CHILD_START_TIMEOUT_S = 120.0  # seconds for a child to import and load its models

_SPAWN = multiprocessing.get_context("spawn")

_THREAD_POOL_ENVS = (
    "OMP_NUM_THREADS",  # OpenMP (ONNX Runtime builds with OpenMP, some BLAS)
    "OPENBLAS_NUM_THREADS",  # numpy's OpenBLAS
    "MKL_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",  # OpenCV's parallel_for (resize, colour conversion, ...)
)


def limit_child_threads(threads: int) -> None:
    """Let every analysis child started from now on use at most `threads` threads.

    The limits go into this process's environment, which spawned children inherit; the
    native libraries read them when the child imports them (ONNX Runtime's own thread count
    is handed to the plugins in their PluginConfig). Thread variables the operator set
    already are left alone.
    """
    if threads < 1:
        raise ValueError("threads must be >= 1")
    for name in _THREAD_POOL_ENVS:
        os.environ.setdefault(name, str(threads))


# The only environment variables a child process gets (plus the operator's
# FORGESYTE_CHILD_ENV_KEEP names): the locale, paths and the thread limits; never the
# API key, database URL, cloud credentials or any other secret of the server.
CHILD_ENV_ALLOWLIST = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "TZ",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONFAULTHANDLER",
    "PYTHONHASHSEED",
    "PYTHONWARNINGS",
    "CUDA_VISIBLE_DEVICES",
    *_THREAD_POOL_ENVS,
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCRUB_LOCK = threading.Lock()
_scrubbed_for: tuple[str, ...] | None = None


def child_launcher_script(python: str, keep: Iterable[str]) -> str:
    """A POSIX shell script that runs `python "$@"` with only the variables in `keep`.

    `env -i` empties the environment; each kept variable is passed on only if it is set.
    Open file descriptors (multiprocessing's pipes) pass through `exec` untouched.
    """
    env = shutil.which("env") or "/usr/bin/env"
    kept = " ".join(f'${{{name}+"{name}=${name}"}}' for name in keep)
    return (
        "#!/bin/sh\n"
        "# ForgeSyte: start a multiprocessing child from an allowlisted environment\n"
        f'exec {shlex.quote(env)} -i {kept} {shlex.quote(python)} "$@"\n'
    )


def scrub_child_environment(extra: Iterable[str] = ()) -> str:
    """Make every multiprocessing child of this process start from an allowlisted environment.

    multiprocessing's spawn (the analysis children, and the resource tracker it starts
    beside them) runs `spawn.get_executable()` with a copy of this process's environment.
    Pointing that executable at a launcher script that runs `env -i` with the allowlist
    leaves the server's own environment alone (boto3 and the database driver still read
    it) while no child ever sees a secret. Call it before the first child starts; calls
    after the first keep the first launcher unless `extra` differs. Returns its path.
    """
    global _scrubbed_for
    keep = tuple(dict.fromkeys((*CHILD_ENV_ALLOWLIST, *extra)))
    bad = [name for name in keep if not _ENV_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"not an environment variable name: {bad[0]!r}")
    with _SCRUB_LOCK:
        current = multiprocessing.spawn.get_executable()
        if _scrubbed_for == keep and current is not None:
            return os.fsdecode(current)
        folder = tempfile.mkdtemp(prefix="forgesyte-child-")
        atexit.register(shutil.rmtree, folder, True)
        launcher = os.path.join(folder, "python")
        with open(launcher, "w", encoding="utf-8") as script:
            script.write(child_launcher_script(sys.executable, keep))
        os.chmod(launcher, 0o700)
        _SPAWN.set_executable(launcher)
        _scrubbed_for = keep
        return launcher


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def _start_failed(message: str) -> AnalysisFailed:
    return AnalysisFailed(FailureReason.CHILD_START, message)


def describe_exit(exitcode: int | None) -> str:
    """How a child ended, for a message: 'killed by SIGSEGV', 'exited with code 1'."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exited with code {exitcode}"


def spawn_child(
    target: Callable[..., None],
    args: tuple[Any, ...],
    *,
    name: str,
    child_env_keep: Iterable[str] = (),
) -> tuple[BaseProcess, Connection]:
    """Start `target(conn, *args)` in a spawned child from the scrubbed environment.

    Returns the process and this side of its pipe. The child is a daemon of this process.
    """
    scrub_child_environment(child_env_keep)
    parent_conn, child_conn = _SPAWN.Pipe(duplex=True)
    process = _SPAWN.Process(target=target, args=(child_conn, *args), name=name, daemon=True)
    process.start()
    child_conn.close()
    return process, parent_conn


@dataclass(frozen=True)
class ChildLimits:
    """What one request to a child may use: wall-clock seconds and resident memory (MiB)."""

    timeout_s: float
    memory_cap_mb: int | None = None

    def breach(self, process: BaseProcess, deadline: float, work: str) -> AnalysisFailed | None:
        """Why the child doing `work` ("analysis", "preview") must be stopped now: past
        its deadline (time.monotonic()) or over its memory cap; None while within both."""
        if time.monotonic() > deadline:
            return AnalysisFailed(
                FailureReason.TIMED_OUT,
                f"the {work} timed out after {self.timeout_s:g} s and was stopped",
            )
        if self.memory_cap_mb is not None and process.pid is not None:
            rss = rss_mb(process.pid)
            if rss > self.memory_cap_mb:
                return AnalysisFailed(
                    FailureReason.MEMORY_CAP,
                    f"the {work} used {rss:.0f} MiB, over the memory cap of "
                    f"{self.memory_cap_mb} MiB, and was stopped",
                )
        return None


def kill_child(process: BaseProcess) -> None:
    """SIGKILL a child and reap it."""
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=5.0)


class AnalysisExecutor:
    """Owns one warm analysis child; restarts it after a crash, a timeout or a memory blow-up.

    With `cores` (the process's `SharedCores`), the child is counted busy while it works on
    a request, and its plugins follow the process's thread share.
    """

    def __init__(
        self,
        *,
        pipelines_dir: str | None = None,
        timeout_s: float,
        preload: tuple[str, ...] = ("ocr_only",),
        memory_cap_mb: int | None = None,
        plugin_config: PluginConfig | None = None,
        max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
        child_env_keep: tuple[str, ...] = (),
        cores: SharedCores | None = None,
    ) -> None:
        self._child_env_keep = child_env_keep
        self._pipelines_dir = pipelines_dir
        self._max_frame_pixels = max_frame_pixels
        self._plugin_config = plugin_config or PluginConfig()
        if cores is not None:
            self._plugin_config = replace(
                self._plugin_config, analysis_threads=cores.share, thread_share=cores.child_threads
            )
        self._cores = cores
        self._preload = list(preload)
        self._limits = ChildLimits(timeout_s, memory_cap_mb)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def preload(self) -> tuple[str, ...]:
        """The pipelines each of its children loads before the first request."""
        return tuple(self._preload)

    @property
    def child_pid(self) -> int | None:
        """The pid of the current child, if one runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> ChildReady | AnalysisFailed:
        """Start the child (if not running) and wait until its models are loaded.

        Answers ChildReady, or AnalysisFailed(CHILD_START) when the child did not report
        ready within CHILD_START_TIMEOUT_S or died while starting (nothing is left running).
        """
        if self._process is not None and self._process.is_alive():
            return ChildReady(self._process.pid or 0)
        self.stop()
        process, parent_conn = spawn_child(
            child_main,
            (self._pipelines_dir, self._preload, self._plugin_config, self._max_frame_pixels),
            name="forgesyte-analysis",
            child_env_keep=self._child_env_keep,
        )
        self._process, self._conn = process, parent_conn
        if not parent_conn.poll(CHILD_START_TIMEOUT_S):
            self.stop()
            return _start_failed("the analysis process did not start in time")
        try:
            message = parent_conn.recv()
        except (EOFError, OSError):
            process.join(timeout=2.0)
            exitcode = process.exitcode
            self.stop()
            return _start_failed(
                f"the analysis process died while starting ({describe_exit(exitcode)})"
            )
        if not isinstance(message, ChildReady):  # pragma: no cover - protocol guard
            self.stop()
            return _start_failed(
                f"unexpected message from the analysis process: {type(message).__name__}"
            )
        return message

    def stop(self) -> None:
        """Stop the child: ask politely, then kill."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(StopChild())
            conn.close()
        if process is not None:
            process.join(timeout=2.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=5.0)

    def _kill(self) -> None:
        if self._process is not None:
            kill_child(self._process)
        self.stop()

    def run(
        self,
        request: ChildRequest,
        *,
        on_progress: Callable[[int, int], None],
        on_tick: Callable[[], bool],
    ) -> AnalysisOutcome | MediaDone:
        """Run one request in the child (started first if it is not running).

        on_progress gets (analysed, planned) as frames are done; on_tick is called every
        WATCH_INTERVAL_S and returns False to interrupt (shutdown, lease lost): the child
        is then killed and the outcome is AnalysisInterrupted. A child that cannot start,
        crashes, times out or goes over its memory cap gives AnalysisFailed with that reason.
        Each request has the whole timeout, from when it is sent.
        """
        started = self.start()
        if isinstance(started, AnalysisFailed):
            return started
        with self._cores.working() if self._cores is not None else contextlib.nullcontext():
            return self._watch(request, on_progress, on_tick)

    def _watch(
        self,
        request: ChildRequest,
        on_progress: Callable[[int, int], None],
        on_tick: Callable[[], bool],
    ) -> AnalysisOutcome | MediaDone:
        """Send the request to the started child and watch it until it answers."""
        assert self._conn is not None and self._process is not None
        conn, process = self._conn, self._process
        deadline = time.monotonic() + self._limits.timeout_s
        try:
            conn.send(request)
        except (OSError, ValueError):
            self._kill()
            return AnalysisFailed(FailureReason.CRASHED, "the analysis process was not reachable")
        while True:
            try:
                ready = conn.poll(WATCH_INTERVAL_S)
                message = conn.recv() if ready else None
            except (EOFError, OSError):
                process.join(timeout=2.0)
                exit_text = describe_exit(process.exitcode)
                self.stop()
                return AnalysisFailed(
                    FailureReason.CRASHED,
                    f"the analysis process crashed ({exit_text}) while decoding or "
                    "analysing the video",
                )
            if isinstance(message, Progress):
                on_progress(message.analysed, message.planned)
            elif isinstance(message, AnalysisDone | AnalysisFailed | SegmentsPlanned | MediaDone):
                return message
            # checked on every pass, so a stream of progress messages cannot delay them
            breach = self._limits.breach(process, deadline, "analysis")
            if breach is not None:
                self._kill()
                return breach
            if not on_tick():
                self._kill()
                return AnalysisInterrupted()
