"""Made scenes for the trackers: objects crossing a frame at known speeds, their true
boxes at any sampling, detections made from them (noise, dropouts, low scores), videos
drawn from them, and CLEAR-MOT / IDF1 scores of a tracker's output.

Shared by tests/results/test_tracking.py and the bench (bench/bench_tracking.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from forgesyte_testkit import PALETTE

from forgesyte.plugins.base import Frame
from forgesyte.plugins.objects import ObjectsDetect
from forgesyte.results.tracking import (
    UNMATCHED,
    FrameDetections,
    MotionTracker,
    linear_assignment,
    pairwise_iou,
)
from forgesyte.video.service import FrameResult

Box = tuple[float, float, float, float]
Truth = tuple[int, float, list[tuple[int, str, Box]], FrameDetections]
"""One analysed frame: frame_index, timestamp_s, the objects shown, the detections fed."""
PIPELINE_THRESHOLD = 0.4  # the bundled detector's confidence threshold
MATCH_IOU = 0.5  # CLEAR MOT's overlap for a hypothesis to be the true object
VISIBLE_SHARE = 0.6  # an object counts as shown while this much of its box is in frame


@dataclass(frozen=True)
class Mover:
    """An object moving in a straight line at constant speed from enters_s to leaves_s."""

    object_id: int
    class_name: str
    size_wh: tuple[float, float]
    start_xy: tuple[float, float]  # the box centre at enters_s, pixels
    velocity_xy: tuple[float, float]  # pixels per second
    enters_s: float = 0.0
    leaves_s: float = math.inf

    def box(self, t: float) -> Box | None:
        """Its box at time t, or None when it is not there."""
        if not self.enters_s <= t <= self.leaves_s:
            return None
        dt = t - self.enters_s
        x = self.start_xy[0] + self.velocity_xy[0] * dt
        y = self.start_xy[1] + self.velocity_xy[1] * dt
        w, h = self.size_wh
        return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


@dataclass(frozen=True)
class Scene:
    """Movers in a width x height frame, filmed at fps for seconds."""

    width: int
    height: int
    fps: float
    seconds: float
    movers: tuple[Mover, ...]

    @property
    def frame_count(self) -> int:
        return round(self.seconds * self.fps)

    def sampled(self, sample_fps: float | None) -> list[tuple[int, float]]:
        """(frame_index, timestamp_s) of the frames a job analyses: every frame, or the
        first of each 1/sample_fps-second slot (as the video service picks them)."""
        times = [(i, i / self.fps) for i in range(self.frame_count)]
        if sample_fps is None:
            return times
        picked, slot = [], -1
        for index, t in times:
            if math.floor(t * sample_fps + 1e-9) > slot:
                slot = math.floor(t * sample_fps + 1e-9)
                picked.append((index, t))
        return picked

    def truth(self, t: float) -> list[tuple[int, str, Box]]:
        """(object id, class, box clipped to the frame) of each object shown at time t."""
        shown = []
        for mover in self.movers:
            box = mover.box(t)
            if box is None:
                continue
            clipped = (
                max(box[0], 0.0),
                max(box[1], 0.0),
                min(box[2], float(self.width)),
                min(box[3], float(self.height)),
            )
            area = (box[2] - box[0]) * (box[3] - box[1])
            inside = max(clipped[2] - clipped[0], 0) * max(clipped[3] - clipped[1], 0)
            if inside >= VISIBLE_SHARE * area:
                shown.append((mover.object_id, mover.class_name, clipped))
        return shown


def crossing_scene(fps: float = 30.0, seconds: float = 8.0) -> Scene:
    """Two walkers crossing each other, a faster one behind them, a dog and a car: 640x360."""
    return Scene(
        640,
        360,
        fps,
        seconds,
        (
            Mover(1, "person", (40, 100), (20, 200), (70, 0)),  # 1.75 widths a second
            Mover(2, "person", (40, 100), (620, 210), (-80, 0)),
            Mover(
                3, "person", (36, 90), (-20, 140), (120, 8), enters_s=2.0
            ),  # overtakes 1, crosses 2
            Mover(4, "dog", (60, 40), (600, 300), (-90, -10), enters_s=0.5),
            Mover(5, "car", (120, 60), (-60, 80), (160, 0), enters_s=2.0),  # 1.3 widths/s
        ),
    )


def crowd_scene(fps: float = 30.0, seconds: float = 30.0, walkers: int = 24) -> Scene:
    """A path seen from above at 1280x720: walkers (40 x 100 px) at 50-110 px/s (about
    0.8-2 m/s) in both directions, entering at random times; seeded, so always the same."""
    rng = np.random.default_rng(11)
    movers = []
    for walker in range(walkers):
        leftwards = walker % 2 == 1
        speed = float(rng.uniform(50, 110))
        y = float(rng.uniform(120, 600))
        drift = float(rng.uniform(-12, 12))
        x = 1300.0 if leftwards else -20.0
        movers.append(
            Mover(
                walker + 1,
                "person",
                (40, 100),
                (x, y),
                (-speed if leftwards else speed, drift),
                enters_s=float(rng.uniform(0, seconds * 0.6)),
            )
        )
    return Scene(1280, 720, fps, seconds, tuple(movers))


@dataclass(frozen=True)
class DetectorModel:
    """How made detections differ from the truth: centre and size noise (fractions of the
    box), dropouts, boxes that score under the threshold (flagged low), and boxes on no
    object: clutter (low, about this many a frame) and false alarms (above the threshold,
    about this many a frame), each of a random class of the scene's at a random place."""

    noise: float = 0.05
    dropout: float = 0.1
    low_share: float = 0.1
    clutter: float = 0.5
    false_alarms: float = 0.02
    seed: int = 3

    def frames(
        self, scene: Scene, sample_fps: float | None, *, with_low: bool = True
    ) -> Iterator[Truth]:
        """Per analysed frame: (frame_index, timestamp_s, truth, detections). Without
        with_low, the boxes that would score low are missing, as today's detector drops
        them."""
        rng = np.random.default_rng(self.seed)
        for frame_index, t in scene.sampled(sample_fps):
            truth = scene.truth(t)
            boxes, scores, names, low = [], [], [], []
            for _object_id, name, (x1, y1, x2, y2) in truth:
                draw = rng.random(6)
                if draw[0] < self.dropout:
                    continue
                is_low = bool(draw[1] < self.low_share)
                if is_low and not with_low:
                    continue
                w, h = x2 - x1, y2 - y1
                cx = (x1 + x2) / 2 + w * self.noise * (draw[2] * 2 - 1) * 1.7
                cy = (y1 + y2) / 2 + h * self.noise * (draw[3] * 2 - 1) * 1.7
                w *= 1 + self.noise * (draw[4] * 2 - 1) * 1.7
                h *= 1 + self.noise * (draw[5] * 2 - 1) * 1.7
                boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
                scores.append(0.25 if is_low else 0.5 + 0.4 * float(draw[1]))
                names.append(name)
                low.append(is_low)
            for is_low, rate in ((True, self.clutter), (False, self.false_alarms)):
                if is_low and not with_low:
                    continue
                for _ in range(int(rng.poisson(rate))):
                    mover = scene.movers[int(rng.integers(len(scene.movers)))]
                    w, h = mover.size_wh
                    x, y = rng.uniform(0, scene.width - w), rng.uniform(0, scene.height - h)
                    boxes.append((x, y, x + w, y + h))
                    scores.append(0.2 if is_low else 0.45)
                    names.append(mover.class_name)
                    low.append(is_low)
            yield frame_index, t, truth, FrameDetections.of(
                np.array(boxes).reshape(-1, 4), scores, names, low
            )


