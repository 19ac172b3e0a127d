"""Decoding only what a job needs: sampled jobs against decoding every frame, same run."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from bench_videos import CACHE_DIR, FPS, _texture

from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.video.decoder import BgrConverter
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService


def h264_video(width: int, height: int, seconds: float) -> Path:
    """A panning texture encoded with libx264 at its defaults (B-frames, keyint 250), cached.

    The encoder runs frame threads as the ffmpeg command line does, so every frame is one
    slice. (PyAV's default thread type, SLICE, makes libx264 cut each frame into slices,
    which hands the decoders' slice threads work few real files give them.)
    """
    frames = round(seconds * FPS)
    path = CACHE_DIR / f"h264_oneslice_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    texture = _texture(width, height)
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_type = "FRAME"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for index in range(frames):
            x, y = (index * 3) % width, (index * 2) % height
            image = np.ascontiguousarray(texture[y : y + height, x : x + width])
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, int(FPS))
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    partial.rename(path)
    return path


Timing = tuple[float, float]
"""(wall seconds, CPU seconds of this process, decoder threads included)."""


def decode_every_frame(path: Path, conversion: str = "job") -> Timing:
    """Time to decode every frame with PyAV, with the decoder's own codec threads.

    conversion: "job" converts every frame to BGR as a stride-1 job does (the decoder's
    BgrConverter); "to_ndarray" with PyAV's `frame.to_ndarray(format="bgr24")` (a new
    swscale context per frame); "none" converts nothing.
    """
    converter = BgrConverter()
    wall, cpu = time.perf_counter(), time.process_time()
    with av.open(str(path), format="mp4") as container:
        for frame in container.decode(video=0):
            if conversion == "job":
                converter.convert(frame)
            elif conversion == "to_ndarray":
                frame.to_ndarray(format="bgr24")
    return time.perf_counter() - wall, time.process_time() - cpu


def sampled_job(path: Path, runner: PipelineRunner, sampling: SamplingOptions) -> Timing:
    """Time of a VideoFilePipelineService run with these sampling options."""
    wall, cpu = time.perf_counter(), time.process_time()
    VideoFilePipelineService(runner).run(path, sampling)
    return time.perf_counter() - wall, time.process_time() - cpu
