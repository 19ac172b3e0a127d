"""Decoding only what a job needs: sampled jobs against decoding every frame, and the floor."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from bench_videos import CACHE_DIR, FPS, _texture

from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.video.decoder import (
    BgrConverter,
    open_mp4,
    plan_decoding,
    read_packet_index,
    set_decoder_threads,
    video_stream,
)
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService, select_frames


def h264_video(
    width: int, height: int, seconds: float, *, keyframe_interval: int | None = None
) -> Path:
    """A panning texture encoded with libx264 (veryfast, crf 23), cached.

    keyframe_interval None keeps x264's defaults (B-frames, keyint 250, keyframes at scene
    cuts); N gives a keyframe every N frames exactly (scene-cut keyframes off), as a camera
    or a streaming encoder does. The encoder runs frame threads as the ffmpeg command line
    does, so every frame is one slice. (PyAV's default thread type, SLICE, makes libx264
    cut each frame into slices, which hands the decoders' slice threads work few real
    files give them.)
    """
    frames = round(seconds * FPS)
    keyframes = f"_gop{keyframe_interval}" if keyframe_interval else ""
    path = CACHE_DIR / f"h264_oneslice{keyframes}_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    texture = _texture(width, height)
    options = {"preset": "veryfast", "crf": "23"}
    if keyframe_interval:
        options |= {"g": str(keyframe_interval), "sc_threshold": "0"}
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_type = "FRAME"
        stream.options = options
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


def decode_every_frame(path: Path, threads: int) -> Timing:
    """D: decode every frame with PyAV and convert each to BGR as a stride-1 job does.

    The decoder gets `threads` threads of its own exactly as a job's decoder does
    (`set_decoder_threads`), and the job's `BgrConverter` converts every frame.
    """
    converter = BgrConverter()
    wall, cpu = time.perf_counter(), time.process_time()
    with av.open(str(path), format="mp4") as container:
        stream = container.streams.video[0]
        set_decoder_threads(stream.codec_context, threads)
        for frame in container.decode(stream):
            converter.convert(frame)
    return time.perf_counter() - wall, time.process_time() - cpu


def sampled_job(
    path: Path, runner: PipelineRunner, sampling: SamplingOptions, threads: int
) -> Timing:
    """Time of a VideoFilePipelineService run with these sampling options and decoder threads."""
    service = VideoFilePipelineService(runner, decode_threads=threads)
    wall, cpu = time.perf_counter(), time.process_time()
    service.run(path, sampling)
    return time.perf_counter() - wall, time.process_time() - cpu


def reference_packets(path: Path) -> set[int]:
    """The decode-order numbers of the packets whose frames are references (and keyframes).

    The whole stream is decoded once with non-reference frames skipped, each packet stamped
    with its number: the frames that come out are the references.
    """
    with av.open(str(path), format="mp4") as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.skip_frame = "NONREF"
        references: set[int] = set()
        number = 0
        for packet in container.demux(stream):
            if packet.size == 0 and packet.dts is None:
                continue
            packet.pts = number
            number += 1
            references.update(int(frame.pts or 0) for frame in codec.decode(packet))
        references.update(int(frame.pts or 0) for frame in codec.decode(None))
    return references


class FloorDecode:
    """The physical limit of a sampled job: its keyframes and the reference frames up to
    each wanted frame, plus the wanted frames, decoded alone.

    The packets are demuxed into memory before timing; the timed part sends only those
    packets to a decoder with the job's threads, drains it at the end of each run (where
    the job must too), and converts nothing.
    """

    def __init__(self, path: Path, sampling: SamplingOptions, references: set[int]) -> None:
        self.path = path
        with open_mp4(path) as container:
            index = read_packet_index(container, video_stream(container))
        plan = plan_decoding(index, select_frames(index, sampling))
        self.runs = [
            [n for n in range(first, last + 1) if n in references or n in plan.wanted]
            for first, last in plan.runs
        ]

    @property
    def packet_count(self) -> int:
        """How many packets the floor decodes."""
        return sum(len(run) for run in self.runs)

    def decode(self, threads: int) -> Timing:
        """Time to decode the floor's packets alone."""
        with av.open(str(self.path), format="mp4") as container:
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if not (p.size == 0 and p.dts is None)]
            codec = stream.codec_context
            set_decoder_threads(codec, threads)
            wall, cpu = time.perf_counter(), time.process_time()
            for run in self.runs:
                for number in run:
                    codec.decode(packets[number])
                codec.decode(None)
                codec.flush_buffers()
            return time.perf_counter() - wall, time.process_time() - cpu
