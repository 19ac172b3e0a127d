"""In-process measurements: decode limit, the video service, the naive loop, OCR, child memory."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from forgesyte.pipelines.catalog import load_catalog
from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.plugins.base import Frame
from forgesyte.plugins.ocr import engine_params, reopen_without_spinning
from forgesyte.plugins.registry import discover_plugins
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService
from forgesyte.workers.analysis_child import throttled_progress
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.protocol import AnalysisDone, AnalysisRequest

REPO = Path(__file__).resolve().parents[1]
TESTKIT_PIPELINES = REPO / "tests" / "plugin_dist" / "pipelines"


def runner_for(pipeline_id: str) -> PipelineRunner:
    """A loaded PipelineRunner for a built-in or testkit pipeline, as a worker child builds it."""
    registry = discover_plugins()
    catalog = load_catalog(registry, TESTKIT_PIPELINES)
    entry = catalog.get(pipeline_id)
    if entry is None:
        raise LookupError(pipeline_id)
    runner = PipelineRunner(entry.definition, registry)
    runner.load()
    return runner


def _timed(work: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    frames = work()
    return frames, time.perf_counter() - start


def decode_only(path: Path) -> float:
    """(a) frames/s of a plain OpenCV loop: cap.read() on every frame."""

    def work() -> int:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        frames = 0
        while True:
            ok, _frame = capture.read()
            if not ok:
                break
            frames += 1
        capture.release()
        return frames

    frames, seconds = _timed(work)
    return frames / seconds


def grab_only(path: Path) -> float:
    """frames/s of cap.grab() alone: decoding without colour conversion.

    The service grabs every frame whatever the stride, so this is its ceiling at any stride.
    """

    def work() -> int:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        frames = 0
        while capture.grab():
            frames += 1
        capture.release()
        return frames

    frames, seconds = _timed(work)
    return frames / seconds


def service_fps(path: Path, runner: PipelineRunner, stride: int) -> float:
    """(b) frames of video covered per second by VideoFilePipelineService (child-like progress)."""
    # what the analysis child does on every frame: a throttled message to its parent
    progress = throttled_progress(lambda analysed, planned: None)
    service = VideoFilePipelineService(runner)
    start = time.perf_counter()
    results = service.run(path, SamplingOptions(frame_stride=stride), on_progress=progress)
    seconds = time.perf_counter() - start
    return results.video.frame_count / seconds


def naive_fps(path: Path, runner: PipelineRunner, stride: int) -> float:
    """(c) the naive loop: cap.read() every frame, JPEG round trip for each analysed frame."""

    def work() -> int:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        frames = 0
        results: list[dict[str, Any]] = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frames % stride == 0:
                ok, jpeg = cv2.imencode(".jpg", frame)
                image = cv2.imdecode(np.frombuffer(jpeg.tobytes(), np.uint8), cv2.IMREAD_COLOR)
                results.append(runner.run(cast(Frame, image)))
            frames += 1
        capture.release()
        return frames

    frames, seconds = _timed(work)
    return frames / seconds


def read_frames(path: Path) -> list[Frame]:
    """Every frame of a (short) video, decoded."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames: list[Frame] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cast(Frame, frame))
    capture.release()
    return frames


class OcrComparison:
    """(d) ocr_only through the video service against RapidOCR called directly, both warm.

    RapidOCR is called with ocr.read's own settings: the row measures the job's path.
    """

    def __init__(self, path: Path) -> None:
        from rapidocr import RapidOCR

        self.path = path
        self.frames = read_frames(path)
        self.runner = runner_for("ocr_only")
        # the same engine settings as ocr.read, so that only the job's path differs
        self.direct = RapidOCR(params=engine_params(None))
        self.service = VideoFilePipelineService(self.runner)
        # warm both: the first call of each engine loads its ONNX sessions
        self.runner.run(self.frames[0])
        self.direct(self.frames[0])
        reopen_without_spinning(self.direct, None)
        self.direct(self.frames[0])

    def service_seconds(self) -> tuple[float, float]:
        """Wall and CPU seconds for the service to decode and OCR every frame of the video."""
        start, cpu = time.perf_counter(), time.process_time()
        self.service.run(self.path, SamplingOptions(frame_stride=1))
        return time.perf_counter() - start, time.process_time() - cpu

    def direct_seconds(self) -> tuple[float, float]:
        """Wall and CPU seconds for RapidOCR alone on the same (already decoded) frames."""
        start, cpu = time.perf_counter(), time.process_time()
        for frame in self.frames:
            self.direct(frame)
        return time.perf_counter() - start, time.process_time() - cpu


def _peak_rss_mb(pid: int) -> float:
    """The high-water mark of a process's resident memory (VmHWM), MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def child_peak_rss(path: Path, pipeline_id: str = "testkit_noop") -> tuple[float, float]:
    """(g) peak RSS (MiB) of a fresh, warm worker child that analyses the video; and its fps."""
    executor = AnalysisExecutor(pipelines_dir=str(TESTKIT_PIPELINES), timeout_s=3600)
    executor.start()
    try:
        pid = executor.child_pid
        assert pid is not None
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="forgesyte-bench-") as scratch:
            outcome = executor.run(
                AnalysisRequest(pipeline_id, str(path), {}, scratch),
                on_progress=lambda analysed, planned: None,
                on_tick=lambda: True,
            )
        seconds = time.perf_counter() - start
        if not isinstance(outcome, AnalysisDone):
            raise RuntimeError(f"analysis did not finish: {outcome}")
        frames = int(outcome.video["frame_count"])
        return _peak_rss_mb(pid), frames / seconds
    finally:
        executor.stop()


def skip_unchanged_run(
    path: Path, runner: PipelineRunner, sample_fps: float, skip: bool
) -> tuple[float, list[str], int]:
    """Seconds, the OCR text of every sampled frame, and frames really analysed."""
    service = VideoFilePipelineService(runner)
    start = time.perf_counter()
    results = service.run(path, SamplingOptions(sample_fps=sample_fps, skip_unchanged=skip))
    seconds = time.perf_counter() - start
    texts = [" ".join(line.text for line in f.result["ocr"]) for f in results.frames]
    analysed = sum(1 for f in results.frames if f.reused_from is None)
    return seconds, texts, analysed
