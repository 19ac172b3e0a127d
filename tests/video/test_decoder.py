"""The MP4-only decoder: exact frames against a full decode, header bombs, huge frames,
playlists posing as MP4, and decoding only the packets a job needs."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from forgesyte.plugins.base import Frame
from forgesyte.video import decoder
from forgesyte.video.decoder import (
    SEEK_MIN_BYTES,
    BgrConverter,
    DecodePlan,
    decode_planned_frames,
    open_mp4,
    plan_decoding,
    read_packet_index,
    video_stream,
)
from forgesyte.video.service import (
    FrameTooLargeError,
    SamplingOptions,
    VideoDecodeError,
    VideoFilePipelineService,
    select_frames,
)
from tests.segments.videos import write_keyframed_video
from tests.support.videos import faststart_mp4, truncated_mp4, write_counter_video
from tests.video.crafted import (
    concat_playlist,
    duration_bomb_mp4,
    frame_count_bomb_mp4,
    ftyp_then_concat_playlist,
    full_decode,
    hls_playlist,
    lying_size_mp4,
    with_edit_list,
    without_sync_samples,
    write_h264_video,
    write_mp4v_video,
)

BOMB_SECONDS = 5.0  # a bomb ends (completed or failed) well within this


class Keeper:
    """A frame analyser that keeps every frame it is given."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def run(self, frame: Frame) -> dict[str, Any]:
        self.frames.append(frame)
        return {"mean": float(frame.mean())}


VIDEO_KINDS: dict[str, Callable[[Path], Path]] = {
    "h264-bframes": lambda folder: write_h264_video(folder / "b.mp4", 75, gop=24),
    "h264-no-bframes-long-gop": lambda folder: write_h264_video(
        folder / "p.mp4", 75, b_frames=0, gop=60
    ),
    "h264-variable-rate": lambda folder: write_h264_video(
        folder / "vfr.mp4", 60, frame_ticks=[(1, 1, 2, 3, 1, 5)[i % 6] for i in range(60)]
    ),
    "h264-edit-list": lambda folder: with_edit_list(
        write_h264_video(folder / "e0.mp4", 60, gop=12), folder / "e.mp4", 5 * 512
    ),
    "mp4v-gop12": lambda folder: write_mp4v_video(folder / "m.mp4", 50),
    "mp4v-no-sync-sample-table": lambda folder: without_sync_samples(
        write_mp4v_video(folder / "s0.mp4", 50), folder / "s.mp4"
    ),
}

SAMPLINGS = {
    "all": SamplingOptions(),
    "stride-10": SamplingOptions(frame_stride=10),
    "stride-7-max-4": SamplingOptions(frame_stride=7, max_frames=4),
    "fps-1": SamplingOptions(sample_fps=1.0),
    "fps-7.5": SamplingOptions(sample_fps=7.5),
    "fps-3-max-2": SamplingOptions(sample_fps=3.0, max_frames=2),
}


def expected_frames(
    reference: list[tuple[int, float, np.ndarray]], sampling: SamplingOptions
) -> list[int]:
    """The frame indices a job should analyse, worked out from a plain full decode."""
    if sampling.sample_fps is None:
        chosen = [i for i, _, _ in reference if i % sampling.frame_stride == 0]
    else:
        chosen, last_slot = [], -1
        for index, seconds, _ in reference:
            slot = math.floor(seconds * sampling.sample_fps + 1e-9)
            if slot != last_slot:
                chosen.append(index)
                last_slot = slot
    return chosen[: sampling.max_frames] if sampling.max_frames else chosen


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("decoder")
    return {name: make(folder) for name, make in VIDEO_KINDS.items()}


@pytest.mark.parametrize("decode_threads", [1, 3])
@pytest.mark.parametrize("sampling_name", list(SAMPLINGS))
@pytest.mark.parametrize("kind", list(VIDEO_KINDS))
def test_frames_are_exactly_those_of_a_full_decode(
    videos: dict[str, Path], kind: str, sampling_name: str, decode_threads: int
) -> None:
    """Whatever the sampling, and with the decoder's own frame threads too: skipped
    non-reference frames and runs that start at keyframes give a full decode's pixels."""
    sampling = SAMPLINGS[sampling_name]
    reference = full_decode(videos[kind])
    keeper = Keeper()
    service = VideoFilePipelineService(keeper, decode_threads=decode_threads)
    results = service.run(videos[kind], sampling)
    wanted = expected_frames(reference, sampling)
    assert [f.frame_index for f in results.frames] == wanted
    assert [f.timestamp_s for f in results.frames] == [round(reference[i][1], 6) for i in wanted]
    for got, index in zip(keeper.frames, wanted, strict=True):
        assert np.array_equal(got, reference[index][2]), f"frame {index} differs"
    assert results.video.frame_count == len(reference)


