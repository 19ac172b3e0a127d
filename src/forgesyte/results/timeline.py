"""The video-level timeline: text segments and object tracks, built incrementally.

`TimelineBuilder.add` takes stored frame entries (``{"frame_index", "timestamp_s",
"result"}`` as JSON) in frame order; `build` gives ``{"text": [...], "objects": [...]}``
sorted by start_s, then text / track_id. Memory grows with the number of segments and
tracks, not of frames. Results are read by `frame_observations` (the preview's reader too):
`TextLine`s (``ocr.read``'s, and those read inside detections) and `Detections`.

The tracker is a small IoU tracker written here (see `ObjectTracker`): Roboflow's
``trackers`` requires the GUI ``opencv-python`` beside our headless OpenCV, and
``supervision`` would bring matplotlib, PyAV and SciPy for one greedy matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from rapidfuzz import fuzz

from forgesyte.plugins.detections import Detections, is_detection
from forgesyte.plugins.values import CONFIDENCE_DIGITS, TextLine, TextLines, json_ready

TEXT_SIMILARITY = 0.8  # text_similarity at which two normalised readings are the same line
MAX_MISSED_FRAMES = 1  # analysed frames a line or object may miss without ending
TRACK_IOU = 0.3  # box overlap at which a detection continues a track

_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Case-folded, with runs of whitespace made one space and the ends trimmed."""
    return _SPACES.sub(" ", text).strip().casefold()


def text_similarity(a: str, b: str, floor: float = 0.0) -> float:
    """How alike two normalised readings are, 0..1; below `floor` it may answer 0.

    rapidfuzz's ratio: 1 - the normalised Indel distance (difflib's measure, in C).
    """
    if a == b:
        return 1.0
    return float(fuzz.ratio(a, b, score_cutoff=floor * 100)) / 100


def iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Sighting:
    """Where an observation was made: the frame, its time and its analysed-frame number."""

    frame_index: int
    timestamp_s: float
    ordinal: int  # 0, 1, 2... over the analysed frames


@dataclass
class _Run:
    """What segments and tracks share: frames seen, first/last, and the best observation."""

    first: Sighting
    last: Sighting
    confidence: float
    box: Any
    frames: int = 1

    @classmethod
    def first_seen(cls, at: Sighting, confidence: float, box: Any, **fields: Any) -> Self:
        """A run opened by one observation (fields: the rest of the run's fields)."""
        return cls(first=at, last=at, confidence=confidence, box=box, **fields)

    def seen_again(self, at: Sighting, confidence: float, box: Any) -> bool:
        """Extend the run to this observation; True when it is the surest one so far (its
        confidence and box are kept)."""
        self.last = at
        self.frames += 1
        if confidence <= self.confidence:
            return False
        self.confidence, self.box = confidence, box
        return True

    def to_json(self) -> dict[str, Any]:
        """The run as a timeline entry (subclasses add what they follow)."""
        return {
            "start_s": self.first.timestamp_s,
            "end_s": self.last.timestamp_s,
            "first_frame": self.first.frame_index,
            "last_frame": self.last.frame_index,
            "frames": self.frames,
            "confidence": round(self.confidence, CONFIDENCE_DIGITS),
            "box": json_ready(self.box),
        }


@dataclass
class _Segment(_Run):
    key: str = ""  # the normalised reading it is matched on (the best one's)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, **super().to_json()}


@dataclass
class _Track(_Run):
    track_id: int = 0
    class_name: str = ""
    xyxy: list[float] = field(default_factory=list)  # the last box, matched on

    def to_json(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "class_name": self.class_name, **super().to_json()}


def frame_observations(result: Mapping[str, Any]) -> tuple[TextLines, Detections]:
    """The text lines and detections in one frame's stored result: the one reader of them.

    Output nodes in id order, items in list order; a detection's text lines where it
    stands. Items that are neither (`TextLine.from_json`, `is_detection`) are ignored.
    """
    lines: list[TextLine] = []
    found: list[dict[str, Any]] = []
    for node_id in sorted(result):
        value = result[node_id]
        for item in value if isinstance(value, list) else ():
            line = TextLine.from_json(item)
            if line is not None:
                lines.append(line)
            elif is_detection(item):
                found.append(item)
                lines.extend(TextLines.from_json(item.get("text_lines")))
    return TextLines(lines), Detections.from_json(found)


RunT = TypeVar("RunT", bound=_Run)


def greedy_matches(
    pairs: Iterable[tuple[float, int, int]], floor: float, used_a: set[int], used_b: set[int]
) -> list[tuple[int, int]]:
    """Pairs (a, b) taken best first, each a and each b at most once, none scoring below
    floor. pairs are (-score, a, b) sorted ascending; used_a and used_b gain the taken."""
    matches: list[tuple[int, int]] = []
    for negative_score, a, b in pairs:
        if -negative_score < floor:
            break
        if a in used_a or b in used_b:
            continue
        used_a.add(a)
        used_b.add(b)
        matches.append((a, b))
    return matches


