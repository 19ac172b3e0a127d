"""Videos made by the benchmark, cached in bench/.cache (git-ignored) between runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
FPS = 30.0


def _texture(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A smooth random texture twice the frame size, panned across to make motion."""
    rng = np.random.default_rng(seed)
    noise = (rng.random((height * 2, width * 2, 3)) * 255).astype(np.uint8)
    return np.asarray(cv2.GaussianBlur(noise, (0, 0), 6))


def moving_video(width: int, height: int, seconds: float, *, fps: float = FPS) -> Path:
    """A panning textured video with a moving disc and a frame counter (mp4v), cached."""
    frames = round(seconds * fps)
    path = CACHE_DIR / f"moving_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    texture = _texture(width, height)
    partial = path.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV could not open an mp4v writer")
    try:
        for index in range(frames):
            x = (index * 3) % width
            y = (index * 2) % height
            frame = texture[y : y + height, x : x + width].copy()
            cv2.circle(
                frame, ((index * 7) % width, (index * 5) % height), height // 8, (0, 0, 255), -1
            )
            cv2.putText(
                frame,
                f"FRAME {index:05d}",
                (width // 10, height // 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                width / 400,
                (255, 255, 255),
                max(2, width // 200),
            )
            writer.write(frame)
    finally:
        writer.release()
    partial.rename(path)
    return path


TEXT_LINES = (
    "INVOICE 2024-{n:03d}",
    "TOTAL DUE 1{n:02d}.50 EUR",
    "PLATE AB-{n:02d}-CD",
)


def text_frame(index: int, width: int = 640, height: int = 360) -> np.ndarray:
    """A white frame with three lines of black text that differ per index."""
    frame = np.full((height, width, 3), 255, np.uint8)
    for line, template in enumerate(TEXT_LINES):
        cv2.putText(
            frame,
            template.format(n=index),
            (30, 80 + line * 100),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.4,
            (0, 0, 0),
            3,
        )
    return frame


def _write(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    height, width = frames[0].shape[:2]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    partial.rename(path)
    return path


def text_video(frames: int, width: int = 640, height: int = 360) -> Path:
    """A video of `frames` text frames (see text_frame), cached."""
    path = CACHE_DIR / f"text_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    return _write(path, [text_frame(i, width, height) for i in range(frames)], FPS)


def one_frame_video(width: int = 640, height: int = 360) -> Path:
    """A one-frame video, for job latency."""
    path = CACHE_DIR / f"one_frame_{width}x{height}.mp4"
    if path.exists():
        return path
    return _write(path, [text_frame(0, width, height)], FPS)


def scoreboard_video(
    seconds: float, change_every_s: float, width: int = 640, height: int = 360
) -> Path:
    """A mostly static scene: a scoreboard whose score changes every change_every_s seconds."""
    path = CACHE_DIR / f"scoreboard2_{width}x{height}_{seconds:g}s_{change_every_s:g}.mp4"
    if path.exists():
        return path
    frames = []
    for index in range(int(seconds * FPS)):
        goals = int(index / FPS / change_every_s)
        frame = np.full((height, width, 3), (40, 110, 40), np.uint8)  # a pitch
        cv2.rectangle(frame, (20, 20), (360, 90), (255, 255, 255), -1)
        cv2.putText(
            frame,
            f"HOME {goals}  AWAY {goals // 2}",
            (30, 70),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.1,
            (0, 0, 0),
            3,
        )
        frames.append(frame)
    return _write(path, frames, FPS)


KNOWN_WORDS = (
    "INVOICE",
    "ORDER",
    "TOTAL",
    "PLATE",
    "STATION",
    "NORTH",
    "SOUTH",
    "HARBOUR",
    "MARKET",
    "GARDEN",
    "BRIDGE",
    "CENTRAL",
    "ENTRANCE",
    "PLATFORM",
    "DEPARTURE",
    "ARRIVAL",
    "GATE",
    "TICKET",
    "RETURN",
    "SINGLE",
    "OFFICE",
    "PARKING",
    "EXIT",
    "WARNING",
    "DANGER",
    "POWER",
    "WATER",
    "OPEN",
    "CLOSED",
    "SALE",
    "PRICE",
    "WEEKLY",
    "DAILY",
    "SPECIAL",
    "ROUTE",
    "LEVEL",
    "Camera",
    "Street",
    "Hotel",
    "Museum",
    "Library",
    "School",
    "Bakery",
    "Coffee",
    "Pharmacy",
    "Garage",
    "Theatre",
    "Monday",
    "Friday",
    "Summer",
    "Winter",
    "Kitchen",
    "Window",
    "Yellow",
    "Orange",
    "Silver",
    "Purple",
)
"""The vocabulary of the known-words videos: every word is easy to tell apart."""

# (x, baseline y) as fractions of the frame, font, scale at 640 px wide, thickness at
# 640 px wide, words on the line, panel: text colour on background colour (BGR)
_LINES = (
    (0.04, 0.14, cv2.FONT_HERSHEY_DUPLEX, 1.5, 2, 2, ((20, 20, 20), (235, 240, 245))),
    (0.05, 0.27, cv2.FONT_HERSHEY_SIMPLEX, 0.9, 2, 3, ((255, 255, 255), (90, 40, 30))),
    (0.05, 0.39, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2, 4, ((10, 10, 10), (200, 230, 240))),
    (0.05, 0.50, cv2.FONT_HERSHEY_COMPLEX, 0.6, 1, 4, ((0, 0, 120), (230, 235, 235))),
    (0.05, 0.64, cv2.FONT_HERSHEY_DUPLEX, 1.1, 2, 3, ((240, 240, 240), (40, 90, 40))),
    (0.05, 0.76, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1, 5, ((30, 30, 30), (225, 225, 225))),
    (0.52, 0.92, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2, 2, ((0, 0, 0), (0, 200, 255))),
)


KNOWN_WORDS_PER_LINE = tuple(layout[5] for layout in _LINES)
"""How many words each line of a known-words frame holds, top to bottom."""


def known_words_frame(
    index: int, width: int = 640, height: int = 360
) -> tuple[np.ndarray, list[str]]:
    """A frame of several text lines of varied size, font and colour; and the words on it.

    The layout scales with the frame (the same picture at every resolution), the words
    differ per index (a vocabulary word or a number of 3-5 digits, from a seeded draw),
    and each line sits on a panel over a soft textured background.
    """
    rng = np.random.default_rng(1000 + index)
    scale = width / 640
    frame = cv2.resize(_texture(64, 36, seed=index % 5), (width, height))
    frame = cv2.addWeighted(frame, 0.5, np.full_like(frame, 128), 0.5, 0)
    words: list[str] = []
    for x_frac, y_frac, font, size, thickness, count, (ink, paper) in _LINES:
        line_words = [
            str(rng.integers(100, 100000)) if rng.random() < 0.25 else str(rng.choice(KNOWN_WORDS))
            for _ in range(count)
        ]
        text = " ".join(line_words)
        font_scale, stroke = size * scale, max(1, round(thickness * scale))
        (text_w, text_h), baseline = cv2.getTextSize(text, font, font_scale, stroke)
        x, y = int(x_frac * width), int(y_frac * height)
        pad = max(3, int(0.4 * text_h))
        cv2.rectangle(
            frame, (x - pad, y - text_h - pad), (x + text_w + pad, y + baseline + pad), paper, -1
        )
        cv2.putText(frame, text, (x, y), font, font_scale, ink, stroke, cv2.LINE_AA)
        words += line_words
    return frame, words


def known_words_video(
    frames: int, width: int = 640, height: int = 360
) -> tuple[Path, list[list[str]]]:
    """A video of `frames` known-words frames (see known_words_frame), cached; its words."""
    path = CACHE_DIR / f"known_words_{width}x{height}_{frames}f.mp4"
    made = [known_words_frame(i, width, height) for i in range(frames)]
    if not path.exists():
        _write(path, [frame for frame, _ in made], FPS)
    return path, [words for _, words in made]


def tiny_long_video(frames: int, width: int = 64, height: int = 36) -> Path:
    """A tiny video of many frames (a grey level per frame), for long-results rows; cached."""
    path = CACHE_DIR / f"tiny_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    try:
        for index in range(frames):
            writer.write(np.full((height, width, 3), index % 251, np.uint8))
    finally:
        writer.release()
    partial.rename(path)
    return path


def keyframed_text_video(frames: int, gop: int = 5, width: int = 640, height: int = 360) -> Path:
    """The text frames of `text_video`, encoded with PyAV with a keyframe every `gop` frames.

    OpenCV's mp4v files carry no sync sample table, so the server sees one keyframe and
    cannot cut them; a long job's split (row p) needs keyframes, as real videos have.
    """
    import av  # PyAV writes the MP4's sync samples; OpenCV's writer does not

    path = CACHE_DIR / f"text_gop{gop}_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream(
            "mpeg4", rate=int(FPS), options={"g": str(gop), "sc_threshold": "1000000000"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 2_000_000
        for index in range(frames):
            image = av.VideoFrame.from_ndarray(text_frame(index, width, height), format="bgr24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path
