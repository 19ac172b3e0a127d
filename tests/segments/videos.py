"""MP4 files with keyframes every few frames (and B-frames), made with PyAV, for split jobs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_keyframed_video(
    path: Path,
    frame_count: int,
    *,
    gop: int = 10,
    b_frames: int = 2,
    fps: int = 30,
    size_wh: tuple[int, int] = (96, 64),
) -> Path:
    """An MPEG-4 Part 2 MP4 with a keyframe every `gop` frames and B-frames between.

    Frame i is a grey level that encodes i with a bar whose position does too, so every
    frame differs from its neighbours (a per-frame analyser tells them apart).
    """
    width, height = size_wh

    def frames() -> Iterator[np.ndarray]:
        for index in range(frame_count):
            image = np.full((height, width, 3), (index * 9) % 256, np.uint8)
            bar = (index * 5) % width
            image[:, bar : bar + 4] = (255 - (index * 9) % 256, 40, 200)
            yield image

    return write_keyframed_frames(path, frames(), gop=gop, b_frames=b_frames, fps=fps)


def write_keyframed_frames(
    path: Path, frames: Iterable[np.ndarray], *, gop: int = 10, b_frames: int = 2, fps: int = 30
) -> Path:
    """BGR frames (all of one size) as an MPEG-4 Part 2 MP4 with a keyframe every `gop`
    frames and B-frames between."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(
            "mpeg4",
            rate=fps,
            options={"g": str(gop), "bf": str(b_frames), "sc_threshold": "1000000000"},
        )
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for number, image in enumerate(frames):
            if number == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
