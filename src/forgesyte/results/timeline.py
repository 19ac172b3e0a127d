"""The video-level timeline: text segments and object tracks, built incrementally.

`TimelineBuilder.add` takes frame entries (``{"frame_index", "timestamp_s", "result"}``)
in frame order; `build` gives ``{"text": [...], "objects": [...]}`` sorted by start_s, then
text / track_id. Memory grows with the number of segments and tracks, not of frames.

Text lines are any list items ``{"text", "confidence", "box"}`` in an output node (``ocr.read``)
or in a detection's ``text_lines``. Detections are any list items ``{"xyxy", "confidence",
"class_name"}`` (see forgesyte.plugins.detections), whatever detector gave them.

The tracker is a small IoU tracker written here (see `ObjectTracker`): Roboflow's
``trackers`` requires the GUI ``opencv-python`` beside our headless OpenCV, and
``supervision`` would bring matplotlib, PyAV and SciPy for one greedy matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

TEXT_SIMILARITY = (
    0.8  # similarity (see text_similarity) at which two normalised readings are the same line
)
MAX_MISSED_FRAMES = 1  # analysed frames a line or object may miss without ending
TRACK_IOU = 0.3  # box overlap at which a detection continues a track
CONFIDENCE_DIGITS = 4

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


@dataclass
class _Run:
    """What segments and tracks share: frames seen, first/last, and the best observation."""

    first_frame: int
    start_s: float
    last_frame: int
    end_s: float
    last_ordinal: int  # the analysed-frame number (0, 1, 2...) it was last seen in
    confidence: float
    box: Any
    frames: int = 1

    def extend(self, frame_index: int, timestamp_s: float, ordinal: int) -> None:
        self.last_frame, self.end_s, self.last_ordinal = frame_index, timestamp_s, ordinal
        self.frames += 1

    def span(self) -> dict[str, Any]:
        return {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "frames": self.frames,
            "confidence": round(self.confidence, CONFIDENCE_DIGITS),
            "box": self.box,
        }


@dataclass
class _Segment(_Run):
    key: str = ""  # the normalised reading it is matched on (the best one's)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, **self.span()}


@dataclass
class _Track(_Run):
    track_id: int = 0
    class_name: str = ""
    xyxy: list[float] = field(default_factory=list)  # the last box, matched on

    def to_json(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "class_name": self.class_name, **self.span()}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _is_text_line(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("text"), str) and "box" in item


def _is_detection(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("xyxy"), list)
        and len(item["xyxy"]) == 4
        and isinstance(item.get("class_name"), str)
    )


def frame_observations(
    result: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The text lines and detections in one frame's result (output nodes in id order)."""
    lines: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for node_id in sorted(result):
        value = result[node_id]
        if not isinstance(value, list):
            continue
        for item in value:
            if _is_text_line(item):
                lines.append(item)
            elif _is_detection(item):
                detections.append(item)
                lines.extend(line for line in item.get("text_lines") or () if _is_text_line(line))
    return lines, detections


class TextSegmenter:
    """Merges the same line of text across consecutive analysed frames into segments.

    Each frame's lines are matched to the open segments by similarity of their normalised
    readings (best pairs first, one line per segment); an unmatched line opens a segment. A
    segment not seen for more than MAX_MISSED_FRAMES analysed frames is closed.
    """

    def __init__(self) -> None:
        self._open: list[_Segment] = []
        self.closed: list[_Segment] = []

    def add(self, ordinal: int, frame_index: int, timestamp_s: float, lines: list[Any]) -> None:
        """Feed one analysed frame's text lines."""
        readings = [(normalise_text(line["text"]), line) for line in lines]
        readings = [(key, line) for key, line in readings if key]
        used_readings: set[int] = set()
        used_segments: set[int] = set()
        # exact readings first (the common case, and cheap), then the near ones
        waiting: dict[str, list[int]] = {}
        for s, segment in enumerate(self._open):
            waiting.setdefault(segment.key, []).append(s)
        matches: list[tuple[int, int]] = []
        for r, (key, _line) in enumerate(readings):
            candidates = waiting.get(key)
            if candidates:
                s = candidates.pop(0)
                used_readings.add(r)
                used_segments.add(s)
                matches.append((r, s))
        pairs = sorted(
            (-text_similarity(key, self._open[s].key, TEXT_SIMILARITY), r, s)
            for r, (key, _line) in enumerate(readings)
            if r not in used_readings
            for s in range(len(self._open))
            if s not in used_segments
        )
        for negative_similarity, r, s in pairs:
            if -negative_similarity < TEXT_SIMILARITY:
                break
            if r in used_readings or s in used_segments:
                continue
            used_readings.add(r)
            used_segments.add(s)
            matches.append((r, s))
        for r, s in matches:
            segment = self._open[s]
            key, line = readings[r]
            segment.extend(frame_index, timestamp_s, ordinal)
            confidence = _number(line.get("confidence"))
            if confidence > segment.confidence:
                segment.confidence, segment.box = confidence, line["box"]
                segment.key, segment.text = key, _SPACES.sub(" ", line["text"]).strip()
        for r, (key, line) in enumerate(readings):
            if r not in used_readings:
                self._open.append(
                    _Segment(
                        first_frame=frame_index,
                        start_s=timestamp_s,
                        last_frame=frame_index,
                        end_s=timestamp_s,
                        last_ordinal=ordinal,
                        confidence=_number(line.get("confidence")),
                        box=line["box"],
                        key=key,
                        text=_SPACES.sub(" ", line["text"]).strip(),
                    )
                )
        self._close_older_than(ordinal - MAX_MISSED_FRAMES)

    def _close_older_than(self, ordinal: int) -> None:
        still_open: list[_Segment] = []
        for segment in self._open:
            (still_open if segment.last_ordinal >= ordinal else self.closed).append(segment)
        self._open = still_open

    def finish(self) -> list[dict[str, Any]]:
        """Close every segment; all segments sorted by start_s, then text."""
        self.closed.extend(self._open)
        self._open = []
        segments = [segment.to_json() for segment in self.closed]
        return sorted(segments, key=lambda s: (s["start_s"], s["text"], s["first_frame"]))