Hypotheses = list[tuple[int, Box]]
"""A tracker's output on one analysed frame: (track id, box) per tracked detection."""


@dataclass(frozen=True)
class Scores:
    """CLEAR MOT and identity scores of a tracker on a scene, and per-object figures."""

    mota: float
    idf1: float
    id_switches: int
    false_negatives: int
    false_positives: int
    truths: int
    tracks: int
    tracks_per_object: dict[int, int]  # tracks that spent most of their life on it
    coverage: dict[int, float]  # share of its analysed frames inside its longest track

    @property
    def worst_coverage(self) -> float:
        return min(self.coverage.values(), default=1.0)

    @property
    def most_tracks_per_object(self) -> int:
        return max(self.tracks_per_object.values(), default=0)


def score(
    truths: list[list[tuple[int, str, Box]]],
    hypotheses: list[Hypotheses],
    detected: list[set[int]],
) -> Scores:
    """MOTA (Bernardin & Stiefelhagen 2008) and IDF1 (Ristani et al. 2016) at IoU 0.5.

    A frame's truths keep last frame's hypothesis while it still overlaps them by
    MATCH_IOU; the rest are paired by an optimal assignment on IoU. An identity switch is
    a truth paired with another track than the one it was last paired with. detected:
    per frame, the objects a confident detection found (coverage counts those frames
    only: no tracker can follow what the detector did not report at the start or end).
    """
    last_track: dict[int, int] = {}
    pairs_seen: Counter[tuple[int, int]] = Counter()
    truth_frames: Counter[int] = Counter()
    track_frames: Counter[int] = Counter()
    frames_of: dict[int, list[int]] = {}  # object -> ordinals showing it
    tracks_at: dict[int, dict[int, int]] = {}  # object -> ordinal -> track id
    switches = misses = false = 0
    for ordinal, (truth, hyps) in enumerate(zip(truths, hypotheses, strict=True)):
        matched: dict[int, int] = {}  # truth position -> hypothesis position
        if truth and hyps:
            iou = pairwise_iou(
                np.array([box for _, _, box in truth]), np.array([box for _, box in hyps])
            )
            for g, (object_id, _, _) in enumerate(truth):
                for h, (track_id, _) in enumerate(hyps):
                    keep = last_track.get(object_id) == track_id and iou[g, h] >= MATCH_IOU
                    if keep and h not in matched.values():
                        matched[g] = h
            free_g = [g for g in range(len(truth)) if g not in matched]
            free_h = [h for h in range(len(hyps)) if h not in matched.values()]
            if free_g and free_h:
                cost = 1 - iou[np.ix_(free_g, free_h)]
                for a, b in linear_assignment(cost):
                    if cost[a, b] <= 1 - MATCH_IOU:
                        matched[free_g[a]] = free_h[b]
        for g, h in matched.items():
            object_id, track_id = truth[g][0], hyps[h][0]
            switches += object_id in last_track and last_track[object_id] != track_id
            last_track[object_id] = track_id
            tracks_at.setdefault(object_id, {})[ordinal] = track_id
        for object_id, _, _ in truth:
            truth_frames[object_id] += 1
            if object_id in detected[ordinal]:
                frames_of.setdefault(object_id, []).append(ordinal)
        for track_id, _ in hyps:
            track_frames[track_id] += 1
        misses += len(truth) - len(matched)
        false += len(hyps) - len(matched)
        for g, h in _identity_pairs(truth, hyps):
            pairs_seen[(truth[g][0], hyps[h][0])] += 1
    total = sum(truth_frames.values())
    return Scores(
        mota=1 - (misses + false + switches) / total if total else 1.0,
        idf1=_idf1(pairs_seen, truth_frames, track_frames),
        id_switches=switches,
        false_negatives=misses,
        false_positives=false,
        truths=total,
        tracks=len(track_frames),
        tracks_per_object=_tracks_per_object(pairs_seen, truth_frames),
        coverage={
            object_id: _coverage(frames, tracks_at.get(object_id, {}))
            for object_id, frames in frames_of.items()
        },
    )


