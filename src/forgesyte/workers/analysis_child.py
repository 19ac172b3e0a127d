"""The analysis child process: loads plugins and models once, then runs job after job.

It talks to its parent worker over a pipe in the messages of `workers.protocol`: it sends
ChildReady once, then answers each AnalysisRequest with Progress messages and one
AnalysisDone or AnalysisFailed; StopChild (or a closed pipe) ends it.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cv2

from forgesyte.pipelines.catalog import PipelineNotRunnable, UnknownPipeline, load_catalog
from forgesyte.pipelines.runner import PipelineRunner, PluginError
from forgesyte.plugins.base import Frame, PluginConfig, ThreadShare
from forgesyte.plugins.registry import discover_plugins
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video.segments import plan_segments
from forgesyte.video.service import (
    DEFAULT_MAX_FRAME_PIXELS,
    VideoDecodeError,
    VideoFilePipelineService,
    VideoSummary,
    probe_video,
)
from forgesyte.video.shots import find_shots
from forgesyte.workers.child_setup import settle_child
from forgesyte.workers.media import make_job_media
from forgesyte.workers.protocol import (
    AnalysisDone,
    AnalysisFailed,
    AnalysisRequest,
    ChildMessage,
    ChildReady,
    FailureReason,
    MediaDone,
    MediaRequest,
    Progress,
    SegmentsPlanned,
    StopChild,
)
from forgesyte.workers.shared_cores import FixedThreads

__all__ = ["AnalysisRequest", "child_main", "throttled_progress"]

PROGRESS_MESSAGE_INTERVAL_S = 0.1  # seconds between progress messages to the parent

log = logging.getLogger(__name__)


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


class FollowingThreads:
    """A pipeline runner whose OpenCV threads follow the child's thread share, frame by
    frame (its ONNX tools follow it call by call)."""

    def __init__(self, runner: PipelineRunner, share: ThreadShare) -> None:
        self.runner = runner
        self.share = share

    def run(self, frame: Frame) -> dict[str, Any]:
        """Set OpenCV's threads to the share's now (when they changed), then run the frame."""
        threads = self.share.threads_now()
        if threads != cv2.getNumThreads():
            cv2.setNumThreads(threads)
        return self.runner.run(frame)


class _Analyser:
    """Keeps one runner per pipeline, so models load once per child."""

    def __init__(
        self, pipelines_dir: str | None, plugin_config: PluginConfig, max_frame_pixels: int
    ) -> None:
        self._max_frame_pixels = max_frame_pixels
        self._share: ThreadShare = plugin_config.thread_share or FixedThreads(
            plugin_config.analysis_threads or 1
        )
        self._registry = discover_plugins(plugin_config)
        self._catalog = load_catalog(self._registry, Path(pipelines_dir) if pipelines_dir else None)
        self._runners: dict[str, PipelineRunner] = {}

    def runner(self, pipeline_id: str) -> PipelineRunner:
        """The loaded runner of a pipeline (PipelineNotRunnable, PluginError if it cannot be)."""
        runner = self._runners.get(pipeline_id)
        if runner is None:
            runner = PipelineRunner(self._catalog.runnable(pipeline_id).definition, self._registry)
            runner.load()
            self._runners[pipeline_id] = runner
        return runner

    def analyse(
        self, request: AnalysisRequest, send: Callable[[ChildMessage], None]
    ) -> AnalysisDone | AnalysisFailed | SegmentsPlanned:
        """Run one request, sending throttled Progress; the answer says how it ended.

        A request with segment_frames whose video cuts into several spans (at keyframes,
        or at any frame into split_parts) is answered with SegmentsPlanned (nothing
        analysed), and so is one with known_split (no spans); one with frame_span analyses
        that span.
        The shots (`finds_shots`) are found after the analysis, in a second pass over
        every frame: the sampled decode skips the frames no analysed frame needs.
        """
        progress = throttled_progress(lambda analysed, planned: send(Progress(analysed, planned)))
        if not request.scratch_dir:
            return AnalysisFailed(
                FailureReason.INTERNAL, "the analysis request names no scratch folder"
            )
        path = Path(request.video_path)
        try:
            if request.known_split:
                return SegmentsPlanned([], probe_video(path).to_json())
            if request.segment_frames is not None and request.frame_span is None:
                spans = plan_segments(
                    path,
                    request.sampling(),
                    request.segment_frames,
                    parts=request.split_parts,
                    max_frame_pixels=self._max_frame_pixels,
                )
                if len(spans) > 1:
                    video = probe_video(path).to_json()
                    return SegmentsPlanned(
                        [(span.first_frame, span.end_frame, span.frames) for span in spans],
                        video,
                    )
            with FrameResultsWriter(Path(request.scratch_dir)) as writer:
                if request.shots_only:
                    summary = VideoSummary(probe_video(path), frames_analysed=0)
                    writer.start(summary.video.resolution_wh)
                else:
                    service = VideoFilePipelineService(
                        FollowingThreads(self.runner(request.pipeline_id), self._share),
                        max_frame_pixels=self._max_frame_pixels,
                    )
                    summary = service.analyse(
                        path,
                        request.sampling(),
                        on_frame=lambda frame: writer.add(frame.to_json()),
                        on_progress=progress,
                        frame_span=request.frame_span,
                        on_video=lambda video: writer.start(video.resolution_wh),
                    )
                shots = (
                    find_shots(path, summary.video.fps, self._max_frame_pixels)
                    if request.finds_shots
                    else []
                )
                writer.finish(shots)
        except PluginError as exc:
            # the plugin is named; its exception's text (which may hold paths or data)
            # goes to the log only
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "error"
            return AnalysisFailed(
                FailureReason.PLUGIN_ERROR,
                f"plugin {exc.plugin_type}.{exc.tool_type} failed ({cause}); "
                "the server log has the details",
                detail=traceback.format_exc(),
            )
        except VideoDecodeError as exc:
            return AnalysisFailed(FailureReason.VIDEO_DECODE, f"video could not be decoded: {exc}")
        except UnknownPipeline as exc:
            return AnalysisFailed(FailureReason.UNKNOWN_PIPELINE, str(exc))
        except PipelineNotRunnable as exc:
            return AnalysisFailed(FailureReason.PIPELINE_UNAVAILABLE, str(exc))
        except OSError as exc:  # the scratch folder: say why, never where
            return AnalysisFailed(
                FailureReason.INTERNAL, f"the results could not be written locally: {exc.strerror}"
            )
        except Exception as exc:
            return AnalysisFailed(
                FailureReason.INTERNAL,
                f"analysis failed with an internal error ({type(exc).__name__}); "
                "the server log has the details",
                detail=traceback.format_exc(),
            )
        return AnalysisDone(
            results_path=str(writer.results_path),
            timeline_path=str(writer.timeline_path),
            video=summary.video.to_json(),
            frames_analysed=summary.frames_analysed,
        )

    def media(self, request: MediaRequest) -> MediaDone | AnalysisFailed:
        """Make a job's media (workers/media.py); a failure says why, for the log."""
        try:
            return make_job_media(
                request,
                max_frame_pixels=self._max_frame_pixels,
                threads=self._share.threads_now(),
            )
        except VideoDecodeError as exc:
            return AnalysisFailed(FailureReason.VIDEO_DECODE, f"video could not be decoded: {exc}")
        except OSError as exc:
            return AnalysisFailed(
                FailureReason.INTERNAL, f"the media could not be written locally: {exc.strerror}"
            )
        except Exception as exc:
            return AnalysisFailed(
                FailureReason.INTERNAL,
                f"making the media failed with an internal error ({type(exc).__name__})",
                detail=traceback.format_exc(),
            )


def child_main(
    conn: Connection,
    pipelines_dir: str | None,
    preload: list[str],
    plugin_config: PluginConfig | None = None,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
) -> None:
    """Entry point of the child: serve analysis requests until the pipe closes."""
    settle_child()
    analyser = _Analyser(pipelines_dir, plugin_config or PluginConfig(), max_frame_pixels)
    for pipeline_id in preload:
        try:
            analyser.runner(pipeline_id)
        except Exception as exc:  # a broken optional pipeline must not stop the child
            log.warning("could not preload pipeline %s: %s", pipeline_id, exc)
    conn.send(ChildReady(os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if isinstance(request, StopChild):
            return
        if isinstance(request, MediaRequest):
            conn.send(analyser.media(request))
            continue
        if not isinstance(request, AnalysisRequest):  # pragma: no cover - protocol guard
            log.error("unexpected message from the worker: %s", type(request).__name__)
            return
        conn.send(analyser.analyse(request, conn.send))
