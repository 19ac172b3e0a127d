"""Writing a job's results as it goes: JSON Lines to a local file, the timeline beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from forgesyte.results.encoding import encode_json, encode_line
from forgesyte.results.timeline import TimelineBuilder

RESULTS_FILE_NAME = "results.jsonl"
TIMELINE_FILE_NAME = "timeline.json"


class FrameResultsWriter:
    """Appends each frame entry to ``<folder>/results.jsonl`` and feeds the timeline builder.

    `finish` writes ``<folder>/timeline.json``. Memory stays bounded: entries are written
    as they come, and the builder keeps only the segments and tracks it is following.
    """

    def __init__(self, folder: Path) -> None:
        self.results_path = folder / RESULTS_FILE_NAME
        self.timeline_path = folder / TIMELINE_FILE_NAME
        self._handle: BinaryIO = self.results_path.open("wb")
        self._timeline = TimelineBuilder()
        self.frames = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Write one frame entry (frame order): its values are made JSON here, once."""
        self.add_line(encode_line(entry))

    def add_line(self, line: bytes) -> None:
        """Write one stored line (frame order); the timeline reads it back, as stored."""
        self._handle.write(line)
        self._timeline.add(json.loads(line))
        self.frames += 1

    def finish(self) -> None:
        """Close the results file and write the timeline file."""
        self._handle.close()
        self.timeline_path.write_bytes(encode_json(self._timeline.build()))

    def __enter__(self) -> FrameResultsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()  # if `finish` was not reached
