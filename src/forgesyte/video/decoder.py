"""MP4-only decoding with PyAV: index the packets first, then decode only what a job needs.

The file is opened with FFmpeg's MOV/MP4 demuxer forced (no format probing, so a
playlist or any other format is never followed), with the `file` protocol alone and
external data references off. Nothing here loops over a count the header claims: the
packet index holds what the file really contains, and every decision (which frames a
job analyses, where decoding restarts, how long the job is) is made from it.

Decoding a wanted frame needs its keyframe and the reference frames between: the
decoder is fed from the last keyframe at or before each wanted frame, packets between
two such runs are never decoded, and non-reference frames inside a run are skipped by
the decoder (`skip_frame = NONREF`) unless they are wanted, and nothing after the last
wanted frame is read. Each packet fed is stamped with its decode-order number as its
pts, so every frame the decoder returns names its packet and hence its exact place and
time in a full decode. Where the packets between two runs span many bytes the demuxer
seeks over them; the packet it lands on is named by its byte offset, so a seek never
shifts the numbering.

A caller may give the decoder threads of its own (frame threads; `threads=`). The analysis
child does not: bench row s measured that a sampled job gains almost nothing from them
(the frames it needs are reference frames that wait on each other), so it decodes on the
calling thread.

Only wanted frames are converted to BGR, by one `BgrConverter` per job: PyAV's
`to_ndarray(format=...)` builds a new swscale context (and its thread pool) for every
frame, which cost more than the conversion itself.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import av.codec
import av.codec.context
import av.container
import av.video
import av.video.reformatter
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MP4_DEMUXER = "mp4"  # FFmpeg's mov,mp4,m4a,3gp,3g2,mj2 demuxer; nothing is probed
OPEN_OPTIONS = {
    "protocol_whitelist": "file",  # the file itself; no network, pipe or concat protocol
    "enable_drefs": "0",  # the MOV demuxer never opens files named by data references
    "use_absolute_path": "0",
    "probesize": "32",  # the sample table gives size and codec: decode nothing while opening
    "analyzeduration": "0",
}
DEFAULT_MAX_FRAME_PIXELS = 8192 * 4320
MAX_STREAMS_WITH_OPTIONS = 16  # the pixel limit reaches the probe decoders of this many streams
TRUNCATION_TOLERANCE = 0.01  # fraction of the declared packets that may be missing
SLOT_EPSILON = 1e-9  # keeps a frame sitting exactly on a sample_fps slot boundary in it
# Packets between two runs are read through when they span fewer bytes than this, else
# the demuxer seeks to the next run's keyframe. Reading through costs about 0.1 ms of CPU
# a MiB from the page cache (far more from a disk); a seek, about as much as the 32 KiB
# the demuxer then reads again.
SEEK_MIN_BYTES = 256 * 1024


class VideoDecodeError(Exception):
    """The video cannot be decoded, has no frames, or ends before its declared length."""


class FrameTooLargeError(VideoDecodeError):
    """The video's frames are over the configured pixel limit."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(
            f"the video's frames are {width}x{height} ({width * height} pixels), "
            f"over the limit of {limit}"
        )


def check_frame_size(width: int, height: int, limit: int) -> None:
    """Raise FrameTooLargeError when width x height is over limit pixels."""
    if width * height > limit:
        raise FrameTooLargeError(width, height, limit)


@contextmanager
def open_mp4(
    path: Path, max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
) -> Iterator[av.container.InputContainer]:
    """Open a file as MP4/MOV and nothing else; always closed.

    Opening reads the stream parameters (FFmpeg may decode a first frame to find them):
    its decoders refuse frames over max_frame_pixels, so a huge frame is never
    allocated there. Raises VideoDecodeError (never naming the path) when the file is
    not a readable MP4.
    """
    if not path.is_file():
        raise VideoDecodeError(f"video file not found: {path.name}")
    decoder_options = [{"max_pixels": str(max_frame_pixels)}] * MAX_STREAMS_WITH_OPTIONS
    try:
        container = av.open(
            str(path),
            mode="r",
            format=MP4_DEMUXER,
            options=OPEN_OPTIONS,
            # one dict of codec options per stream; PyAV's stub says list[str]
            stream_options=cast(Any, decoder_options),
        )
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.info("could not open %s as MP4: %s", path.name, exc)
        raise VideoDecodeError(
            "the file could not be opened as a video (corrupt or not MP4)"
        ) from None
    try:
        yield container
    finally:
        container.close()


def video_stream(container: av.container.InputContainer) -> av.video.VideoStream:
    """The container's first video stream, or VideoDecodeError."""
    if not container.streams.video:
        raise VideoDecodeError("the video has no decodable video track")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise VideoDecodeError("the video has no decodable video track")
    return stream


