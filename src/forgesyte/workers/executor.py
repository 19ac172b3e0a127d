"""Runs one job's analysis in a warm child process, watching it for crashes, hangs and memory.

The executor is the one place that starts the child and the one place a start failure is
turned into a value: `start()` answers ChildReady or AnalysisFailed(CHILD_START), and `run()`
returns that failure as its outcome, like a crash or a timeout.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from forgesyte.plugins.base import PluginConfig
from forgesyte.video.service import DEFAULT_MAX_FRAME_PIXELS
from forgesyte.workers.analysis_child import child_main
from forgesyte.workers.protocol import (
    AnalysisDone,
    AnalysisFailed,
    AnalysisInterrupted,
    AnalysisOutcome,
    AnalysisRequest,
    ChildReady,
    FailureReason,
    Progress,
    StopChild,
)

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


def _rss_mb(pid: int) -> float:
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


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exited with code {exitcode}"


class AnalysisExecutor:
    """Owns one warm analysis child; restarts it after a crash, a timeout or a memory blow-up."""

    def __init__(
        self,
        *,
        pipelines_dir: str | None = None,
        timeout_s: float,
        preload: tuple[str, ...] = ("ocr_only",),
        memory_cap_mb: int | None = None,
        plugin_config: PluginConfig | None = None,
        max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    ) -> None:
        self._pipelines_dir = pipelines_dir
        self._max_frame_pixels = max_frame_pixels
        self._plugin_config = plugin_config or PluginConfig()
        self._preload = list(preload)
        self._timeout_s = timeout_s
        self._memory_cap_mb = memory_cap_mb
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

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
        parent_conn, child_conn = _SPAWN.Pipe(duplex=True)
        process = _SPAWN.Process(
            target=child_main,
            args=(
                child_conn,
                self._pipelines_dir,
                self._preload,
                self._plugin_config,
                self._max_frame_pixels,
            ),
            name="forgesyte-analysis",
            daemon=True,
        )
        process.start()
        child_conn.close()
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
                f"the analysis process died while starting ({_describe_exit(exitcode)})"
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
        if self._process is not None and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
        self.stop()

    def run(
        self,
        request: AnalysisRequest,
        *,
        on_progress: Callable[[int, int], None],
        on_tick: Callable[[], bool],
    ) -> AnalysisOutcome:
        """Run one analysis in the child (started first if it is not running).

        on_progress gets (analysed, planned) as frames are done; on_tick is called every
        WATCH_INTERVAL_S and returns False to interrupt (shutdown, lease lost): the child
        is then killed and the outcome is AnalysisInterrupted. A child that cannot start,
        crashes, times out or goes over its memory cap gives AnalysisFailed with that reason.
        """
        started = self.start()
        if isinstance(started, AnalysisFailed):
            return started
        assert self._conn is not None and self._process is not None
        conn, process = self._conn, self._process
        deadline = time.monotonic() + self._timeout_s
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
                exit_text = _describe_exit(process.exitcode)
                self.stop()
                return AnalysisFailed(
                    FailureReason.CRASHED,
                    f"the analysis process crashed ({exit_text}) while decoding or "
                    "analysing the video",
                )
            if isinstance(message, Progress):
                on_progress(message.analysed, message.planned)
            elif isinstance(message, AnalysisDone | AnalysisFailed):
                return message
            # checked on every pass, so a stream of progress messages cannot delay them
            if time.monotonic() > deadline:
                self._kill()
                return AnalysisFailed(
                    FailureReason.TIMED_OUT,
                    f"the analysis timed out after {self._timeout_s:g} s and was stopped",
                )
            if self._memory_cap_mb is not None and process.pid is not None:
                rss = _rss_mb(process.pid)
                if rss > self._memory_cap_mb:
                    self._kill()
                    return AnalysisFailed(
                        FailureReason.MEMORY_CAP,
                        f"the analysis used {rss:.0f} MiB, over the memory cap of "
                        f"{self._memory_cap_mb} MiB, and was stopped",
                    )
            if not on_tick():
                self._kill()
                return AnalysisInterrupted()
