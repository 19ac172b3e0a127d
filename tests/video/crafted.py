"""MP4 files for the decoder's tests: H.264 with B-frames, variable frame rate and edit
lists (encoded with PyAV's libx264), header bombs, huge frames and playlists posing as MP4."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

FTYP_BOX = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts")


def _picture(index: int, width: int, height: int, noise: bool = True) -> np.ndarray:
    """A frame that differs from its neighbours: a grey level, a moving block and noise."""
    image = np.full((height, width, 3), (index * 7) % 256, np.uint8)
    y, x = (index * 3) % height, (index * 5) % width
    image[y : y + height // 3, x : x + width // 3] = 255 - (index * 7) % 256
    if noise:
        rng = np.random.default_rng(index)
        image[: height // 4, : width // 4] = rng.integers(0, 256, (height // 4, width // 4, 3))
    return image


def write_h264_video(
    path: Path,
    frame_count: int,
    *,
    fps: int = 30,
    size_wh: tuple[int, int] = (160, 96),
    b_frames: int = 3,
    gop: int = 24,
    frame_ticks: list[int] | None = None,
    noise: bool = True,
) -> Path:
    """Encode an H.264 MP4 with libx264 (B-frames and GOP as given).

    frame_ticks gives each frame's duration in 1/fps ticks (a variable frame rate);
    default one tick each. noise=False gives flat pictures that compress to little.
    """
    width, height = size_wh
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {
            "preset": "veryfast" if noise else "ultrafast",
            "crf": "28",
            "g": str(gop),
            "bf": str(b_frames),
            "x264-params": f"bframes={b_frames}:scenecut=0:keyint={gop}:min-keyint={gop}",
        }
        pts = 0
        for index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(
                _picture(index, width, height, noise), format="bgr24"
            )
            frame.pts = pts
            frame.time_base = Fraction(1, fps)
            pts += frame_ticks[index] if frame_ticks else 1
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


def write_mp4v_video(path: Path, frame_count: int, size_wh: tuple[int, int] = (96, 64)) -> Path:
    """An MP4 from OpenCV's mp4v writer (an I-frame every 12, P-frames between)."""
    width, height = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size_wh)
    try:
        for index in range(frame_count):
            writer.write(_picture(index, width, height, noise=False))
    finally:
        writer.release()
    return path


