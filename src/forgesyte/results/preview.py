"""Preview frames: what draws one (a `PreviewRenderer`) and how drawing one can fail.

The drawing itself (decode the frame, draw the job's boxes and text, JPEG) runs in a
short-lived child process of the server (`forgesyte.workers.previews`), never in the
process that serves the API; nothing here decodes video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class FrameNotDecodable(Exception):
    """The stored video has no decodable frame at that index."""


class PreviewFailed(Exception):
    """The process drawing the preview crashed, ran out of time or went over its memory cap;
    the message says which, naming no path."""


class PreviewRenderer(Protocol):
    """Draws an analysed frame of a video with its stored results, as a JPEG."""

    def render(self, video_path: Path, entry: dict[str, Any]) -> bytes:
        """The JPEG of frame entry["frame_index"] at the video's size, entry["result"] drawn.

        Raises FrameNotDecodable or PreviewFailed.
        """