class ObjectTracker:
    """A greedy IoU tracker: one track per object followed across analysed frames.

    In each frame, detections are matched to the open tracks of the same class by the
    overlap of their box with the track's last box (best pairs first, at least TRACK_IOU);
    an unmatched detection opens a track. A track not seen for more than
    MAX_MISSED_FRAMES analysed frames is closed. Track ids count from 1 in order of opening.
    """

    def __init__(self) -> None:
        self._open: list[_Track] = []
        self.closed: list[_Track] = []
        self._next_id = 1

    def add(
        self, ordinal: int, frame_index: int, timestamp_s: float, detections: list[Any]
    ) -> None:
        """Feed one analysed frame's detections."""
        boxes = [[_number(v) for v in detection["xyxy"]] for detection in detections]
        pairs = sorted(
            (-iou(box, track.xyxy), d, t)
            for d, box in enumerate(boxes)
            for t, track in enumerate(self._open)
            if track.class_name == detections[d]["class_name"]
        )
        used_detections: set[int] = set()
        used_tracks: set[int] = set()
        for negative_iou, d, t in pairs:
            if -negative_iou < TRACK_IOU:
                break
            if d in used_detections or t in used_tracks:
                continue
            used_detections.add(d)
            used_tracks.add(t)
            track = self._open[t]
            track.extend(frame_index, timestamp_s, ordinal)
            track.xyxy = boxes[d]
            confidence = _number(detections[d].get("confidence"))
            if confidence > track.confidence:
                track.confidence, track.box = confidence, detections[d]["xyxy"]
        for d, detection in enumerate(detections):
            if d not in used_detections:
                self._open.append(
                    _Track(
                        first_frame=frame_index,
                        start_s=timestamp_s,
                        last_frame=frame_index,
                        end_s=timestamp_s,
                        last_ordinal=ordinal,
                        confidence=_number(detection.get("confidence")),
                        box=detection["xyxy"],
                        track_id=self._next_id,
                        class_name=detection["class_name"],
                        xyxy=boxes[d],
                    )
                )
                self._next_id += 1
        still_open: list[_Track] = []
        for track in self._open:
            closing = track.last_ordinal < ordinal - MAX_MISSED_FRAMES
            (self.closed if closing else still_open).append(track)
        self._open = still_open

    def finish(self) -> list[dict[str, Any]]:
        """Close every track; all tracks sorted by start_s, then track_id."""
        self.closed.extend(self._open)
        self._open = []
        tracks = [track.to_json() for track in self.closed]
        return sorted(tracks, key=lambda t: (t["start_s"], t["track_id"]))


class TimelineBuilder:
    """Feeds frame entries to a TextSegmenter and an ObjectTracker; builds the timeline."""

    def __init__(self) -> None:
        self.text = TextSegmenter()
        self.objects = ObjectTracker()
        self._ordinal = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Feed one frame entry (in frame order)."""
        frame_index = int(entry["frame_index"])
        timestamp_s = float(entry["timestamp_s"])
        result = entry.get("result")
        lines, detections = frame_observations(result if isinstance(result, dict) else {})
        self.text.add(self._ordinal, frame_index, timestamp_s, lines)
        self.objects.add(self._ordinal, frame_index, timestamp_s, detections)
        self._ordinal += 1

    def build(self) -> dict[str, Any]:
        """The timeline: ``{"text": [...], "objects": [...]}``."""
        return {"text": self.text.finish(), "objects": self.objects.finish()}


def timeline_of(entries: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """The timeline of a sequence of frame entries (for tests and tools)."""
    builder = TimelineBuilder()
    for entry in entries:
        builder.add(entry)
    return builder.build()