@dataclass(frozen=True)
class PacketIndex:
    """The video stream's packets in decode order, as demuxed (never decoded).

    pts: presentation timestamps in time_base units; keyframe: packets decoding may start
    at; shown_order: the decode-order numbers of the shown frames (edit-list discarded
    packets left out) in presentation order, so frame_index i is packet shown_order[i].
    position: each packet's byte offset in the file (-1 where the demuxer did not say;
    none at all: nothing is sought).
    """

    pts: npt.NDArray[np.int64]
    keyframe: npt.NDArray[np.bool_]
    shown_order: npt.NDArray[np.int64]
    time_base: Fraction
    declared_packets: int
    truncated: bool
    position: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def frame_count(self) -> int:
        """Frames a full decode shows."""
        return int(self.shown_order.size)

    def seconds(self) -> npt.NDArray[np.float64]:
        """Each shown frame's presentation time, seconds from the first shown frame."""
        ticks = self.pts[self.shown_order] - self.pts[self.shown_order[0]]
        seconds: npt.NDArray[np.float64] = ticks.astype(np.float64) * float(self.time_base)
        return seconds

    def timestamp_s(self, frame_index: int) -> Fraction:
        """One shown frame's exact presentation time from the first shown frame."""
        first = int(self.pts[self.shown_order[0]])
        return (int(self.pts[self.shown_order[frame_index]]) - first) * self.time_base

    def mean_fps(self) -> float:
        """Frames per second over the shown frames' span (0.0 for a single frame)."""
        if self.frame_count < 2:
            return 0.0
        span = float(self.timestamp_s(self.frame_count - 1))
        return (self.frame_count - 1) / span if span > 0 else 0.0

    def check_complete(self) -> None:
        """Raise VideoDecodeError when the file ends well before its declared packets."""
        packets = int(self.pts.size)
        missing = self.declared_packets - packets
        if self.truncated or missing > max(1, int(self.declared_packets * TRUNCATION_TOLERANCE)):
            raise VideoDecodeError(
                f"the video stopped after {packets} of its {self.declared_packets} declared "
                "frames (truncated or corrupt)"
            )


