"""The analysis child process: loads plugins and models once, then runs job after job.

It talks to its parent worker over a pipe. Requests: AnalysisRequest. Replies:
("progress", analysed, planned), ("done", AnalysisDone) or ("error", message).

The child writes the frame results as JSON Lines, and the timeline, to local files in the
request's scratch folder as it goes; the parent uploads them (the child has no storage
credentials).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from forgesyte.pipelines.catalog import load_catalog
from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.registry import discover_plugins
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video.service import SamplingOptions, VideoDecodeError, VideoFilePipelineService

PROGRESS_MESSAGE_INTERVAL_S = 0.1  # seconds between progress messages to the parent
_PR_SET_PDEATHSIG = 1
ANALYSIS_NICENESS = 10  # added to the child's nice value (lower CPU priority)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisRequest:
    """One job's analysis, as the child needs it."""

    pipeline_id: str
    video_path: str
    options: dict[str, Any] = field(default_factory=dict)
    scratch_dir: str = ""  # where the child writes results.jsonl and timeline.json

    def sampling(self) -> SamplingOptions:
        """The job's options as the video layer takes them."""
        options = self.options
        sample_fps = options.get("sample_fps")
        return SamplingOptions(
            frame_stride=int(options.get("frame_stride") or 1),
            max_frames=options.get("max_frames"),
            sample_fps=float(sample_fps) if sample_fps is not None else None,
            skip_unchanged=bool(options.get("skip_unchanged", False)),
        )


@dataclass(frozen=True)
class AnalysisDone:
    """A finished analysis: its local results and timeline files, and the summary."""

    results_path: str
    timeline_path: str
    video: dict[str, Any]
    frames_analysed: int

    def summary(self) -> dict[str, Any]:
        """The small summary kept on the job row."""
        return {"frames_analysed": self.frames_analysed, "video": self.video}


def _die_with_parent() -> None:
    """Ask Linux to kill this child when its parent dies (kill -9 of the server included)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def throttled_progress(
    send: Callable[[int, int], None], interval_s: float = PROGRESS_MESSAGE_INTERVAL_S
) -> Callable[[int, int], None]:
    """A progress callback that passes (analysed, planned) on at most once per interval_s."""
    last_sent = 0.0

    def progress(analysed: int, planned: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= interval_s:
            last_sent = now
            send(analysed, planned)

    return progress


class _Analyser:
    """Keeps one runner per pipeline, so models load once per child."""

    def __init__(self, pipelines_dir: str | None, plugin_config: PluginConfig) -> None:
        self._registry = discover_plugins(plugin_config)
        self._catalog = load_catalog(self._registry, Path(pipelines_dir) if pipelines_dir else None)
        self._runners: dict[str, PipelineRunner] = {}

    def runner(self, pipeline_id: str) -> PipelineRunner:
        runner = self._runners.get(pipeline_id)
        if runner is None:
            entry = self._catalog.get(pipeline_id)
            if entry is None:
                raise LookupError(f"unknown pipeline {pipeline_id!r}")
            if entry.unavailable_reason:
                raise LookupError(
                    f"pipeline {pipeline_id!r} is unavailable: {entry.unavailable_reason}"
                )
            runner = PipelineRunner(entry.definition, self._registry)
            runner.load()
            self._runners[pipeline_id] = runner
        return runner

    def analyse(self, request: AnalysisRequest, conn: Connection) -> AnalysisDone:
        if not request.scratch_dir:
            raise ValueError("the analysis request names no scratch folder for its results")
        progress = throttled_progress(lambda a, p: conn.send(("progress", a, p)))
        service = VideoFilePipelineService(self.runner(request.pipeline_id))
        try:
            with FrameResultsWriter(Path(request.scratch_dir)) as writer:
                summary = service.analyse(
                    Path(request.video_path),
                    request.sampling(),
                    on_frame=lambda frame: writer.add(frame.to_json()),
                    on_progress=progress,
                )
                writer.finish()
        except OSError as exc:  # the scratch folder: say why, never where
            raise RuntimeError(
                f"the results could not be written locally: {exc.strerror}"
            ) from None
        return AnalysisDone(
            results_path=str(writer.results_path),
            timeline_path=str(writer.timeline_path),
            video=summary.video.to_json(),
            frames_analysed=summary.frames_analysed,
        )


def child_main(
    conn: Connection,
    pipelines_dir: str | None,
    preload: list[str],
    plugin_config: PluginConfig | None = None,
) -> None:
    """Entry point of the child: serve analysis requests until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    _die_with_parent()
    # analysis is batch work: below the API's priority, so status polls stay fast under load
    os.nice(ANALYSIS_NICENESS)
    logging.basicConfig(level=logging.WARNING)
    analyser = _Analyser(pipelines_dir, plugin_config or PluginConfig())
    for pipeline_id in preload:
        try:
            analyser.runner(pipeline_id)
        except Exception as exc:  # a broken optional pipeline must not stop the child
            log.warning("could not preload pipeline %s: %s", pipeline_id, exc)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        try:
            done = analyser.analyse(request, conn)
        except VideoDecodeError as exc:
            conn.send(("error", f"video could not be decoded: {exc}"))
        except LookupError as exc:
            conn.send(("error", str(exc.args[0]) if exc.args else str(exc)))
        except Exception as exc:
            conn.send(("error", f"analysis failed: {type(exc).__name__}: {exc}"))
        else:
            conn.send(("done", done))