class _RunFollower(Generic[RunT]):
    """Runs followed across analysed frames: open ones are extended by each frame's
    observations; one not seen for more than MAX_MISSED_FRAMES analysed frames is closed."""

    order: tuple[str, ...]  # the JSON keys `finish` sorts by

    def __init__(self) -> None:
        self._open: list[RunT] = []
        self.closed: list[RunT] = []

    def _close_unseen(self, ordinal: int) -> None:
        """Close the runs not seen in the last MAX_MISSED_FRAMES frames before ordinal."""
        still_open: list[RunT] = []
        for run in self._open:
            closing = run.last.ordinal < ordinal - MAX_MISSED_FRAMES
            (self.closed if closing else still_open).append(run)
        self._open = still_open

    def finish(self) -> list[dict[str, Any]]:
        """Close every run; all of them as JSON, sorted by `order`."""
        self.closed.extend(self._open)
        self._open = []
        runs = [run.to_json() for run in self.closed]
        return sorted(runs, key=lambda run: tuple(run[key] for key in self.order))


class TextSegmenter(_RunFollower[_Segment]):
    """Merges the same line of text across consecutive analysed frames into segments.

    Each frame's lines are matched to the open segments by similarity of their normalised
    readings (best pairs first, one line per segment); an unmatched line opens a segment. A
    segment not seen for more than MAX_MISSED_FRAMES analysed frames is closed.
    """

    order = ("start_s", "text", "first_frame")

    def add(self, at: Sighting, lines: Sequence[TextLine]) -> None:
        """Feed one analysed frame's text lines."""
        readings = [(key, line) for line in lines if (key := normalise_text(line.text))]
        used_readings, used_segments = set[int](), set[int]()
        # exact readings first (the common case, and cheap), then the near ones
        waiting: dict[str, list[int]] = {}
        for s, segment in enumerate(self._open):
            waiting.setdefault(segment.key, []).append(s)
        exact = [(-1.0, r, s) for r, (key, _) in enumerate(readings) for s in waiting.get(key, ())]
        matches = greedy_matches(exact, 1.0, used_readings, used_segments)
        pairs = sorted(
            (-text_similarity(key, self._open[s].key, TEXT_SIMILARITY), r, s)
            for r, (key, _line) in enumerate(readings)
            if r not in used_readings
            for s in range(len(self._open))
            if s not in used_segments
        )
        matches += greedy_matches(pairs, TEXT_SIMILARITY, used_readings, used_segments)
        for r, s in matches:
            key, line = readings[r]
            segment = self._open[s]
            if segment.seen_again(at, float(line.confidence), line.box):
                segment.key, segment.text = key, _SPACES.sub(" ", line.text).strip()
        for r, (key, line) in enumerate(readings):
            if r not in used_readings:
                text = _SPACES.sub(" ", line.text).strip()
                confidence = float(line.confidence)
                segment = _Segment.first_seen(at, confidence, line.box, key=key, text=text)
                self._open.append(segment)
        self._close_unseen(at.ordinal)


class ObjectTracker(_RunFollower[_Track]):
    """A greedy IoU tracker: one track per object followed across analysed frames.

    In each frame, detections are matched to the open tracks of the same class by the
    overlap of their box with the track's last box (best pairs first, at least TRACK_IOU);
    an unmatched detection opens a track. A track not seen for more than
    MAX_MISSED_FRAMES analysed frames is closed. Track ids count from 1 in order of opening.
    """

    order = ("start_s", "track_id")

    def __init__(self) -> None:
        super().__init__()
        self._next_id = 1

    def add(self, at: Sighting, detections: Detections) -> list[int]:
        """Feed one analysed frame's detections; the track id each one joined, in order."""
        boxes, names = detections.xyxy.tolist(), detections.class_names
        confidence = detections.confidence.tolist()
        pairs = sorted(
            (-iou(box, track.xyxy), d, t)
            for d, box in enumerate(boxes)
            for t, track in enumerate(self._open)
            if track.class_name == names[d]
        )
        used_detections, used_tracks = set[int](), set[int]()
        track_ids = [0] * len(boxes)
        for d, t in greedy_matches(pairs, TRACK_IOU, used_detections, used_tracks):
            track = self._open[t]
            track.xyxy = boxes[d]
            track.seen_again(at, confidence[d], boxes[d])
            track_ids[d] = track.track_id
        for d, box in enumerate(boxes):
            if d not in used_detections:
                track = _Track.first_seen(
                    at, confidence[d], box, track_id=self._next_id, class_name=names[d], xyxy=box
                )
                self._open.append(track)
                track_ids[d] = self._next_id
                self._next_id += 1
        self._close_unseen(at.ordinal)
        return track_ids


class TimelineBuilder:
    """Feeds frame entries to a TextSegmenter and an ObjectTracker; builds the timeline."""

    def __init__(self) -> None:
        self.text = TextSegmenter()
        self.objects = ObjectTracker()
        self._ordinal = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Feed one stored frame entry (in frame order)."""
        at = Sighting(int(entry["frame_index"]), float(entry["timestamp_s"]), self._ordinal)
        result = entry.get("result")
        lines, detections = frame_observations(result if isinstance(result, dict) else {})
        self.text.add(at, lines)
        self.objects.add(at, detections)
        self._ordinal += 1

    def build(self) -> dict[str, Any]:
        """The timeline: ``{"text": [...], "objects": [...]}``."""
        return {"text": self.text.finish(), "objects": self.objects.finish()}
