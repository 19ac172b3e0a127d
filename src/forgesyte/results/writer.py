"""Writing a job's results as it goes: JSON Lines to a local file, the timeline beside it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from forgesyte.plugins.values import JsonConvertible
from forgesyte.results.encoding import encode_json, encode_line
from forgesyte.results.timeline import TimelineBuilder

RESULTS_FILE_NAME = "results.jsonl"
TIMELINE_FILE_NAME = "timeline.json"


class FrameResultsWriter:
    """Appends each frame entry to ``<folder>/results.jsonl`` and feeds the timeline builder.

    `start` gives the video's frame size (the timeline's text filter needs it) before the
    first entry; `finish` writes ``<folder>/timeline.json``. Memory stays bounded: entries
    are written as they come, and the builder keeps only the segments and tracks it is
    following.
    """

    def __init__(self, folder: Path) -> None:
        self.results_path = folder / RESULTS_FILE_NAME
        self.timeline_path = folder / TIMELINE_FILE_NAME
        self._handle: BinaryIO = self.results_path.open("wb")
        self._timeline: TimelineBuilder | None = None
        self.frames = 0

    def start(self, frame_wh: tuple[int, int]) -> None:
        """Begin the timeline of a video of this width and height (before any entry)."""
        if self._timeline is not None:
            raise RuntimeError("the timeline was started already")
        self._timeline = TimelineBuilder(frame_wh)

    def add(self, entry: dict[str, Any]) -> None:
        """Write one frame entry (frame order): its values are made JSON here, once."""
        self.add_line(encode_line(entry))

    def add_line(self, line: bytes) -> None:
        """Write one stored line (frame order); the timeline reads it back, as stored."""
        self._handle.write(line)
        self._started().add(json.loads(line))
        self.frames += 1

    def finish(self, shots: Sequence[JsonConvertible] = ()) -> None:
        """Close the results file and write the timeline file, with the video's shots
        (none unless the job looked for them)."""
        self._handle.close()
        self.timeline_path.write_bytes(encode_json(self._started().build(shots)))

    def _started(self) -> TimelineBuilder:
        if self._timeline is None:
            raise RuntimeError("start(frame_wh) must come before the first entry")
        return self._timeline

    def __enter__(self) -> FrameResultsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()  # if `finish` was not reached
