"""Row t: object tracks under sampling, the greedy IoU tracker the timeline used before
(kept here as the baseline) against MotionTracker (results/tracking.py, what the timeline
uses), CLEAR-MOT and IDF1 side by side.

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

from forgesyte.results.timeline import greedy_matches
from forgesyte.results.tracking import FrameDetections, pairwise_iou
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
TRACK_IOU = 0.3  # the IoU tracker's overlap with a track's last box that continues it
MAX_MISSED_FRAMES = 1  # analysed frames an IoU track may miss without ending


@dataclass
class _IouTrack:
    track_id: int
    class_name: str
    xyxy: np.ndarray  # the last box, matched on
    last_ordinal: int


def iou_tracking() -> Tracking:
    """The greedy IoU tracker the timeline used before MotionTracker, as a run_scene
    tracking function (row t's baseline; it sees only the boxes above the threshold).

    In each frame, detections are matched to the open tracks of the same class by the
    overlap of their box with the track's last box (best pairs first, at least
    TRACK_IOU); an unmatched detection opens a track; a track not seen for more than
    MAX_MISSED_FRAMES analysed frames is closed.
    """
    open_tracks: list[_IouTrack] = []
    next_id, ordinal = 1, 0

    def tracking(frame_index: int, timestamp_s: float, detections: FrameDetections) -> Hypotheses:
        nonlocal open_tracks, next_id, ordinal
        high = [d for d in range(len(detections)) if not detections.low[d]]
        boxes, names = detections.xyxy[high], [detections.class_names[d] for d in high]
        overlap = pairwise_iou(boxes, np.array([t.xyxy for t in open_tracks]).reshape(-1, 4))
        pairs = sorted(
            (-float(overlap[d, t]), d, t)
            for d in range(len(high))
            for t, track in enumerate(open_tracks)
            if track.class_name == names[d]
        )
        used_detections, used_tracks = set[int](), set[int]()
        seen: Hypotheses = []
        for d, t in greedy_matches(pairs, TRACK_IOU, used_detections, used_tracks):
            track = open_tracks[t]
            track.xyxy, track.last_ordinal = boxes[d], ordinal
            seen.append((track.track_id, as_box(boxes[d])))
        for d in range(len(high)):
            if d not in used_detections:
                open_tracks.append(_IouTrack(next_id, names[d], boxes[d], ordinal))
                seen.append((next_id, as_box(boxes[d])))
                next_id += 1
        open_tracks = [t for t in open_tracks if t.last_ordinal >= ordinal - MAX_MISSED_FRAMES]
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
    once as the detector is (>= 0.4) and once with the boxes from LOW_FLOOR flagged low."""
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