def _identity_pairs(truth: list[tuple[int, str, Box]], hyps: Hypotheses) -> list[tuple[int, int]]:
    """Every (truth, hypothesis) position pair overlapping by MATCH_IOU (IDF1 counts them
    all, then pairs identities once over the whole video)."""
    if not truth or not hyps:
        return []
    iou = pairwise_iou(np.array([b for _, _, b in truth]), np.array([b for _, b in hyps]))
    return [(int(g), int(h)) for g, h in zip(*np.nonzero(iou >= MATCH_IOU), strict=True)]


def _idf1(
    pairs_seen: Counter[tuple[int, int]], truth_frames: Counter[int], track_frames: Counter[int]
) -> float:
    objects, tracks = sorted(truth_frames), sorted(track_frames)
    if not objects or not tracks:
        return 0.0
    overlap = np.array([[pairs_seen[(o, t)] for t in tracks] for o in objects], dtype=float)
    true_positives = float(sum(overlap[o, t] for o, t in linear_assignment(-overlap)))
    return 2 * true_positives / (sum(truth_frames.values()) + sum(track_frames.values()))


def _tracks_per_object(
    pairs_seen: Counter[tuple[int, int]], truth_frames: Counter[int]
) -> dict[int, int]:
    owner: dict[int, tuple[int, int]] = {}  # track -> (frames with its object, object)
    for (object_id, track_id), frames in sorted(pairs_seen.items()):
        if frames > owner.get(track_id, (0, 0))[0]:
            owner[track_id] = (frames, object_id)
    counts = Counter(object_id for _, object_id in owner.values())
    return {object_id: counts[object_id] for object_id in truth_frames}


def _coverage(frames: list[int], tracks_at: dict[int, int]) -> float:
    """The share of an object's analysed frames between the first and last sighting of
    the track that saw it most (a missed detection inside a track's span counts)."""
    if not tracks_at:
        return 0.0
    main = Counter(tracks_at.values()).most_common(1)[0][0]
    seen = [ordinal for ordinal, track in tracks_at.items() if track == main]
    first, last = min(seen), max(seen)
    return sum(first <= ordinal <= last for ordinal in frames) / len(frames)