def read_packet_index(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> PacketIndex:
    """Demux every packet of the stream (reading, not decoding) into a PacketIndex.

    A packet cut short by the end of the file, or a demuxing error, marks the index
    truncated; the packets before it stay usable.
    """
    pts_list: array[int] = array("q")
    positions: array[int] = array("q")
    keyframes = bytearray()
    shown = bytearray()
    truncated = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            if packet.is_corrupt:
                truncated = True
                break
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                raise VideoDecodeError("the video's frames carry no timestamps")
            pts_list.append(pts)
            positions.append(packet.pos if packet.pos is not None and packet.pos >= 0 else -1)
            keyframes.append(packet.is_keyframe)
            shown.append(not packet.is_discard)
    except av.FFmpegError as exc:
        log.info("demuxing stopped after %d packets: %s", len(pts_list), exc)
        truncated = True
    keyframe = np.frombuffer(bytes(keyframes), dtype=np.bool_).copy()
    if keyframe.size > 1 and keyframe.all() and not _intra_only(stream):
        # no sync sample table: MP4 then calls every packet a keyframe, which an
        # inter-coded stream may not honour, so decoding only ever starts at the first
        keyframe[1:] = False
    pts_array = _int64_array(pts_list)
    shown_ids = np.flatnonzero(np.frombuffer(bytes(shown), dtype=np.bool_))
    # presentation order; packets with equal pts keep their decode order
    order = shown_ids[np.lexsort((shown_ids, pts_array[shown_ids]))]
    time_base = stream.time_base or Fraction(1, 1)
    return PacketIndex(
        pts=pts_array,
        keyframe=keyframe,
        shown_order=order.astype(np.int64),
        time_base=Fraction(time_base),
        declared_packets=max(int(stream.frames or 0), 0),
        truncated=truncated,
        position=_int64_array(positions),
    )


def _int64_array(values: array[int]) -> npt.NDArray[np.int64]:
    return np.frombuffer(values, dtype=np.int64) if values else np.zeros(0, np.int64)


def _intra_only(stream: av.video.VideoStream) -> bool:
    """Whether every frame of the stream's codec stands alone (MJPEG, ProRes, ...)."""
    codec = stream.codec_context.codec
    intra_only = cast(int, av.codec.Properties.INTRA_ONLY.value)  # the stub types it loosely
    return bool(codec.properties & intra_only)


class BgrConverter:
    """Converts decoded frames to BGR images, keeping one swscale context for all of them.

    The pixels are exactly those of `frame.to_ndarray(format="bgr24")`; the context is
    made once and scales on the calling thread (a job converts one frame at a time).
    """

    def __init__(self) -> None:
        self._reformatter = av.video.reformatter.VideoReformatter()

    def convert(self, frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
        """The frame as a height x width x 3 BGR image (a new array for every frame)."""
        bgr = self._reformatter.reformat(frame, format="bgr24", threads=1)
        return cast(npt.NDArray[np.uint8], bgr.to_ndarray())


@dataclass(frozen=True)
class DecodePlan:
    """Which packets to feed the decoder, and which of their frames are wanted.

    runs: (first, last) decode-order packet numbers, in order, each starting at a
    keyframe; wanted: decode-order number -> frame_index, for the frames to hand out.
    seeks: for each run, the presentation timestamp of its keyframe when the demuxer
    seeks there (None: the packets before it are read through). positions: every
    packet's byte offset, strictly increasing, which names the packet a seek lands on
    (None: the file gives none, and nothing is sought).
    """

    runs: list[tuple[int, int]]
    wanted: dict[int, int]
    frame_order: list[int]  # wanted frame indices in presentation order
    seeks: list[int | None]
    positions: npt.NDArray[np.int64] | None
    start_pts: int  # the earliest presentation timestamp: a seek there reads from the start

    def packet_at(self, position: int | None) -> int:
        """The decode-order number of the packet at this byte offset (after a seek)."""
        if self.positions is not None and position is not None:
            number = int(np.searchsorted(self.positions, position))
            if number < self.positions.size and self.positions[number] == position:
                return number
        raise VideoDecodeError("the video could not be read (its packets moved)")


def plan_decoding(
    index: PacketIndex, frame_indices: list[int], *, seek_min_bytes: int = SEEK_MIN_BYTES
) -> DecodePlan:
    """The decoding runs that give exactly these frames (presentation-order indices).

    Each wanted packet is reached from the last keyframe before it in decode order
    whose pts is not after its own (an open GOP's leading frames need the keyframe
    before theirs); overlapping or touching runs merge. A run whose keyframe lies at
    least seek_min_bytes past the packet the demuxer would read next is sought.
    """
    keyframes = np.flatnonzero(index.keyframe)
    wanted = {int(index.shown_order[i]): i for i in frame_indices}
    spans: list[tuple[int, int]] = []
    for packet in wanted:
        position = int(np.searchsorted(keyframes, packet, side="right")) - 1
        while position > 0 and index.pts[keyframes[position]] > index.pts[packet]:
            position -= 1
        spans.append((int(keyframes[position]) if position >= 0 else 0, packet))
    # by start: a leading frame of an open GOP starts before the keyframe decoded ahead
    # of it, so its span may reach back into an earlier run
    runs: list[tuple[int, int]] = []
    for start, packet in sorted(spans):
        if runs and start <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], packet))
        else:
            runs.append((start, packet))
    positions = index.position
    seekable = positions.size > 0 and positions[0] >= 0 and bool(np.all(np.diff(positions) > 0))
    seeks: list[int | None] = []
    next_read = 0  # the packet the demuxer reads next without a seek
    for first, last in runs:
        gap_bytes = int(positions[first] - positions[next_read]) if seekable else 0
        sought = seekable and gap_bytes > 0 and gap_bytes >= seek_min_bytes
        # FFmpeg's MP4 demuxer seeks by presentation time to the last keyframe shown at
        # or before it: the run's keyframe (one a GOP earlier after some edit lists)
        seeks.append(int(index.pts[first]) if sought else None)
        next_read = last + 1
    return DecodePlan(
        runs=runs,
        wanted=wanted,
        frame_order=list(frame_indices),
        seeks=seeks,
        positions=positions if seekable else None,
        start_pts=int(index.pts.min()) if index.pts.size else 0,
    )


