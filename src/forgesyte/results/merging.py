"""Merging a split job's segment results into one results file and one timeline.

Each segment's results are JSON Lines encoded one frame at a time, exactly as an unsplit
run writes them, so concatenating the segments in frame order gives the unsplit run's
bytes. The timeline is built once, from the merged lines in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from forgesyte.results.encoding import encode_json
from forgesyte.results.timeline import TimelineBuilder
from forgesyte.results.writer import RESULTS_FILE_NAME, TIMELINE_FILE_NAME


@dataclass(frozen=True)
class MergedResults:
    """The merged local files and how many frame entries they hold."""

    results_path: Path
    timeline_path: Path
    frames: int


def merge_segment_results(
    parts: Iterable[AbstractContextManager[BinaryIO]], folder: Path
) -> MergedResults:
    """Concatenate the parts (opened one at a time, in order) into ``folder``.

    Writes ``results.jsonl`` and ``timeline.json`` as `FrameResultsWriter` would have for
    the same frames. Memory stays flat: lines are copied one by one.
    """
    results_path = folder / RESULTS_FILE_NAME
    timeline_path = folder / TIMELINE_FILE_NAME
    timeline = TimelineBuilder()
    frames = 0
    with results_path.open("wb") as merged:
        for opened in parts:
            with opened as part:
                for line in part:
                    merged.write(line)
                    timeline.add(json.loads(line))
                    frames += 1
    timeline_path.write_bytes(encode_json(timeline.build()))
    return MergedResults(results_path, timeline_path, frames)