Tracking = Callable[[int, float, FrameDetections], Hypotheses]
"""Feed one analysed frame to a tracker; its (track id, box) per tracked detection."""


def motion_tracking() -> Tracking:
    """A fresh MotionTracker as a tracking function: its boxes with their track ids."""
    tracker = MotionTracker()

    def tracking(frame_index: int, timestamp_s: float, detections: FrameDetections) -> Hypotheses:
        ids = tracker.update(frame_index, timestamp_s, detections)
        return [
            (int(track_id), as_box(detections.xyxy[d]))
            for d, track_id in enumerate(ids)
            if track_id != UNMATCHED
        ]

    return tracking


def as_box(xyxy: np.ndarray) -> Box:
    """An xyxy array row as a Box."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (x1, y1, x2, y2)


def run_scene(
    tracking: Tracking,
    frames: Iterator[Truth],
) -> Scores:
    """Score a tracker over a scene's analysed frames."""
    truths: list[list[tuple[int, str, Box]]] = []
    hypotheses: list[Hypotheses] = []
    detected: list[set[int]] = []
    for frame_index, t, truth, detections in frames:
        truths.append(truth)
        hypotheses.append(tracking(frame_index, t, detections))
        found: set[int] = set()
        high = detections.xyxy[~detections.low]
        if truth and len(high):
            iou = pairwise_iou(np.array([box for _, _, box in truth]), high)
            found = {truth[g][0] for g in np.flatnonzero(iou.max(axis=1) >= MATCH_IOU)}
        detected.append(found)
    return score(truths, hypotheses, detected)


DARKNET_PHOTOS = Path("/usr/share/darknet/data")
"""Debian's darknet photos (scripts/install_services.sh installs them)."""


def _photo(name: str) -> np.ndarray:
    photo = cv2.imread(str(DARKNET_PHOTOS / name))
    if photo is None:
        raise FileNotFoundError(f"darknet's {name} is missing: scripts/install_services.sh")
    return photo


def photo_scene(fps: float = 30.0, seconds: float = 8.0) -> Scene:
    """Two people (one the other's mirror image) crossing, the front one hiding the other
    as they pass, and a dog overtaking them: cut-outs of darknet's person.jpg moved over
    a porch floor (dog.jpg), 640x360."""
    return Scene(
        640,
        360,
        fps,
        seconds,
        (
            Mover(1, "person", (52, 152), (-10, 150), (85, 0)),
            Mover(2, "person", (52, 152), (650, 170), (-75, 0), enters_s=0.3),
            Mover(3, "dog", (110, 70), (-40, 290), (120, 0), enters_s=1.5),
        ),
    )


Paste = Callable[[np.ndarray, Mover, tuple[int, int, int, int]], None]
"""Draws a mover on a frame at its (rounded) true box."""


def write_scene_video(scene: Scene, path: Path, background: np.ndarray, paste: Paste) -> Path:
    """Write a scene's frames as an mp4v MP4: the background with each mover pasted at its
    true box (the later mover in front)."""
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), scene.fps, (scene.width, scene.height)
    )
    try:
        for index in range(scene.frame_count):
            frame = background.copy()
            for mover in scene.movers:
                box = mover.box(index / scene.fps)
                if box is not None:
                    x1, y1, x2, y2 = (round(v) for v in box)
                    paste(frame, mover, (x1, y1, x2, y2))
            writer.write(frame)
    finally:
        writer.release()
    return path


def write_photo_video(scene: Scene, path: Path) -> Path:
    """A photo scene's video: movers as cut-outs over a porch floor."""
    floor = cv2.resize(_photo("dog.jpg")[400:576], (scene.width, scene.height))
    person = _photo("person.jpg")
    sprites = {"person": person[96:380, 183:280], "dog": person[258:354, 58:210]}

    def paste(frame: np.ndarray, mover: Mover, box: tuple[int, int, int, int]) -> None:
        x1, y1, x2, y2 = box
        sprite = cv2.resize(sprites[mover.class_name], (x2 - x1, y2 - y1))
        if mover.velocity_xy[0] < 0:
            sprite = sprite[:, ::-1]
        left, top = max(x1, 0), max(y1, 0)
        right, bottom = min(x2, scene.width), min(y2, scene.height)
        if right > left and bottom > top:
            frame[top:bottom, left:right] = sprite[top - y1 : bottom - y1, left - x1 : right - x1]

    return write_scene_video(scene, path, floor, paste)