def test_the_edit_list_and_variable_rate_are_real(videos: dict[str, Path]) -> None:
    """The fixtures mean what they say: frames hidden by the edit list, uneven spacing."""
    assert len(full_decode(videos["h264-edit-list"])) == 55
    gaps = np.diff([t for _, t, _ in full_decode(videos["h264-variable-rate"])])
    assert gaps.min() < 0.05 < 0.1 < gaps.max()


def packets_fed(path: Path, sampling: SamplingOptions) -> tuple[int, int]:
    """(packets the plan feeds the decoder, packets in the file)."""
    with open_mp4(path) as container:
        index = read_packet_index(container, video_stream(container))
    plan = plan_decoding(index, select_frames(index, sampling))
    return sum(last - first + 1 for first, last in plan.runs), int(index.pts.size)


def test_only_the_packets_a_job_needs_are_decoded(videos: dict[str, Path]) -> None:
    fed, total = packets_fed(videos["h264-bframes"], SamplingOptions(sample_fps=1.0))
    assert fed < total / 2  # two wanted frames; runs start at their keyframes
    fed, total = packets_fed(videos["h264-no-bframes-long-gop"], SamplingOptions(frame_stride=10))
    assert fed < total  # frames 61-74 are after the last wanted one's keyframe run
    fed, total = packets_fed(videos["h264-bframes"], SamplingOptions())
    assert fed == total
    # frames 0 and 30: frame 0, then from the last keyframe before frame 30
    fed, total = packets_fed(videos["mp4v-gop12"], SamplingOptions(sample_fps=1.0))
    assert fed < 31 and total == 50
    # without a sync sample table every packet claims to be a keyframe: trust only the first
    no_table = videos["mp4v-no-sync-sample-table"]
    assert packets_fed(no_table, SamplingOptions(sample_fps=1.0)) == (31, 50)


def test_skip_unchanged_still_reuses_results(tmp_path: Path) -> None:
    path = write_h264_video(tmp_path / "v.mp4", 30, gop=10)
    service = VideoFilePipelineService(Keeper())
    plain = service.run(path, SamplingOptions(frame_stride=3))
    skipping = service.run(path, SamplingOptions(frame_stride=3, skip_unchanged=True))
    assert [f.frame_index for f in skipping.frames] == [f.frame_index for f in plain.frames]
    again = service.run(path, SamplingOptions(frame_stride=3, skip_unchanged=True))
    assert again == skipping


@pytest.mark.parametrize("sampling_name", list(SAMPLINGS))
def test_a_frame_count_bomb_ends_in_seconds(tmp_path: Path, sampling_name: str) -> None:
    source = write_counter_video(tmp_path / "small.mp4", 30)
    bomb = frame_count_bomb_mp4(source, tmp_path / "bomb.mp4")
    assert bomb.stat().st_size < 4096
    # the old decoder believed it: OpenCV reports the claimed count
    capture = cv2.VideoCapture(str(bomb), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) > 1e10
    capture.release()
    sampling = SAMPLINGS[sampling_name]
    keeper = Keeper()
    started = time.monotonic()
    if sampling.max_frames is None:
        with pytest.raises(VideoDecodeError, match="stopped after 30 of its 12884901915"):
            VideoFilePipelineService(keeper).run(bomb, sampling)
        assert not keeper.frames  # it fails before any frame is analysed
    else:  # a capped job gets its frames from the part the file really holds
        results = VideoFilePipelineService(keeper).run(bomb, sampling)
        assert len(results.frames) == sampling.max_frames
        assert all(f.frame_index < 30 for f in results.frames)
    assert time.monotonic() - started < BOMB_SECONDS


def test_a_duration_bomb_completes_with_the_real_frames(tmp_path: Path) -> None:
    source = write_counter_video(tmp_path / "small.mp4", 30)
    bomb = duration_bomb_mp4(source, tmp_path / "bomb.mp4")
    started = time.monotonic()
    for sampling in SAMPLINGS.values():
        results = VideoFilePipelineService(Keeper()).run(bomb, sampling)
        assert results.video.frame_count == 30
    assert time.monotonic() - started < BOMB_SECONDS


