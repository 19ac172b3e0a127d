"""Row t: object tracks under sampling, the greedy IoU tracker (results/timeline.py)
against MotionTracker (results/tracking.py), CLEAR-MOT and IDF1 side by side.

The scenes, their made detections and the scoring are the tests' own
(tests/results/tracking_scenes.py), so the bench and the tests measure the same thing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_videos import CACHE_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' scenes

from forgesyte.results.timeline import ObjectTracker
from forgesyte.results.tracking import FrameDetections
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService
from tests.results.tracking_scenes import (
    PIPELINE_THRESHOLD,
    DetectorModel,
    FlaggingDetector,
    Hypotheses,
    Scene,
    Scores,
    Tracking,
    as_box,
    crossing_scene,
    crowd_scene,
    detected_frames,
    motion_tracking,
    photo_scene,
    run_scene,
    write_photo_video,
)

RATES = (1.0, 2.0, 10.0)  # analysed frames a second
LOW_FLOOR = 0.25  # the emission floor a low-score pass would need


def iou_tracking() -> Tracking:
    """The timeline's greedy IoU tracker as a run_scene tracking function; it sees only
    the boxes above the threshold (it has no low-score pass).

    It gives no per-frame output, so this reads its open tracks after each frame: a
    bench-only look at private state (`_open`, `last`, `xyxy`), to be dropped with it.
    """
    tracker = ObjectTracker()
    ordinal = 0

    def tracking(frame_index: int, timestamp_s: float, detections: FrameDetections) -> Hypotheses:
        nonlocal ordinal
        items = [
            {
                "xyxy": [float(v) for v in detections.xyxy[d]],
                "confidence": float(detections.confidence[d]),
                "class_name": detections.class_names[d],
            }
            for d in range(len(detections))
            if not detections.low[d]
        ]
        tracker.add(ordinal, frame_index, timestamp_s, items)
        seen = [
            (track.track_id, as_box(np.array(track.xyxy)))
            for track in tracker._open
            if track.last.ordinal == ordinal
        ]
        ordinal += 1
        return seen

    return tracking


@dataclass(frozen=True)
class Comparison:
    """One scene at one rate: the IoU tracker's scores and MotionTracker's."""

    label: str
    rate: float
    old: Scores
    new: Scores


def made_detections(scene: Scene, label: str) -> list[Comparison]:
    """Both trackers on made detections (noise, 10 % missed, 10 % low, clutter)."""
    model = DetectorModel()
    return [
        Comparison(
            label,
            rate,
            run_scene(iou_tracking(), model.frames(scene, rate)),
            run_scene(motion_tracking(), model.frames(scene, rate)),
        )
        for rate in RATES
    ]


def photo_video(quick: bool) -> list[Comparison]:
    """Both trackers on the bundled detector's boxes over the photo video; MotionTracker
    once as the detector is (>= 0.35) and once with the boxes from LOW_FLOOR flagged low."""
    scene = photo_scene(seconds=6.0 if quick else 8.0)
    path = CACHE_DIR / f"tracking_photo_{scene.frame_count}f.mp4"
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        write_photo_video(scene, path)
    detector = FlaggingDetector(LOW_FLOOR)
    comparisons = []
    for rate in RATES:
        analysed = VideoFilePipelineService(detector).run(path, SamplingOptions(sample_fps=rate))
        old = run_scene(iou_tracking(), detected_frames(scene, analysed.frames, False))
        new = run_scene(motion_tracking(), detected_frames(scene, analysed.frames, False))
        comparisons.append(Comparison("photo video, detect", rate, old, new))
        comparisons.append(
            Comparison(
                f"  same, low boxes {LOW_FLOOR}-{PIPELINE_THRESHOLD} flagged",
                rate,
                old,
                run_scene(motion_tracking(), detected_frames(scene, analysed.frames, True)),
            )
        )
    return comparisons


def comparisons(quick: bool) -> list[Comparison]:
    """Every scene of row t at 1, 2 and 10 analysed frames a second."""
    crowd = crowd_scene(seconds=15.0 if quick else 30.0, walkers=12 if quick else 24)
    return (
        made_detections(crossing_scene(), "crossing, made detections")
        + made_detections(crowd, f"crowd of {len(crowd.movers)}, made detections")
        + photo_video(quick)
    )