class FlaggingDetector:
    """The bundled detector (objects.detect) with its emission floor lowered to `floor`,
    as a frame analyser: the boxes under PIPELINE_THRESHOLD are what a low-score pass
    needs (see `detected_frames`)."""

    def __init__(self, floor: float) -> None:
        self.model = ObjectsDetect(confidence_threshold=floor)

    def run(self, frame: Frame) -> dict[str, object]:
        return {"detect": self.model.detect(frame).to_json()}


def detected_frames(scene: Scene, frames: list[FrameResult], with_low: bool) -> Iterator[Truth]:
    """A FlaggingDetector's analysed frames as tracker input: detections of the scene's
    classes, those under PIPELINE_THRESHOLD flagged low, or left out (as today) without
    with_low."""
    classes = {mover.class_name for mover in scene.movers}
    for frame in frames:
        items = [
            dict(item, low=item["confidence"] < PIPELINE_THRESHOLD)
            for item in frame.result["detect"]
            if item["class_name"] in classes
        ]
        items = [item for item in items if with_low or not item["low"]]
        truth = scene.truth(frame.timestamp_s)
        yield frame.frame_index, frame.timestamp_s, truth, FrameDetections.from_json(items)


def colour_crossing_scene(fps: float = 30.0, seconds: float = 8.0) -> Scene:
    """Three walkers (20 x 44 px boxes) crossing a 320x180 frame at 45, 55 and 90 px/s
    (2.3 to 4.5 box widths a second), each pair crossing once, at 3.9 s, 4.5 s and 6.0 s,
    each entering and leaving at its own time: for `write_colour_video`."""
    return Scene(
        320,
        180,
        fps,
        seconds,
        (
            Mover(1, "person", (20, 44), (-5, 90), (45, 0)),
            Mover(2, "person", (20, 44), (325, 100), (-55, 0), enters_s=1.0),
            Mover(3, "person", (20, 44), (-5, 80), (90, 0), enters_s=3.0),
        ),
    )


def write_colour_video(scene: Scene, path: Path) -> Path:
    """A scene's video for testkit's colour_boxes detector: movers as boxes of their own
    colour (testkit's PALETTE, by object id) over a soft grey texture."""
    rng = np.random.default_rng(5)
    noise = rng.uniform(100, 150, (scene.height // 8, scene.width // 8)).astype(np.uint8)
    grey = cv2.resize(noise, (scene.width, scene.height), interpolation=cv2.INTER_CUBIC)

    def paste(frame: np.ndarray, mover: Mover, box: tuple[int, int, int, int]) -> None:
        colour = PALETTE[(mover.object_id - 1) % len(PALETTE)]
        cv2.rectangle(frame, box[:2], (box[2] - 1, box[3] - 1), colour, -1)

    return write_scene_video(scene, path, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), paste)


@dataclass(frozen=True)
class TrackFigures:
    """A timeline's tracks against a scene's objects: how many tracks, and per object
    the share of the analysed frames showing it inside its track's span."""

    tracks: int
    coverage: dict[int, float]
    identity_switches: int  # tracks that began on another object or went on to one


def timeline_track_figures(
    scene: Scene, analysed: list[tuple[int, float]], spans: list[tuple[int, int]]
) -> TrackFigures:
    """Score a timeline's object tracks, (first_frame, last_frame) each, against the
    scene's objects on the analysed frames, (frame_index, timestamp_s) each.

    Each object is paired with the track spanning most of its analysed frames (an
    optimal assignment). A track whose span starts before its object's first analysed
    frame or ends after its last, by more than one analysed frame, began on another
    object or went on to one: an identity switch (the scene's objects enter and leave
    at different times, so a switch shows in the spans).
    """
    shown: dict[int, list[int]] = {}
    for frame_index, t in analysed:
        for object_id, _, _ in scene.truth(t):
            shown.setdefault(object_id, []).append(frame_index)
    objects = sorted(shown)
    inside = np.array(
        [[sum(first <= f <= last for f in shown[o]) for first, last in spans] for o in objects],
        dtype=float,
    ).reshape(len(objects), len(spans))
    coverage = {o: 0.0 for o in objects}
    switches = 0
    indices = [frame_index for frame_index, _ in analysed]
    for row, column in linear_assignment(-inside) if spans else []:
        frames = shown[objects[row]]
        coverage[objects[row]] = inside[row, column] / len(frames)
        first, last = spans[column]
        early = indices.index(frames[0]) - indices.index(first) if first in indices else 0
        late = indices.index(last) - indices.index(frames[-1]) if last in indices else 0
        switches += early > 1 or late > 1
    return TrackFigures(len(spans), coverage, switches)