def test_frames_over_the_pixel_limit_fail_before_decoding(tmp_path: Path) -> None:
    path = write_h264_video(tmp_path / "v.mp4", 5, size_wh=(320, 192), b_frames=0)
    keeper = Keeper()
    with pytest.raises(FrameTooLargeError) as caught:
        VideoFilePipelineService(keeper, max_frame_pixels=320 * 192 - 1).run(
            path, SamplingOptions()
        )
    assert str(caught.value) == (
        "the video's frames are 320x192 (61440 pixels), over the limit of 61439"
    )
    assert not keeper.frames
    at_limit = VideoFilePipelineService(keeper, max_frame_pixels=320 * 192)
    assert len(at_limit.run(path, SamplingOptions()).frames) == 5


def test_a_sample_table_that_understates_the_size_still_fails(tmp_path: Path) -> None:
    source = write_h264_video(tmp_path / "v.mp4", 3, size_wh=(320, 192), b_frames=0)
    lying = lying_size_mp4(source, tmp_path / "lying.mp4", (32, 32))
    keeper = Keeper()
    with pytest.raises(FrameTooLargeError, match="320x192"):
        VideoFilePipelineService(keeper, max_frame_pixels=10_000).run(lying, SamplingOptions())
    assert not keeper.frames


PLAYLISTS: dict[str, Callable[[Path], bytes]] = {
    "ffconcat-by-storage-name": lambda victim: concat_playlist(victim.name),
    "ffconcat-by-absolute-path": lambda victim: concat_playlist(str(victim)),
    "ftyp-box-then-ffconcat": lambda victim: ftyp_then_concat_playlist(victim.name),
    "hls-by-storage-name": lambda victim: hls_playlist(victim.name),
    "hls-by-absolute-path": lambda victim: hls_playlist(str(victim)),
}


@pytest.mark.parametrize("name", list(PLAYLISTS))
def test_a_playlist_posing_as_mp4_reads_nothing(tmp_path: Path, name: str) -> None:
    victim = write_counter_video(tmp_path / "0b7e3d2a-victim.mp4", 30)
    playlist = tmp_path / "playlist.mp4"
    playlist.write_bytes(PLAYLISTS[name](victim))
    keeper = Keeper()
    with pytest.raises(VideoDecodeError, match="could not be opened"):
        VideoFilePipelineService(keeper).run(playlist, SamplingOptions())
    assert not keeper.frames


def test_the_old_decoder_followed_a_playlist(tmp_path: Path) -> None:
    """What the MP4-only open prevents: OpenCV's probing decoder read the named video."""
    victim = write_counter_video(tmp_path / "victim.mp4", 30)
    playlist = tmp_path / "playlist.mp4"
    playlist.write_bytes(concat_playlist(victim.name))
    capture = cv2.VideoCapture(str(playlist), cv2.CAP_FFMPEG)
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    assert frames == 30


def test_a_truncated_file_fails_unless_the_cap_comes_first(tmp_path: Path) -> None:
    moov_last = write_counter_video(tmp_path / "m.mp4", 30, size_wh=(96, 64))
    whole = faststart_mp4(moov_last, tmp_path / "f.mp4")
    cut = truncated_mp4(whole, tmp_path / "cut.mp4", 0.6)
    keeper = Keeper()
    with pytest.raises(VideoDecodeError, match=r"stopped after \d+ of its 30 declared frames"):
        VideoFilePipelineService(keeper).run(cut, SamplingOptions(frame_stride=5))
    assert not keeper.frames  # found from the packet index, before any frame is analysed
    capped = VideoFilePipelineService(keeper).run(cut, SamplingOptions(max_frames=3))
    assert [f.frame_index for f in capped.frames] == [0, 1, 2]


