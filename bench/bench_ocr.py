"""OCR speed and word accuracy: ForgeSyte's `ocr.read` against `RapidOCR()` with its defaults."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_local as local
import bench_videos as videos

from forgesyte.plugins.base import Frame, PluginConfig
from forgesyte.plugins.ocr import OcrRead, plugin


def words_read(texts: list[str], words: list[str]) -> int:
    """How many of the known words are among the whitespace-separated words read."""
    got = Counter(word for text in texts for word in re.split(r"\s+", text) if word)
    return sum((got & Counter(words)).values())


@dataclass
class Side:
    """One OCR engine's measurements: best wall and CPU seconds, words read."""

    name: str
    read: Callable[[Frame], list[str]]
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    words_read: int = 0

    def measure(self, frames: list[Frame], words: list[list[str]]) -> None:
        """Read every frame once; record wall and CPU seconds and the words read."""
        start, cpu = time.perf_counter(), time.process_time()
        texts = [self.read(frame) for frame in frames]
        self.wall_s.append(time.perf_counter() - start)
        self.cpu_s.append(time.process_time() - cpu)
        self.words_read = sum(words_read(t, w) for t, w in zip(texts, words, strict=True))


@dataclass
class OcrSpeed:
    """Both engines on the same decoded frames of a known-words video, interleaved."""

    path: Path
    frames: list[Frame]
    words: list[list[str]]
    tool: Side
    defaults: Side

    @property
    def total_words(self) -> int:
        """Known words on all the frames."""
        return sum(len(w) for w in self.words)

    def accuracy(self, side: Side) -> float:
        """Fraction of the known words that the side read."""
        return side.words_read / self.total_words


def ocr_speed(frames: int, width: int, height: int, rounds: int) -> OcrSpeed:
    """Measure ocr.read (plugin defaults, as a server builds it) against RapidOCR().

    Both are warm before the first round; in each round both read every frame, the one
    going first alternating between rounds so that both see the same machine load.
    """
    from rapidocr import RapidOCR

    path, words = videos.known_words_video(frames, width, height)
    decoded = local.read_frames(path)
    tool = plugin(PluginConfig()).tools["read"]
    assert isinstance(tool, OcrRead)
    tool.load()
    engine: Any = RapidOCR(params={"Global.log_level": "warning"})  # defaults, quiet logs

    def read_tool(frame: Frame) -> list[str]:
        return [line.text for line in tool.run(frame, {"image": frame})]

    def read_defaults(frame: Frame) -> list[str]:
        return list(engine(frame).txts or ())

    speed = OcrSpeed(
        path, decoded, words, Side("ocr.read", read_tool), Side("RapidOCR()", read_defaults)
    )
    read_tool(decoded[0])
    read_defaults(decoded[0])
    for round_index in range(rounds):
        sides = [speed.tool, speed.defaults]
        for side in sides if round_index % 2 == 0 else sides[::-1]:
            side.measure(decoded, words)
    return speed


def _read_frames_timed(
    path: str, frames: int, share: tuple[int, int, int], start: Any, seconds: Any
) -> None:
    """A spawned reader: ocr.read on the first `frames` frames of path; `share` is
    (first, step, threads): every step-th of them from `first`, with `threads` threads."""
    first, step, threads = share
    decoded = local.read_frames(Path(path))[:frames][first::step]
    tool = plugin(PluginConfig(analysis_threads=threads)).tools["read"]
    tool.load()
    tool.run(decoded[0], {"image": decoded[0]})  # warm, like a server's child
    start.wait()
    began = time.perf_counter()
    for frame in decoded:
        tool.run(frame, {"image": frame})
    seconds.put(time.perf_counter() - began)


@dataclass
class CoreScaling:
    """Seconds for OCR to read the same frames three ways, without a server."""

    two_threads_s: float  # one process, two threads: what `--workers 1` gives a job
    one_thread_s: float  # one process, one thread, alone
    side_by_side_s: float  # two one-thread processes at once, even and odd frames

    @property
    def second_thread_gain(self) -> float:
        """How much faster one process reads with its second thread."""
        return self.one_thread_s / self.two_threads_s

    @property
    def ceiling(self) -> float:
        """The best `--workers 2` against `--workers 1` ratio these cores allow OCR."""
        return self.side_by_side_s / self.two_threads_s


def core_scaling_round(path: Path, frames: int) -> CoreScaling:
    """One round of CoreScaling on the first `frames` frames of a video.

    Alternate frames give the two side-by-side processes the same amount of text.
    """
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    seconds: Any = spawn.Queue()
    results: list[float] = []
    for shares in ([(0, 1, 2)], [(0, 1, 1)], [(0, 2, 1), (1, 2, 1)]):
        start = spawn.Barrier(len(shares))
        readers = [
            spawn.Process(
                target=_read_frames_timed, args=(str(path), frames, share, start, seconds)
            )
            for share in shares
        ]
        for reader in readers:
            reader.start()
        times = [seconds.get() for _ in readers]
        for reader in readers:
            reader.join()
        results.append(max(times))
    return CoreScaling(*results)
