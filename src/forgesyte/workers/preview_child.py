"""The child process that draws one preview frame, then exits.

Started by `workers/previews.py` for each preview the API serves, from the scrubbed
environment and held to the analysis children's limits, so a decoder that crashes, hangs or
eats memory on a hostile video takes down this child, never the API. It imports only what
drawing needs (the decoder, OpenCV), not the plugins.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from forgesyte.results.preview import FrameNotDecodable
from forgesyte.workers.child_setup import settle_child
from forgesyte.workers.images import render_preview


@dataclass(frozen=True)
class PreviewDrawn:
    """Child to parent: the preview's JPEG."""

    jpeg: bytes


@dataclass(frozen=True)
class PreviewNotDecodable:
    """Child to parent: the video has no decodable frame at that index (why)."""

    reason: str


def preview_main(
    conn: Connection, video_path: str, entry: dict[str, Any], max_frame_pixels: int
) -> None:
    """Entry point of the child: draw the frame, send the answer, exit."""
    settle_child()
    try:
        answer: PreviewDrawn | PreviewNotDecodable = PreviewDrawn(
            render_preview(Path(video_path), entry, max_frame_pixels)
        )
    except FrameNotDecodable as exc:
        answer = PreviewNotDecodable(str(exc))
    conn.send(answer)
    conn.close()
