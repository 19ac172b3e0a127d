"""Writing a job's results as it goes: JSON Lines to a local file, the timeline beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from forgesyte.results.encoding import encode_json, encode_stored, stored_form
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

    def add(self, entry: dict[str, Any]) -> None:
        """Write one frame entry (frame order) and feed it to the timeline.

        Its typed values are made JSON here, once (`stored_form`); the timeline reads that
        JSON, as it reads the lines of a split job's segments.
        """
        stored = stored_form(entry)
        self._handle.write(encode_stored(stored) + b"\n")
        self._timeline.add(stored)

    def finish(self) -> None:
        """Close the results file and write the timeline file."""
        self._handle.close()
        timeline = self._timeline.build()
        self.timeline_path.write_bytes(encode_json(timeline))

    def close(self) -> None:
        """Close the results file (if `finish` was not reached)."""
        self._handle.close()

    def __enter__(self) -> FrameResultsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
