"""Row w: what a job's media step costs against the job's own analysis, in one process.

The analysis runs as a worker child runs it (the video service, the job's pipeline, the
results writer and its timeline; one thread, as a child has when workers equal cores);
then the media step the child runs after it (`make_job_media`: each detection's track id,
the thumbnails, and for an upload browsers cannot play the H.264 copy), and the copy alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_local import TESTKIT_PIPELINES

from forgesyte.pipelines.catalog import load_catalog
from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.registry import discover_plugins
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video.playable import write_playable_copy
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService
from forgesyte.workers.media import make_job_media
from forgesyte.workers.protocol import MediaRequest

THREADS = 1
MAX_FRAME_PIXELS = 8192 * 4320


@dataclass(frozen=True)
class MediaCost:
    """Medians over the rounds, in seconds: the analysis, the media step, the copy alone."""

    analysis_s: float
    media_s: float
    copy_s: float
    frames_analysed: int

    @property
    def ratio(self) -> float:
        """The media step against the analysis."""
        return self.media_s / self.analysis_s


def _runner(pipeline_id: str) -> PipelineRunner:
    registry = discover_plugins(PluginConfig(analysis_threads=THREADS))
    entry = load_catalog(registry, TESTKIT_PIPELINES).get(pipeline_id)
    if entry is None:
        raise LookupError(pipeline_id)
    runner = PipelineRunner(entry.definition, registry)
    runner.load()
    return runner


def _round(video: Path, runner: PipelineRunner, sampling: SamplingOptions) -> tuple[float, ...]:
    service = VideoFilePipelineService(runner, max_frame_pixels=MAX_FRAME_PIXELS)
    with tempfile.TemporaryDirectory(prefix="forgesyte-bench-media-") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        with FrameResultsWriter(folder) as writer:
            summary = service.analyse(
                video,
                sampling,
                lambda f: writer.add(f.to_json()),
                on_video=lambda info: writer.start(info.resolution_wh),
            )
            writer.finish()
        analysis_s = time.perf_counter() - started
        request = MediaRequest(
            str(video), str(writer.results_path), str(writer.timeline_path), scratch
        )
        started = time.perf_counter()
        make_job_media(request, max_frame_pixels=MAX_FRAME_PIXELS, threads=THREADS)
        media_s = time.perf_counter() - started
        started = time.perf_counter()
        write_playable_copy(video, folder / "alone.mp4", threads=THREADS)
        copy_s = time.perf_counter() - started
    return analysis_s, media_s, copy_s, float(summary.frames_analysed)


def media_cost(video: Path, pipeline_id: str, sampling: SamplingOptions, rounds: int) -> MediaCost:
    """The analysis, the media step and the copy alone, medians of `rounds` rounds."""
    runner = _runner(pipeline_id)
    _round(video, runner, SamplingOptions(max_frames=1))  # warm: models, page cache
    measured = [_round(video, runner, sampling) for _ in range(rounds)]
    analysis, media, copy, frames = (
        statistics.median(column) for column in zip(*measured, strict=True)
    )
    return MediaCost(analysis, media, copy, int(frames))
