"""Merging a split job's segment results into one results file and one timeline.

Each segment's results are JSON Lines encoded one frame at a time, exactly as an unsplit
run writes them, so concatenating the segments in frame order gives the unsplit run's
bytes. The timeline is built once, from the merged lines in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from forgesyte.results.writer import FrameResultsWriter


def merge_segment_results(
    parts: Iterable[AbstractContextManager[BinaryIO]], folder: Path
) -> FrameResultsWriter:
    """Concatenate the parts (opened one at a time, in order) into ``folder``.

    Writes ``results.jsonl`` and ``timeline.json`` as an unsplit run does, through its
    `FrameResultsWriter`, which it returns (the files' paths, the frames they hold).
    Memory stays flat: lines are copied one by one.
    """
    with FrameResultsWriter(folder) as writer:
        for opened in parts:
            with opened as part:
                for line in part:
                    writer.add_line(line)
        writer.finish()
    return writer
