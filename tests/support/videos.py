"""MP4 files made by the tests: frames with known text, and corrupt variants."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from fractions import Fraction
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


# -- a hostile corpus: files that look like MP4 (or claim to) and are not playable ----------

FTYP_BOX = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def _box(kind: bytes, payload: bytes) -> bytes:
    """An ISO base media box: 32-bit size, four-character type, payload."""
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    """A box with the version and flags word of a 'full box'."""
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


_IDENTITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def audio_only_mp4(path: Path, *, seconds: float = 1.0, sample_rate: int = 8000) -> Path:
    """A well-formed MP4 whose only track is sound (16-bit PCM, a 440 Hz tone): no video track."""
    samples = int(seconds * sample_rate)
    tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / sample_rate) * 8000).astype("<i2")
    mdat = _box(b"mdat", tone.tobytes())
    chunk_offset = len(FTYP_BOX) + 8  # the samples start right after mdat's header
    mvhd = _full_box(
        b"mvhd",
        struct.pack(">IIII", 0, 0, sample_rate, samples)
        + struct.pack(">IH", 0x10000, 0x100)  # rate 1.0, volume 1.0
        + bytes(10)
        + _IDENTITY_MATRIX
        + bytes(24)
        + struct.pack(">I", 2),  # next track id
    )
    tkhd = _full_box(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, 1, 0, samples)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0x100, 0)  # layer, group, volume 1.0
        + _IDENTITY_MATRIX
        + struct.pack(">II", 0, 0),  # no width or height: not a visual track
        flags=3,
    )
    mdhd = _full_box(b"mdhd", struct.pack(">IIIIHH", 0, 0, sample_rate, samples, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", struct.pack(">I4s12s", 0, b"soun", bytes(12)) + b"Sound\x00")
    sample_entry = _box(
        b"sowt",  # little-endian signed 16-bit PCM
        bytes(6)
        + struct.pack(">H", 1)  # data reference index
        + struct.pack(">HHI", 0, 0, 0)
        + struct.pack(">HHHH", 1, 16, 0, 0)  # mono, 16 bits
        + struct.pack(">I", sample_rate << 16),
    )
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", struct.pack(">I", 1) + sample_entry)
        + _full_box(b"stts", struct.pack(">III", 1, samples, 1))
        + _full_box(b"stsc", struct.pack(">IIII", 1, 1, samples, 1))
        + _full_box(b"stsz", struct.pack(">II", 2, samples))
        + _full_box(b"stco", struct.pack(">II", 1, chunk_offset)),
    )
    dinf = _box(
        b"dinf", _full_box(b"dref", struct.pack(">I", 1) + _full_box(b"url ", b"", flags=1))
    )
    minf = _box(b"minf", _full_box(b"smhd", struct.pack(">hH", 0, 0)) + dinf + stbl)
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    path.write_bytes(FTYP_BOX + mdat + _box(b"moov", mvhd + trak))
    return path


def box_offsets(data: bytes, kind: bytes) -> list[int]:
    """Offsets of the top-level boxes of a type in an MP4 (32-bit sizes only)."""
    offsets, offset = [], 0
    while offset + 8 <= len(data):
        size, found = struct.unpack(">I4s", data[offset : offset + 8])
        if found == kind:
            offsets.append(offset)
        if size < 8:
            break
        offset += size
    return offsets


def huge_moov_size_mp4(source: Path, path: Path) -> Path:
    """A valid MP4 whose moov box declares a size of 0xFFFFFFFF bytes (far past the file)."""
    data = bytearray(source.read_bytes())
    (moov,) = box_offsets(bytes(data), b"moov")
    data[moov : moov + 4] = struct.pack(">I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def huge_largesize_mp4(path: Path) -> Path:
    """An ftyp box, then an mdat box whose 64-bit 'largesize' claims 2**62 bytes."""
    path.write_bytes(
        FTYP_BOX + struct.pack(">I4sQ", 1, b"mdat", 2**62) + os.urandom(4096) + bytes(64)
    )
    return path


def zero_size_box_mp4(source: Path, path: Path) -> Path:
    """A valid MP4 whose first box after ftyp declares size 0 ('to the end of the file')."""
    data = bytearray(source.read_bytes())
    offset = int.from_bytes(data[0:4], "big")
    data[offset : offset + 4] = bytes(4)
    path.write_bytes(bytes(data))
    return path


def png_bytes(size_wh: tuple[int, int] = (32, 32)) -> bytes:
    """A real PNG image (for a file named .mp4 that is not one)."""
    ok, encoded = cv2.imencode(".png", np.zeros((size_wh[1], size_wh[0], 3), np.uint8))
    assert ok
    return bytes(encoded.tobytes())


_CONTAINER_BOXES = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, shift: int) -> None:
    """Add shift to every stco entry inside moov[start:end] (walks the container boxes)."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", moov[offset : offset + 8])
        if kind in _CONTAINER_BOXES:
            _shift_chunk_offsets(moov, offset + 8, offset + size, shift)
        elif kind == b"stco":
            (count,) = struct.unpack(">I", moov[offset + 12 : offset + 16])
            for entry in range(offset + 16, offset + 16 + 4 * count, 4):
                (value,) = struct.unpack(">I", moov[entry : entry + 4])
                moov[entry : entry + 4] = struct.pack(">I", value + shift)
        offset += size


