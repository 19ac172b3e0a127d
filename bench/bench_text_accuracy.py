"""Row r: can the timeline's text be trusted? OCR's word accuracy and character error rate
on the known-words videos; the floor of the timeline's text rule measured on them (and on
copies made harder to read); and how far each text segment's start and end are from the
true appearance of its line, through the analysis child's path (video service, pipeline,
writer, timeline), at several sampling rates.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bench_local as local
import bench_ocr
import bench_videos as videos
import cv2
import numpy as np
from rapidfuzz.distance import Levenshtein

from forgesyte.plugins.base import Frame, PluginConfig
from forgesyte.plugins.ocr import OcrRead, plugin
from forgesyte.plugins.values import TextLine
from forgesyte.results.timeline import (
    TEXT_SIMILARITY,
    is_plausible_text,
    normalise_text,
    text_similarity,
)
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService

HARDER: dict[str, Callable[[Frame], Frame]] = {
    "half size": lambda f: cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), cv2.INTER_AREA),
    "half size, JPEG 15": lambda f: cv2.imdecode(
        cv2.imencode(
            ".jpg", cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), cv2.INTER_AREA), [1, 15]
        )[1],
        cv2.IMREAD_COLOR,
    ),
    "blurred (sigma 1.5)": lambda f: cv2.GaussianBlur(f, (0, 0), 1.5),
}
"""Copies of the known-words frames that are harder to read (for the floor)."""


@dataclass
class Reading:
    """OCR on frames with known text: words read, characters wrong, and what the floor of
    the timeline's text rule would take from lines that hold a known word."""

    words: int = 0
    words_read: int = 0
    characters: int = 0
    character_errors: int = 0
    lowest_real_confidence: float = 1.0  # of a line holding a known word
    real_lines: int = 0
    real_lines_left_out: int = 0  # lines holding a known word that is_plausible_text drops

    @property
    def word_accuracy(self) -> float:
        return self.words_read / self.words if self.words else 1.0

    @property
    def character_error_rate(self) -> float:
        return self.character_errors / self.characters if self.characters else 0.0

    def add(self, lines: list[TextLine], truth: list[str], frame_wh: tuple[int, int]) -> None:
        """One frame: its lines read, and its true lines top to bottom."""
        words = [word for line in truth for word in line.split()]
        self.words += len(words)
        self.words_read += bench_ocr.words_read([line.text for line in lines], words)
        # reading order: lines top to bottom (the made lines never share a row)
        read = sorted(lines, key=lambda line: (min(y for _, y in line.box), line.box[0][0]))
        reference = "\n".join(truth)
        self.characters += len(reference)
        self.character_errors += Levenshtein.distance("\n".join(x.text for x in read), reference)
        for line in lines:
            if set(line.text.split()) & set(words):
                self.real_lines += 1
                self.lowest_real_confidence = min(self.lowest_real_confidence, line.confidence)
                self.real_lines_left_out += not is_plausible_text(line, frame_wh)


def _ocr_tool() -> OcrRead:
    tool = plugin(PluginConfig()).tools["read"]
    assert isinstance(tool, OcrRead)
    tool.load()
    return tool


def _true_lines(words: list[str]) -> list[str]:
    """A known-words frame's words cut into its lines (the layout's word counts)."""
    lines, start = [], 0
    for count in videos.KNOWN_WORDS_PER_LINE:
        lines.append(" ".join(words[start : start + count]))
        start += count
    return lines


def known_words_reading(frames: int) -> dict[str, Reading]:
    """OCR (`ocr.read`, as a server builds it) on the known-words videos at 640x360 and
    1280x720, and on harder copies of the 640x360 frames; by what was read."""
    tool = _ocr_tool()
    readings: dict[str, Reading] = {}
    for width, height in ((640, 360), (1280, 720)):
        path, words = videos.known_words_video(frames, width, height)
        reading = readings.setdefault(f"{width}x{height}", Reading())
        decoded = local.read_frames(path)
        for frame, frame_words in zip(decoded, words, strict=True):
            reading.add(
                list(tool.run(frame, {"image": frame})), _true_lines(frame_words), (width, height)
            )
        if width == 640:
            for name, harder in HARDER.items():
                reading = readings.setdefault(f"640x360 {name}", Reading())
                for frame, frame_words in zip(decoded, words, strict=True):
                    made = harder(frame)
                    size = (made.shape[1], made.shape[0])
                    reading.add(
                        list(tool.run(made, {"image": made})), _true_lines(frame_words), size
                    )
    return readings


@dataclass(frozen=True)
class Caption:
    """A line of text on screen from shown_s to gone_s, its baseline at y (share of the
    frame's height)."""

    text: str
    shown_s: float
    gone_s: float
    y: float


CAPTIONS = (
    Caption("GATE 7 OPEN", 0.4, 4.7, 0.25),
    Caption("PLATFORM 2 DELAYED", 3.3, 9.1, 0.6),
    Caption("LAST TRAIN 23:15", 10.2, 15.8, 0.4),
    Caption("MIND THE GAP", 16.9, 17.6, 0.7),
    Caption("EXIT 4 NORTH", 18.5, 23.3, 0.3),
)
"""Lines shown and gone at times that fall between any sampling's frames."""
BAR_S = (9.1, 10.2)  # a dark frame with a plain red bar: OCR reads "_" on it
CAPTIONS_FPS = 30
CAPTIONS_SECONDS = 24.0