def test_one_converter_gives_to_ndarray_pixels_whatever_the_frames() -> None:
    """The job's BgrConverter keeps one swscale context: when the frames change size,
    pixel format or colour range between calls it still gives `to_ndarray`'s pixels, and
    every image it hands out is an array of its own."""
    rng = np.random.default_rng(3)
    frames: list[av.VideoFrame] = []
    for (width, height), pixel_format, color_range in (
        ((160, 96), "yuv420p", 0),
        ((160, 96), "yuv420p", 2),  # full (JPEG) range
        ((96, 64), "yuv444p", 0),
        ((96, 64), "nv12", 0),
        ((160, 96), "yuv420p", 0),
    ):
        bgr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=pixel_format)
        frame.color_range = color_range
        frames.append(frame)
    converter = BgrConverter()
    images = [converter.convert(frame) for frame in frames]
    for frame, image in zip(frames, images, strict=True):
        assert np.array_equal(image, frame.to_ndarray(format="bgr24"))
    assert len({image.ctypes.data for image in images}) == len(images)
    images[0][:] = 0
    assert np.array_equal(images[4], frames[4].to_ndarray(format="bgr24"))


def test_a_leading_frame_of_an_open_gop_reaches_back_into_the_run_before(
    tmp_path: Path,
) -> None:
    """MPEG-4 with B-frames: keyframe packet 28 is shown as frame 30, and frames 28-29
    come after it in decode order but need the P-frames before it. Frame 30 is wanted
    first in decode order, so frame 28's run must reach back and join the earlier run."""
    video = write_keyframed_video(tmp_path / "open-gop.mp4", 95)
    sampling = SamplingOptions(sample_fps=12.0)
    reference = full_decode(video)
    keeper = Keeper()
    results = VideoFilePipelineService(keeper).run(video, sampling)
    wanted = expected_frames(reference, sampling)
    assert 28 in wanted and 30 in wanted
    assert [f.frame_index for f in results.frames] == wanted
    for got, index in zip(keeper.frames, wanted, strict=True):
        assert np.array_equal(got, reference[index][2]), f"frame {index} differs"


class CountingContainer:
    """An open container that counts the packets demuxed from it and the seeks made."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self.packets_read = 0
        self.seeks = 0

    @property
    def streams(self) -> Any:
        return self._container.streams

    def demux(self, stream: Any) -> Iterator[Any]:
        for packet in self._container.demux(stream):
            self.packets_read += packet.size > 0
            yield packet

    def seek(self, offset: int, **options: Any) -> None:
        self.seeks += 1
        self._container.seek(offset, **options)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingContainer]:
    """The containers the decoder opens from now on, counting what is read from them."""
    opened: list[CountingContainer] = []
    real_open = decoder.open_mp4

    @contextlib.contextmanager
    def counting_open(path: Path, max_frame_pixels: int) -> Iterator[CountingContainer]:
        with real_open(path, max_frame_pixels) as container:
            opened.append(CountingContainer(container))
            yield opened[-1]

    monkeypatch.setattr(decoder, "open_mp4", counting_open)
    return opened


def planned(path: Path, frames: list[int] | SamplingOptions, **options: Any) -> DecodePlan:
    with open_mp4(path) as container:
        index = read_packet_index(container, video_stream(container))
    if isinstance(frames, SamplingOptions):
        frames = select_frames(index, frames)
    return plan_decoding(index, frames, **options)


def assert_exact(path: Path, plan: DecodePlan, threads: int = 1) -> None:
    """The plan's frames decode to exactly a full decode's pixels, in order."""
    reference = full_decode(path)
    got = list(decode_planned_frames(path, plan, 1 << 30, threads=threads))
    assert [index for index, _ in got] == plan.frame_order
    for index, image in got:
        assert np.array_equal(image, reference[index][2]), f"frame {index} differs"


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("sampling_name", ["stride-10", "fps-1", "fps-7.5"])
@pytest.mark.parametrize("kind", list(VIDEO_KINDS))
def test_seeking_over_every_gap_gives_the_same_frames(
    videos: dict[str, Path],
    counted: list[CountingContainer],
    kind: str,
    sampling_name: str,
    threads: int,
) -> None:
    """Every run after a gap starts with a seek; the demuxer lands on the run's keyframe
    (a GOP earlier after this edit list) and the frames are a full decode's."""
    plan = planned(videos[kind], SAMPLINGS[sampling_name], seek_min_bytes=0)
    assert_exact(videos[kind], plan, threads)
    (container,) = counted
    assert container.seeks == sum(seek is not None for seek in plan.seeks)
    fed = sum(last - first + 1 for first, last in plan.runs)
    if kind == "h264-edit-list":  # GOP 12
        assert fed <= container.packets_read <= fed + 12 * container.seeks
    else:
        assert container.packets_read == fed  # nothing read between runs or after the last


