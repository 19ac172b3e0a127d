"""MP4 files made by the tests: frames with known text, and corrupt variants."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def write_text_video(
    path: Path,
    texts: Sequence[str],
    *,
    fps: float = 10.0,
    size_wh: tuple[int, int] = (320, 180),
) -> Path:
    """Write an MP4 whose frame i shows texts[i] in black on white (mp4v codec)."""
    width, height = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV could not open an MP4 writer"
    try:
        for text in texts:
            frame = np.full((height, width, 3), 255, np.uint8)
            if text:
                cv2.putText(
                    frame,
                    text,
                    (max(8, width // 16), height // 2 + 15),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    1.2 * width / 320,
                    (0, 0, 0),
                    max(2, width // 110),
                )
            writer.write(frame)
    finally:
        writer.release()
    return path


def write_counter_video(
    path: Path, frame_count: int, *, fps: float = 30.0, size_wh: tuple[int, int] = (64, 48)
) -> Path:
    """Write an MP4 whose frame i has a uniform grey level that encodes i (for cheap tests)."""
    width, height = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for index in range(frame_count):
            writer.write(np.full((height, width, 3), (index * 8) % 256, np.uint8))
    finally:
        writer.release()
    return path


def header_only_mp4(path: Path) -> Path:
    """Just an ftyp box: looks like an MP4, holds nothing."""
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
    return path


def truncated_mp4(source: Path, path: Path, fraction: float = 0.5) -> Path:
    """The first fraction of a valid MP4."""
    data = source.read_bytes()
    path.write_bytes(data[: max(64, int(len(data) * fraction))])
    return path


def garbage_after_ftyp_mp4(path: Path, size: int = 20_000, seed: int = 7) -> Path:
    """A valid ftyp box followed by random bytes."""
    rng = np.random.default_rng(seed)
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + rng.bytes(size))
    return path


def random_bytes(size: int = 4096) -> bytes:
    """Bytes with no structure."""
    return os.urandom(size)


def padded_mp4(source: Path, path: Path, padding: int) -> Path:
    """A copy of an MP4 with a `free` box of `padding` bytes appended: big, and it still plays."""
    box = struct.pack(">I", padding + 8) + b"free" + bytes(padding)
    path.write_bytes(source.read_bytes() + box)
    return path