def captions_video() -> Path:
    """CAPTIONS, black on white panels over grey, and a red bar on black during BAR_S,
    640x360 at CAPTIONS_FPS, cached."""
    path = videos.CACHE_DIR / "captions_640x360.mp4"
    if path.exists():
        return path

    def frames() -> Iterator[Frame]:
        for index in range(round(CAPTIONS_SECONDS * CAPTIONS_FPS)):
            t = index / CAPTIONS_FPS
            if BAR_S[0] <= t < BAR_S[1]:
                frame = np.full((360, 640, 3), 12, np.uint8)
                cv2.rectangle(frame, (0, 320), (640, 340), (0, 0, 255), -1)
                yield frame
                continue
            frame = np.full((360, 640, 3), 150, np.uint8)
            for caption in CAPTIONS:
                if caption.shown_s <= t < caption.gone_s:
                    y = int(caption.y * 360)
                    cv2.rectangle(frame, (20, y - 40), (620, y + 12), (255, 255, 255), -1)
                    font = cv2.FONT_HERSHEY_DUPLEX
                    cv2.putText(frame, caption.text, (30, y), font, 1.3, (0, 0, 0), 2)
            yield frame

    videos.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(
        str(partial), cv2.VideoWriter_fourcc(*"mp4v"), CAPTIONS_FPS, (640, 360)
    )
    try:
        for frame in frames():
            writer.write(frame)
    finally:
        writer.release()
    partial.rename(path)
    return path


@dataclass
class Boundaries:
    """Text segments against CAPTIONS at one sampling rate: how far each segment's start
    and end are from its line's true appearance, in seconds (start_s - shown_s, and the
    last analysed frame showing the line's end: gone_s - end_s) and in analysed frames
    that showed the line outside its segment; lines found, and segments of no line."""

    sample_fps: float
    start_errors_s: list[float] = field(default_factory=list)
    end_errors_s: list[float] = field(default_factory=list)
    frames_missed: list[int] = field(default_factory=list)  # per boundary
    lines_found: int = 0
    other_segments: list[str] = field(default_factory=list)
    junk_read: int = 0  # readings on the bar (kept in the results, not in the timeline)

    @property
    def worst_s(self) -> float:
        return max(map(abs, self.start_errors_s + self.end_errors_s), default=0.0)

    @property
    def mean_s(self) -> float:
        errors = [abs(e) for e in self.start_errors_s + self.end_errors_s]
        return sum(errors) / len(errors) if errors else 0.0


def segment_boundaries(sample_fps: float) -> Boundaries:
    """The captions video through the analysis child's path (the `ocr_only` pipeline, the
    video service, the results writer and its timeline) at sample_fps."""
    path = captions_video()
    found = Boundaries(sample_fps)
    with tempfile.TemporaryDirectory(prefix="bench-captions-") as scratch:
        with FrameResultsWriter(Path(scratch)) as writer:
            VideoFilePipelineService(local.runner_for("ocr_only")).analyse(
                path,
                SamplingOptions(sample_fps=sample_fps),
                on_frame=lambda frame: writer.add(frame.to_json()),
                on_video=lambda video: writer.start(video.resolution_wh),
            )
            writer.finish()
        entries = [json.loads(line) for line in writer.results_path.read_bytes().splitlines()]
        segments = json.loads(writer.timeline_path.read_bytes())["text"]
    times = [float(entry["timestamp_s"]) for entry in entries]
    found.junk_read = sum(
        1
        for entry in entries
        if BAR_S[0] <= entry["timestamp_s"] < BAR_S[1]
        for _ in entry["result"]["ocr"]
    )
    matched: set[int] = set()
    for caption in CAPTIONS:
        key = normalise_text(caption.text)
        near = [
            n
            for n, s in enumerate(segments)
            if text_similarity(normalise_text(s["text"]), key) >= TEXT_SIMILARITY
        ]
        if not near:
            continue
        found.lines_found += 1
        matched.update(near)
        start_s = min(segments[n]["start_s"] for n in near)
        end_s = max(segments[n]["end_s"] for n in near)
        found.start_errors_s.append(start_s - caption.shown_s)
        found.end_errors_s.append(caption.gone_s - end_s)
        found.frames_missed.append(sum(caption.shown_s <= t < start_s for t in times))
        found.frames_missed.append(sum(end_s < t < caption.gone_s for t in times))
    found.other_segments = [s["text"] for n, s in enumerate(segments) if n not in matched]
    return found


@dataclass(frozen=True)
class TextAccuracy:
    """Row r's figures."""

    readings: dict[str, Reading]
    boundaries: list[Boundaries]


def text_accuracy(quick: bool) -> TextAccuracy:
    """Everything row r prints (quick: fewer frames and rates)."""
    return TextAccuracy(
        known_words_reading(2 if quick else 6),
        [segment_boundaries(rate) for rate in ((1.0, 2.0) if quick else (1.0, 2.0, 5.0))],
    )
