"""Browser-playable copies: H.264 (8-bit 4:2:0) in MP4, at most 720p, moov first.

Browsers play H.264 in MP4; not MPEG-4 Part 2 (OpenCV's common `mp4v`), HEVC (most),
10-bit or 4:4:4 H.264, AV1 in every browser, or the rest. `probe_codec` says whether an
upload plays as it is; `write_playable_copy` decodes every frame of one that does not
(opened as MP4 only, like the analysis) and encodes it again with PyAV's H.264 encoder:
each frame keeps its presentation time (from the first shown frame, as the analysis
numbers time), so the copy's currentTime is the results' `timestamp_s`. The copy has no
sound. `+faststart` puts the index first, so a browser starts playing from the first range.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import av.video
import av.video.reformatter

from forgesyte.video.decoder import (
    DEFAULT_MAX_FRAME_PIXELS,
    VideoDecodeError,
    check_frame_size,
    open_mp4,
    video_stream,
)

BROWSER_CODEC = "h264"
BROWSER_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})  # 8-bit 4:2:0
MAX_LONG_SIDE = 1280  # pixels: a copy fits in 1280x720 (720x1280 upright)
MAX_SHORT_SIDE = 720
H264_ENCODERS = ("libx264", "libopenh264")  # the first one this build of PyAV has is used
# x264's fastest preset at a web video's quality: on 720p, 2.3x less CPU than "veryfast"
# for a file about 1.5x larger (bench row w); the copy is for watching beside the results
X264_OPTIONS = {"preset": "ultrafast", "crf": "23"}
KEYFRAME_INTERVAL_S = 2.0  # seconds between keyframes: a seek decodes at most this much
FALLBACK_TIME_BASE = Fraction(1, 90_000)


class NoH264Encoder(Exception):
    """This build of PyAV (FFmpeg) has none of H264_ENCODERS."""


@dataclass(frozen=True)
class CodecInfo:
    """What the video stream of an MP4 is coded as (FFmpeg's names)."""

    codec: str
    pixel_format: str | None
    width: int
    height: int

    @property
    def browser_playable(self) -> bool:
        """Whether browsers play it as it is: 8-bit 4:2:0 H.264."""
        return self.codec == BROWSER_CODEC and self.pixel_format in BROWSER_PIXEL_FORMATS


def probe_codec(path: Path, max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS) -> CodecInfo:
    """The video stream's codec, pixel format and size, from its header (nothing decoded)."""
    with open_mp4(path, max_frame_pixels) as container:
        context = video_stream(container).codec_context
        return CodecInfo(context.name, context.pix_fmt, context.width, context.height)


def playable_size(width: int, height: int) -> tuple[int, int]:
    """The copy's frame size: the video's, shrunk (aspect kept) to fit 1280x720 or 720x1280,
    each side even (4:2:0 halves both)."""
    long_side, short_side = max(width, height), min(width, height)
    scale = min(1.0, MAX_LONG_SIDE / long_side, MAX_SHORT_SIDE / short_side)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def h264_encoder() -> str:
    """The name of the H.264 encoder to use; NoH264Encoder when there is none."""
    for name in H264_ENCODERS:
        if name in av.codecs_available:
            return name
    raise NoH264Encoder(f"this build of PyAV has no H.264 encoder ({', '.join(H264_ENCODERS)})")


def write_playable_copy(
    source: Path,
    target: Path,
    *,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    threads: int = 1,
) -> CodecInfo:
    """Write an H.264 MP4 copy of every frame of source to target; what the copy is.

    Raises VideoDecodeError when source cannot be decoded to its end, NoH264Encoder when
    no encoder is there. target is written in place: the caller removes it on failure.
    """
    encoder = h264_encoder()
    with open_mp4(source, max_frame_pixels) as container:
        stream = video_stream(container)
        context = stream.codec_context
        check_frame_size(context.width, context.height, max_frame_pixels)
        width, height = playable_size(context.width, context.height)
        time_base = Fraction(stream.time_base or FALLBACK_TIME_BASE)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            encoded = cast(av.video.VideoStream, out.add_stream(encoder, rate=rate))
            encoded.width, encoded.height, encoded.pix_fmt = width, height, "yuv420p"
            encoded.time_base = time_base
            encoded.codec_context.time_base = time_base
            encoded.codec_context.gop_size = max(1, round(float(rate) * KEYFRAME_INTERVAL_S))
            encoded.codec_context.thread_count = threads
            if encoder == "libx264":
                encoded.options = dict(X264_OPTIONS)
            _transcode(container, stream, out, encoded, max_frame_pixels)
    return CodecInfo(BROWSER_CODEC, "yuv420p", width, height)


def _transcode(
    container: Any,
    stream: av.video.VideoStream,
    out: Any,
    encoded: Any,
    max_frame_pixels: int,
) -> None:
    """Decode every shown frame, scale it, and encode it with its time from the first.

    One swscale context for the whole copy (as `BgrConverter` keeps one per job): a
    frame's own `reformat` would build one, and a thread pool, for every frame.
    """
    first: int | None = None
    last = -1
    scaler = av.video.reformatter.VideoReformatter()
    try:
        for frame in container.decode(stream):
            check_frame_size(frame.width, frame.height, max_frame_pixels)
            pts = frame.pts if frame.pts is not None else last + 1
            if first is None:
                first = pts
            # strictly increasing, as the encoder and the muxer demand
            last = max(pts - first, last + 1)
            scaled = scaler.reformat(
                frame, width=encoded.width, height=encoded.height, format="yuv420p", threads=1
            )
            scaled.pts, scaled.time_base = last, encoded.time_base
            for packet in encoded.encode(scaled):
                out.mux(packet)
        for packet in encoded.encode(None):
            out.mux(packet)
    except av.FFmpegError as exc:
        raise VideoDecodeError("the video could not be decoded to its end for a copy") from exc
    if first is None:
        raise VideoDecodeError("the video yielded no decodable frames")
