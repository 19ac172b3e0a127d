"""The video-level timeline: text segments, object tracks and shots, built incrementally.

`TimelineBuilder.add` takes stored frame entries (``{"frame_index", "timestamp_s",
"result"}`` as JSON) in frame order; `build` gives ``{"text": [...], "objects": [...],
"shots": [...]}``, text and objects sorted by start_s, then text / track_id. Memory grows
with the number of segments and tracks, not of frames. Results are read by
`frame_observations` (the preview's reader too): `TextLine`s (``ocr.read``'s, and those
read inside detections) and `Detections`.

What the timeline leaves out, the per-frame results keep: a reading that is no text
(`is_plausible_text`: OCR reads "_" on a plain coloured bar, or one glyph in a box the
size of the frame) never opens a segment. Objects are followed by `MotionTracker`
(`tracking.py`), which holds a track when analysed frames are a second apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from forgesyte.plugins.detections import Detections, is_detection
from forgesyte.plugins.values import (
    CONFIDENCE_DIGITS,
    JsonConvertible,
    TextLine,
    TextLines,
    json_ready,
)
from forgesyte.results.tracking import FrameDetections, MotionTracker

TEXT_SIMILARITY = 0.8  # text_similarity at which two normalised readings are the same line
MAX_MISSED_FRAMES = 1  # analysed frames a line may miss without ending
# What a reading needs to count as a line of text in the timeline (bench row r measures
# the floor: on the known-words videos, and copies made harder to read (half size, JPEG
# quality 15, blurred), no line holding a real word read under 0.72; the junk seen on
# real footage, one CJK glyph on an animated clip with no text, read 0.59):
MIN_TEXT_CONFIDENCE = 0.6
MAX_TEXT_BOX_SHARE = 0.5  # of the frame's area: a line's box over this is no line of text

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


def box_area(corners: Sequence[tuple[float, float]]) -> float:
    """The area of a polygon given by its corners in order (the shoelace formula)."""
    twice = sum(
        x1 * y2 - x2 * y1
        for (x1, y1), (x2, y2) in zip(corners, [*corners[1:], *corners[:1]], strict=True)
    )
    return abs(twice) / 2


def is_plausible_text(line: TextLine, frame_wh: tuple[int, int]) -> bool:
    """Whether a reading may be a line of text on screen, for the timeline.

    It needs a letter or a digit (any script's: ``str.isalnum``), a confidence of at
    least MIN_TEXT_CONFIDENCE, and a box of at most MAX_TEXT_BOX_SHARE of the frame.
    """
    width, height = frame_wh
    return (
        float(line.confidence) >= MIN_TEXT_CONFIDENCE
        and any(character.isalnum() for character in line.text)
        and box_area(line.box) <= MAX_TEXT_BOX_SHARE * width * height
    )


@dataclass(frozen=True)
class Sighting:
    """Where an observation was made: the frame, its time and its analysed-frame number."""

    frame_index: int
    timestamp_s: float
    ordinal: int  # 0, 1, 2... over the analysed frames


@dataclass
class _Segment:
    """One line of text followed over analysed frames: first and last sighting, frames
    seen, and its best reading (the normalised one it is matched on, as `key`)."""

    first: Sighting
    last: Sighting
    key: str
    text: str
    confidence: float
    box: Any
    frames: int = 1

    def seen_again(self, at: Sighting, key: str, line: TextLine) -> None:
        """Extend the segment to this reading; keep it when it is the surest so far."""
        self.last = at
        self.frames += 1
        if float(line.confidence) > self.confidence:
            self.key, self.text = key, _one_line(line.text)
            self.confidence, self.box = float(line.confidence), line.box

    def to_json(self) -> dict[str, Any]:
        """The timeline's text entry."""
        return {
            "text": self.text,
            "start_s": self.first.timestamp_s,
            "end_s": self.last.timestamp_s,
            "first_frame": self.first.frame_index,
            "last_frame": self.last.frame_index,
            "frames": self.frames,
            "confidence": round(self.confidence, CONFIDENCE_DIGITS),
            "box": json_ready(self.box),
        }


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


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


class TextSegmenter:
    """Merges the same line of text across consecutive analysed frames into segments.

    Each frame's lines are matched to the open segments by similarity of their normalised
    readings (best pairs first, one line per segment); an unmatched line opens a segment. A
    segment not seen for more than MAX_MISSED_FRAMES analysed frames is closed.
    """

    def __init__(self) -> None:
        self._open: list[_Segment] = []
        self._closed: list[_Segment] = []

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
            self._open[s].seen_again(at, *readings[r])
        for r, (key, line) in enumerate(readings):
            if r not in used_readings:
                text, confidence = _one_line(line.text), float(line.confidence)
                self._open.append(_Segment(at, at, key, text, confidence, line.box))
        still_open: list[_Segment] = []
        for segment in self._open:
            closing = segment.last.ordinal < at.ordinal - MAX_MISSED_FRAMES
            (self._closed if closing else still_open).append(segment)
        self._open = still_open

    def finish(self) -> list[dict[str, Any]]:
        """Close every segment; all of them as JSON, by start_s, text, first_frame."""
        segments = [segment.to_json() for segment in self._closed + self._open]
        self._closed, self._open = [], []
        return sorted(segments, key=lambda s: (s["start_s"], s["text"], s["first_frame"]))


class TimelineBuilder:
    """Feeds frame entries to a TextSegmenter and a MotionTracker; builds the timeline.

    frame_wh: the video's width and height, for the size of a plausible line of text.
    """

    def __init__(self, frame_wh: tuple[int, int]) -> None:
        if min(frame_wh) <= 0:
            raise ValueError(f"a frame size of {frame_wh} pixels")
        self.frame_wh = frame_wh
        self.text = TextSegmenter()
        self.objects = MotionTracker()
        self._ordinal = 0

    def add(self, entry: Mapping[str, Any]) -> None:
        """Feed one stored frame entry (in frame order)."""
        frame_index, timestamp_s = int(entry["frame_index"]), float(entry["timestamp_s"])
        result = entry.get("result")
        lines, detections = frame_observations(result if isinstance(result, dict) else {})
        at = Sighting(frame_index, timestamp_s, self._ordinal)
        self.text.add(at, [line for line in lines if is_plausible_text(line, self.frame_wh)])
        found = FrameDetections.of(detections.xyxy, detections.confidence, detections.class_names)
        self.objects.update(frame_index, timestamp_s, found)
        self._ordinal += 1

    def build(self, shots: Sequence[JsonConvertible] = ()) -> dict[str, Any]:
        """The timeline: ``{"text": [...], "objects": [...], "shots": [...]}``; shots are
        the video's (found on every frame, not from the entries), in order."""
        tracks = sorted(self.objects.finish(), key=lambda track: (track.start_s, track.track_id))
        return {
            "text": self.text.finish(),
            "objects": [track.to_json() for track in tracks],
            "shots": [shot.to_json() for shot in shots],
        }