def decode_planned_frames(
    path: Path, plan: DecodePlan, max_frame_pixels: int, *, threads: int = 1
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Yield (frame_index, BGR image) for each wanted frame, in presentation order.

    threads: the decoder's own threads (frame threads where the codec has them, else
    slice threads); 1 decodes on the calling thread. Opens the file afresh (the index
    read its demuxer to the end). Raises VideoDecodeError when the decoder fails or a
    wanted frame never comes out, FrameTooLargeError when a decoded frame is over
    max_frame_pixels.
    """
    if threads < 1:
        raise ValueError("threads must be >= 1")
    if not plan.runs:
        return
    with open_mp4(path, max_frame_pixels) as container:
        stream = video_stream(container)
        set_decoder_threads(stream.codec_context, threads)
        yield from _decode_runs(container, stream, plan, max_frame_pixels)


def set_decoder_threads(codec: av.codec.context.CodecContext, threads: int) -> None:
    """Give an unopened decoder `threads` threads of its own (1: none).

    FFmpeg prefers frame threads (several frames in flight, one per thread) and falls
    back to slice threads for codecs without them. PyAV's default, slice threads with
    FFmpeg's automatic count (cores + 1), is replaced: a worker's share of the cores is
    the caller's to give.
    """
    codec.thread_type = "AUTO" if threads > 1 else "SLICE"
    codec.thread_count = threads


def _decode_runs(
    container: av.container.InputContainer,
    stream: av.video.VideoStream,
    plan: DecodePlan,
    max_frame_pixels: int,
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    codec = stream.codec_context
    codec.options = {"max_pixels": str(max_frame_pixels)}
    converter = BgrConverter()
    ready: dict[int, npt.NDArray[np.uint8]] = {}  # decoded, waiting for earlier frames
    position = 0  # in plan.frame_order: the next frame to hand out

    def receive(frames: list[av.VideoFrame]) -> None:
        for frame in frames:
            check_frame_size(frame.width, frame.height, max_frame_pixels)
            frame_index = plan.wanted.get(int(frame.pts if frame.pts is not None else -1))
            if frame_index is not None:
                ready[frame_index] = converter.convert(frame)

    def decode(packet: av.Packet[Any] | None) -> None:
        try:
            receive(codec.decode(packet))
        except av.FFmpegError as exc:
            raise _decode_error(codec, max_frame_pixels, exc) from exc

    def take_ready(done_up_to: int) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        """Hand out the ready frames in order; a frame whose run is done must be there."""
        nonlocal position
        while position < len(plan.frame_order):
            frame_index = plan.frame_order[position]
            if frame_index not in ready:
                if int(index_of[frame_index]) <= done_up_to:
                    raise VideoDecodeError(f"frame {frame_index} could not be decoded")
                return
            position += 1
            yield frame_index, ready.pop(frame_index)

    index_of = {frame_index: packet for packet, frame_index in plan.wanted.items()}
    runs_done = 0
    last_packet = -1
    for packet_number, packet, ends_run in _run_packets(container, stream, plan):
        codec.skip_frame = "DEFAULT" if packet_number in plan.wanted else "NONREF"
        packet.pts = packet_number  # the frame it gives comes back with this pts
        decode(packet)
        if ends_run:
            decode(None)  # the run is over: everything it holds comes out
            codec.flush_buffers()
            runs_done += 1
            last_packet = packet_number
            yield from take_ready(packet_number)
        else:
            yield from take_ready(-1)
    yield from take_ready(last_packet if runs_done == len(plan.runs) else 1 << 62)


def _run_packets(
    container: av.container.InputContainer, stream: av.video.VideoStream, plan: DecodePlan
) -> Iterator[tuple[int, av.Packet[Any], bool]]:
    """(decode-order number, packet, whether it ends its run) for the packets of the
    plan's runs, in order; nothing after the last run is read.

    Between runs the demuxer reads through, or seeks back from the next run's keyframe
    where the plan says so: the packet it lands on is named by its byte offset, and one
    past the keyframe makes it read again from the start.
    """
    packets = container.demux(stream)
    number: int | None = -1  # the last packet read; None: find it from the next one
    try:
        for (first, last), seek_pts in zip(plan.runs, plan.seeks, strict=True):
            rewound = False
            if seek_pts is not None:
                container.seek(seek_pts, stream=stream)  # to the keyframe at or before it
                number = None
            for packet in packets:
                if packet.size == 0 and packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                if number is None:
                    number = plan.packet_at(packet.pos)
                    if number > first:  # landed past the keyframe
                        if rewound:
                            raise VideoDecodeError("the video could not be read (seek failed)")
                        container.seek(plan.start_pts, stream=stream)
                        number, rewound = None, True
                        continue
                else:
                    number += 1
                if number < first:
                    continue  # between runs: never decoded
                yield number, packet, number == last
                if number == last:
                    break
    except av.FFmpegError as exc:  # demuxing failed past the index (the file changed)
        raise VideoDecodeError("the video could not be read to its end") from exc


def _decode_error(codec: Any, max_frame_pixels: int, exc: Exception) -> VideoDecodeError:
    """The error to report for a decoder failure (never the library's own text)."""
    width, height = int(codec.width or 0), int(codec.height or 0)
    if width * height > max_frame_pixels:
        return FrameTooLargeError(width, height, max_frame_pixels)
    log.info("decoder error: %s", exc)
    return VideoDecodeError("the video's frame data is corrupt")
