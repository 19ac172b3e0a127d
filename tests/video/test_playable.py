"""Browser-playable copies: H.264 4:2:0 in MP4, at most 720p, index first, every frame at its
time (so the copy's clock is the results' timestamp_s)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from forgesyte.video.decoder import VideoDecodeError
from forgesyte.video.playable import (
    CodecInfo,
    playable_size,
    probe_codec,
    write_playable_copy,
)
from tests.support.videos import marks_frame, truncated_mp4, write_marks_video
from tests.video.crafted import full_decode


def _encode(
    path: Path, codec: str, frames: int, size_wh: tuple[int, int], ticks: list[int], **kw: str
) -> Path:
    """Frames of a marks video encoded with one of PyAV's encoders, frame i lasting ticks[i]
    thirtieths of a second (a variable frame rate)."""
    pix_fmt = kw.pop("pix_fmt", "yuv420p")
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = *size_wh, pix_fmt
        stream.time_base = stream.codec_context.time_base = Fraction(1, 30)
        stream.options = kw
        pts = 0
        for index in range(frames):
            picture = marks_frame(index, frames)
            if size_wh != (320, 180):
                picture = cv2.resize(picture, size_wh, interpolation=cv2.INTER_NEAREST)
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts, frame.time_base = pts, Fraction(1, 30)
            pts += ticks[index]
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


def _times(path: Path) -> list[float]:
    return [round(seconds, 4) for _, seconds, _ in full_decode(path)]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((320, 180), (320, 180)),
        ((1920, 1080), (1280, 720)),
        ((3840, 2160), (1280, 720)),
        ((1080, 1920), (720, 1280)),  # upright: the short side is the 720
        ((1280, 1024), (900, 720)),
        ((321, 181), (320, 180)),  # even sides for 4:2:0
        ((2, 1000), (2, 1000)),
    ],
)
def test_the_copy_fits_in_720p_with_even_sides(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    width, height = playable_size(*size)
    assert (width, height) == expected
    assert width % 2 == 0 and height % 2 == 0


def test_only_8_bit_4_2_0_h264_plays_as_it_is(tmp_path: Path) -> None:
    h264 = write_marks_video(tmp_path / "h264.mp4", 4, codec="h264")
    mp4v = write_marks_video(tmp_path / "mp4v.mp4", 4, codec="mp4v")
    full_chroma = _encode(
        tmp_path / "444.mp4", "libx264", 4, (320, 180), [1] * 4, pix_fmt="yuv444p"
    )
    assert probe_codec(h264) == CodecInfo("h264", "yuv420p", 320, 180)
    assert probe_codec(h264).browser_playable
    assert probe_codec(mp4v).codec == "mpeg4" and not probe_codec(mp4v).browser_playable
    assert probe_codec(full_chroma).codec == "h264"
    assert not probe_codec(full_chroma).browser_playable


def test_an_mp4v_video_becomes_h264_with_every_frame_at_its_time(tmp_path: Path) -> None:
    ticks = [1, 1, 3, 1, 2, 5, 1, 1, 4, 1, 1, 1]  # a variable frame rate
    source = _encode(tmp_path / "vfr.mp4", "mpeg4", len(ticks), (320, 180), ticks, qscale="2")
    copy = tmp_path / "copy.mp4"
    info = write_playable_copy(source, copy)
    assert info == CodecInfo("h264", "yuv420p", 320, 180)
    assert probe_codec(copy).browser_playable
    assert _times(copy) == _times(source)
    assert _times(copy)[:4] == [0.0, 0.0333, 0.0667, 0.1667]
    # the pixels are the source's, give or take the two encoders' losses
    for (_, _, ours), (_, _, theirs) in zip(full_decode(copy), full_decode(source), strict=True):
        assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 6
    data = copy.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: the index first
    with av.open(str(copy)) as container:
        assert not container.streams.audio  # the copy has no sound


def test_a_big_video_is_shrunk_to_720p(tmp_path: Path) -> None:
    source = _encode(tmp_path / "big.mp4", "mpeg4", 3, (1920, 1080), [1, 1, 1])
    copy = tmp_path / "copy.mp4"
    assert write_playable_copy(source, copy) == CodecInfo("h264", "yuv420p", 1280, 720)
    assert probe_codec(copy) == CodecInfo("h264", "yuv420p", 1280, 720)
    assert len(full_decode(copy)) == 3


def test_a_video_that_cannot_be_decoded_to_its_end_makes_no_copy(tmp_path: Path) -> None:
    source = write_marks_video(tmp_path / "whole.mp4", 30, codec="mp4v")
    with pytest.raises(VideoDecodeError):
        write_playable_copy(truncated_mp4(source, tmp_path / "cut.mp4", 0.5), tmp_path / "c.mp4")
    with pytest.raises(VideoDecodeError):
        write_playable_copy(source, tmp_path / "c.mp4", max_frame_pixels=100)