def full_decode(path: Path) -> list[tuple[int, float, np.ndarray]]:
    """(frame_index, seconds from the first frame, BGR image) of every frame, the plain way."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [
            (f.pts * stream.time_base, f.to_ndarray(format="bgr24"))
            for f in container.decode(stream)
        ]
    first = frames[0][0]
    return [(i, float(t - first), image) for i, (t, image) in enumerate(frames)]


# -- editing boxes -----------------------------------------------------------------------


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> list[int]:
    """Offsets of every box at the nested path (e.g. [moov, trak, mdia, mdhd])."""
    end = len(data) if end is None else end
    found, offset = [], start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size < 8:
            break
        if kind == path[0]:
            if len(path) == 1:
                found.append(offset)
            elif kind in _CONTAINERS:
                found += _find(data, path[1:], offset + 8, offset + size)
        offset += size
    return found


def _replace_box(data: bytes, path: list[bytes], payload: bytes) -> bytes:
    """The file with the box at path given a new payload, its ancestors' sizes fixed.

    Only for files whose moov comes after mdat (no chunk offset moves).
    """
    (offset,) = _find(data, path)
    (size,) = struct.unpack(">I", data[offset : offset + 4])
    grown = 8 + len(payload) - size
    edited = bytearray(data[:offset] + struct.pack(">I", 8 + len(payload)) + path[-1] + payload)
    edited += data[offset + size :]
    for depth in range(1, len(path)):
        (ancestor,) = _find(bytes(edited), path[:depth])
        (old,) = struct.unpack(">I", edited[ancestor : ancestor + 4])
        edited[ancestor : ancestor + 4] = struct.pack(">I", old + grown)
    return bytes(edited)


def _payload(data: bytes, path: list[bytes]) -> bytes:
    (offset,) = _find(data, path)
    (size,) = struct.unpack(">I", data[offset : offset + 4])
    return data[offset + 8 : offset + size]


def _moov_last(data: bytes) -> None:
    assert _find(data, [b"moov"])[0] > _find(data, [b"mdat"])[0], "moov must follow mdat"


STBL = [b"moov", b"trak", b"mdia", b"minf", b"stbl"]


def frame_count_bomb_mp4(source: Path, path: Path) -> Path:
    """A real MP4 whose time-to-sample table (stts) claims over 10^10 frames.

    Three entries of 0xFFFFFFFF samples each follow the real ones: the file holds a few
    frames, its header counts 12,884,901,885 more.
    """
    data = source.read_bytes()
    _moov_last(data)
    stts = _payload(data, [*STBL, b"stts"])
    (count,) = struct.unpack(">I", stts[4:8])
    entries = stts[8 : 8 + 8 * count] + struct.pack(">II", 0xFFFFFFFF, 512) * 3
    data = _replace_box(data, [*STBL, b"stts"], stts[:4] + struct.pack(">I", count + 3) + entries)
    path.write_bytes(data)
    return path


def duration_bomb_mp4(source: Path, path: Path) -> Path:
    """A real MP4 whose movie and media headers claim a duration of 2^62 ticks."""
    data = source.read_bytes()
    _moov_last(data)
    for box_path in ([b"moov", b"mvhd"], [b"moov", b"trak", b"mdia", b"mdhd"]):
        old = _payload(data, box_path)
        assert old[0] == 0, "version 0 header expected"
        # version 1: 64-bit creation and modification times and duration
        created, modified, timescale, _duration = struct.unpack(">IIII", old[4:20])
        header = struct.pack(">I", 1 << 24) + struct.pack(
            ">QQIQ", created, modified, timescale, 1 << 62
        )
        data = _replace_box(data, box_path, header + old[20:])
    path.write_bytes(data)
    return path


def lying_size_mp4(source: Path, path: Path, size_wh: tuple[int, int] = (64, 48)) -> Path:
    """A real MP4 whose sample description and track header claim a small frame size."""
    data = bytearray(source.read_bytes())
    stsd = _find(bytes(data), [*STBL, b"stsd"])[0]
    entry = stsd + 16  # size, 'stsd', version/flags, entry count
    # visual sample entry: 8 header, 6 reserved, 2 data ref index, 16 pre-defined, then w, h
    data[entry + 32 : entry + 36] = struct.pack(">HH", *size_wh)
    tkhd = _find(bytes(data), [b"moov", b"trak", b"tkhd"])[0]
    (tkhd_size,) = struct.unpack(">I", data[tkhd : tkhd + 4])
    data[tkhd + tkhd_size - 8 : tkhd + tkhd_size] = struct.pack(
        ">II", size_wh[0] << 16, size_wh[1] << 16
    )
    path.write_bytes(bytes(data))
    return path


def without_sync_samples(source: Path, path: Path) -> Path:
    """A copy whose sync sample table (stss) is renamed `free`: every packet then claims
    to be a keyframe, P- and B-frames included."""
    data = bytearray(source.read_bytes())
    (stss,) = _find(bytes(data), [*STBL, b"stss"])
    data[stss + 4 : stss + 8] = b"free"
    path.write_bytes(bytes(data))
    return path


def with_edit_list(source: Path, path: Path, skip_ticks: int) -> Path:
    """A copy whose edit list starts skip_ticks (media time scale) later: frames before it
    are decoded for reference but not shown."""
    data = bytearray(source.read_bytes())
    (elst,) = _find(bytes(data), [b"moov", b"trak", b"edts", b"elst"])
    version = data[elst + 8]
    assert version == 0, "version 0 edit list expected"
    # entry 0: segment duration (4), media time (4), rate (4)
    (count,) = struct.unpack(">I", data[elst + 12 : elst + 16])
    assert count >= 1
    media_time_at = elst + 16 + 4
    (media_time,) = struct.unpack(">i", data[media_time_at : media_time_at + 4])
    data[media_time_at : media_time_at + 4] = struct.pack(">i", media_time + skip_ticks)
    path.write_bytes(bytes(data))
    return path


# -- playlists posing as MP4 ---------------------------------------------------------------


def concat_playlist(target: str) -> bytes:
    """An ffconcat playlist naming target, with `ftyp` inside its first 64 bytes."""
    return f"ffconcat version 1.0\n# ftypisom\nfile '{target}'\n".encode()


def ftyp_then_concat_playlist(target: str) -> bytes:
    """A real ftyp box (bytes 4-8 are `ftyp`), then an ffconcat playlist naming target."""
    return FTYP_BOX + concat_playlist(target)


def hls_playlist(target: str) -> bytes:
    """An HLS playlist whose one segment is target, with `ftyp` inside its first 64 bytes."""
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n# ftypisom\n#EXT-X-TARGETDURATION:10\n"
        f"#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"
    ).encode()