def test_a_long_gap_is_sought_and_a_short_one_read_through(tmp_path: Path) -> None:
    path = write_h264_video(tmp_path / "v.mp4", 90, size_wh=(320, 192), gop=30)
    with open_mp4(path) as container:
        index = read_packet_index(container, video_stream(container))
    frames = [0, 60]  # runs from packets 0 and 60: a gap of packets 1-59
    gap_bytes = int(index.position[60] - index.position[1])
    assert plan_decoding(index, frames, seek_min_bytes=gap_bytes).seeks == [None, index.pts[60]]
    assert plan_decoding(index, frames, seek_min_bytes=gap_bytes + 1).seeks == [None, None]
    assert SEEK_MIN_BYTES > 0 and plan_decoding(index, frames[:1]).seeks == [None]
    # byte offsets that do not grow cannot name a packet: nothing is sought
    shuffled = dataclasses.replace(index, position=index.position[::-1].copy())
    plan = plan_decoding(shuffled, frames, seek_min_bytes=0)
    assert plan.seeks == [None, None] and plan.positions is None


def test_a_seek_that_lands_past_the_keyframe_reads_again_from_the_start(
    videos: dict[str, Path], counted: list[CountingContainer]
) -> None:
    """As if the demuxer overshot: the plan seeks to a later keyframe than the run's."""
    path = videos["h264-bframes"]  # keyframes at packets 0, 24, 48, 72
    plan = planned(path, [30], seek_min_bytes=0)
    assert plan.runs[0][0] == 24
    with open_mp4(path) as container:
        index = read_packet_index(container, video_stream(container))
    overshooting = dataclasses.replace(plan, seeks=[int(index.pts[48])])
    assert_exact(path, overshooting)
    (container,) = counted
    assert container.seeks == 2  # the planned seek, then back to the start
    assert container.packets_read == 1 + plan.runs[0][1] + 1  # packet 48, then 0 to the run's end


def test_a_seek_that_lands_on_an_unknown_packet_fails(videos: dict[str, Path]) -> None:
    path = videos["h264-bframes"]
    plan = planned(path, [30], seek_min_bytes=0)
    assert plan.positions is not None
    moved = dataclasses.replace(plan, positions=plan.positions + 1)
    with pytest.raises(VideoDecodeError, match="could not be read"):
        list(decode_planned_frames(path, moved, 1 << 30))


def _threads_now() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_the_decoder_runs_the_threads_it_is_given(videos: dict[str, Path], threads: int) -> None:
    """FFmpeg's frame threads: as many as asked while decoding, gone afterwards."""
    path = videos["h264-bframes"]
    before = _threads_now()
    frames = decode_planned_frames(path, planned(path, SamplingOptions()), 1 << 30, threads=threads)
    next(frames)
    during = _threads_now()
    frames.close()
    assert during - before == (threads if threads > 1 else 0)
    assert _threads_now() == before


def test_decoder_threads_must_be_at_least_one(videos: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="threads"):
        next(
            decode_planned_frames(
                videos["h264-bframes"], DecodePlan([], {}, [], [], None, 0), 1, threads=0
            )
        )
    with pytest.raises(ValueError, match="decode_threads"):
        VideoFilePipelineService(Keeper(), decode_threads=0)


def test_a_job_seeks_over_long_gaps_by_default(
    tmp_path: Path, counted: list[CountingContainer]
) -> None:
    """Noisy 1280x720 frames, a keyframe every 30: the packets between a sample_fps=1
    job's runs span more than SEEK_MIN_BYTES, so the job seeks and reads only its runs."""
    path = write_h264_video(tmp_path / "v.mp4", 120, size_wh=(1280, 720), gop=30)
    plan = planned(path, SamplingOptions(sample_fps=1.0))
    assert plan.seeks[0] is None and all(seek is not None for seek in plan.seeks[1:])
    keeper = Keeper()
    results = VideoFilePipelineService(keeper).run(path, SamplingOptions(sample_fps=1.0))
    wanted = [0, 30, 60, 90]
    assert [f.frame_index for f in results.frames] == wanted
    with av.open(str(path)) as container:  # a plain full decode, keeping the wanted frames
        reference = [
            frame.to_ndarray(format="bgr24")
            for index, frame in enumerate(container.decode(video=0))
            if index in wanted
        ]
    for got, expected in zip(keeper.frames, reference, strict=True):
        assert np.array_equal(got, expected)
    assert counted[-1].seeks == 3
    assert counted[-1].packets_read == sum(last - first + 1 for first, last in plan.runs)
