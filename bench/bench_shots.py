"""Row v: shots found on made edits (precision, recall, F1 at one frame), and the cost of
decoding every frame small and grey against a full decode of every frame.

The edits and their scoring are the tests' own (tests/video/shot_videos.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench_videos import CACHE_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' edits

from forgesyte.video.shots import ShotDetector, grey_frames
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
        detector = ShotDetector(FPS)
        for frame in grey_frames(edit_video(name, edit)):
            detector.add(frame.frame_index, frame.timestamp_s, frame.grey)
        total = total + score_cuts(detector.finish(), edit.cuts())
    return total


def grey_decode(path: Path, thread_type: str, detect: bool) -> Timing:
    """Time to decode every frame small and grey (and, with detect, find the shots)."""
    wall, cpu = time.perf_counter(), time.process_time()
    detector = ShotDetector(FPS)
    for frame in grey_frames(path, thread_type=thread_type):
        if detect:
            detector.add(frame.frame_index, frame.timestamp_s, frame.grey)
    detector.finish()
    return time.perf_counter() - wall, time.process_time() - cpu
