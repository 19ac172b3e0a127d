"""Row v: shots found on made edits (precision, recall, F1 at one frame), the cost of
decoding every frame small and grey against a full decode of every frame, and a
sample_fps=1 job's analysis with and without detect_shots.

The edits and their scoring are the tests' own (tests/video/shot_videos.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench_videos import CACHE_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' edits

from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService
from forgesyte.video.shots import find_shots, grey_frames
from tests.video.shot_videos import EDITS, FPS, CutScores, Edit, random_edit, score_cuts

Timing = tuple[float, float]
"""(wall seconds, CPU seconds of this process, decoder threads included)."""


def edits(quick: bool) -> dict[str, Edit]:
    """The tests' three edits and seeded random ones (6 in a quick run, 24 in a full)."""
    chosen = dict(EDITS)
    for seed in range(6 if quick else 24):
        chosen[f"random {seed}"] = random_edit(seed)
    return chosen


def edit_video(name: str, edit: Edit) -> Path:
    """An edit written as MP4 once, cached."""
    path = CACHE_DIR / f"shots_{name.replace(' ', '_')}.mp4"
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = edit.write(path.with_suffix(".part.mp4"))
        partial.rename(path)
    return path


def cut_scores(quick: bool) -> CutScores:
    """Found cuts against the edits' joins, summed over every edit."""
    total = CutScores(0, 0, 0)
    for name, edit in edits(quick).items():
        total = total + score_cuts(find_shots(edit_video(name, edit), FPS), edit.cuts())
    return total


def grey_decode(path: Path, thread_type: str, detect: bool) -> Timing:
    """Time to decode every frame small and grey (with detect: find the shots, as a job
    does, `find_shots`)."""
    wall, cpu = time.perf_counter(), time.process_time()
    if detect:
        find_shots(path, FPS)
    else:
        for _frame in grey_frames(path, thread_type=thread_type):
            pass
    return time.perf_counter() - wall, time.process_time() - cpu


def sampled_job(path: Path, runner: PipelineRunner, detect_shots: bool) -> Timing:
    """Time of a sample_fps=1 job's analysis as the analysis child runs it: the video
    service on the sampled frames, then, with detect_shots, the shot pass over every
    frame (`find_shots` at the video's rate)."""
    wall, cpu = time.perf_counter(), time.process_time()
    service = VideoFilePipelineService(runner)
    summary = service.analyse(path, SamplingOptions(sample_fps=1.0), on_frame=lambda _: None)
    if detect_shots:
        find_shots(path, summary.video.fps)
    return time.perf_counter() - wall, time.process_time() - cpu
