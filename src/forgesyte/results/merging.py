"""Merging a split job's segment results into one results file and one timeline.

Each segment's results are JSON Lines encoded one frame at a time, exactly as an unsplit
run writes them, so concatenating the segments in frame order gives the unsplit run's
bytes. The timeline is built once, from the merged lines in order, with the shots the
coordinator found on the whole video.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from forgesyte.plugins.values import JsonConvertible
from forgesyte.results.writer import FrameResultsWriter


def merge_segment_results(
    parts: Iterable[AbstractContextManager[BinaryIO]],
    folder: Path,
    frame_wh: tuple[int, int],
    shots: Sequence[JsonConvertible] = (),
) -> FrameResultsWriter:
    """Concatenate the parts (opened one at a time, in order) into ``folder``.

    Writes ``results.jsonl`` and ``timeline.json`` as an unsplit run does, through its
    `FrameResultsWriter` (frame_wh: the video's frame size; shots: the video's, found
    once on all of it), which it returns (the files' paths, the frames they hold).
    Memory stays flat: lines are copied one by one.
    """
    with FrameResultsWriter(folder) as writer:
        writer.start(frame_wh)
        for opened in parts:
            with opened as part:
                for line in part:
                    writer.add_line(line)
        writer.finish(shots)
    return writer