def faststart_mp4(source: Path, path: Path) -> Path:
    """The same MP4 with its moov box moved before mdat, as streaming encoders write it.

    A truncated copy of such a file still opens and declares all its frames, so its
    decoding stops early: the truncation check, not the demuxer, has to catch it.
    """
    data = source.read_bytes()
    boxes: dict[bytes, bytes] = {}
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes[kind] = data[offset : offset + size]
        offset += size
    moov = bytearray(boxes[b"moov"])
    old_mdat = box_offsets(data, b"mdat")[0]
    new_mdat = len(boxes[b"ftyp"]) + len(moov)
    _shift_chunk_offsets(moov, 8, len(moov), new_mdat - old_mdat)
    path.write_bytes(boxes[b"ftyp"] + bytes(moov) + boxes[b"mdat"])
    return path


def huge_sample_count_mp4(source: Path, path: Path) -> Path:
    """A valid MP4 whose sample size table (stsz) claims 0x3FFFFFFF samples it does not hold."""
    data = bytearray(source.read_bytes())
    stsz = bytes(data).find(b"stsz") - 4
    assert stsz > 0, "no stsz box"
    data[stsz + 16 : stsz + 20] = struct.pack(">I", 0x3FFFFFFF)  # after version/flags, size
    path.write_bytes(bytes(data))
    return path


def padded_mp4(source: Path, path: Path, padding: int) -> Path:
    """A copy of an MP4 with a `free` box of `padding` bytes appended: big, and it still plays."""
    box = struct.pack(">I", padding + 8) + b"free" + bytes(padding)
    path.write_bytes(source.read_bytes() + box)
    return path


# -- a video with marks the testkit's `marks` tool finds: boxes known to the pixel ----------

MARKS_SIZE_WH = (320, 180)
RED_SIDE = 40  # pixels: the red square, class "square", moving right 8 px a frame
BLUE_SIDE = 30  # pixels: the blue square, class "tile", still, in the second half
BAR_WH = (120, 20)  # pixels: the black bar, text "TOP" in the first half, "BOTTOM" after


def marks_boxes(index: int, frame_count: int) -> dict[str, tuple[int, int, int, int]]:
    """The xyxy boxes (inclusive-exclusive pixels) drawn on frame `index` of a marks video."""
    boxes = {"square": (10 + 8 * index, 30, 10 + 8 * index + RED_SIDE, 30 + RED_SIDE)}
    second_half = index >= frame_count // 2
    if second_half:
        boxes["tile"] = (250, 100, 250 + BLUE_SIDE, 100 + BLUE_SIDE)
    bar_y = 140 if second_half else 100
    boxes["bar"] = (20, bar_y, 20 + BAR_WH[0], bar_y + BAR_WH[1])
    return boxes


def marks_frame(index: int, frame_count: int) -> np.ndarray:
    """Frame `index` of a marks video (BGR): white, a red square, a black bar, a blue tile."""
    width, height = MARKS_SIZE_WH
    frame = np.full((height, width, 3), 255, np.uint8)
    colours = {"square": (0, 0, 255), "tile": (255, 0, 0), "bar": (0, 0, 0)}
    for name, (x1, y1, x2, y2) in marks_boxes(index, frame_count).items():
        frame[y1:y2, x1:x2] = colours[name]
    return frame


def write_marks_video(path: Path, frame_count: int = 30, *, codec: str, fps: int = 10) -> Path:
    """A marks video as MPEG-4 Part 2 (`codec="mp4v"`, OpenCV's) or H.264 (`"h264"`, PyAV's
    libx264, 8-bit 4:2:0: what browsers play)."""
    width, height = MARKS_SIZE_WH
    if codec == "mp4v":
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        try:
            for index in range(frame_count):
                writer.write(marks_frame(index, frame_count))
        finally:
            writer.release()
        return path
    if codec != "h264":
        raise ValueError(f"unknown codec {codec!r}")
    import av  # only the H.264 writer needs PyAV

    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18", "g": "10"}
        stream.time_base = stream.codec_context.time_base = Fraction(1, fps)
        for index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(marks_frame(index, frame_count), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path
