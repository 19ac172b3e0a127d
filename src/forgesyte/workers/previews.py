"""Drawing preview frames for the API in short-lived child processes.

`ChildPreviewRenderer` is the API's `PreviewRenderer` (wired by forgesyte.runtime): each
preview is drawn by a new child (`preview_child.py`), started like the analysis children
(`spawn_child`: the scrubbed environment) and held to a `ChildLimits` (the analysis
children's memory cap, a time limit), watched as the executor watches its child. A crash,
a hang or a memory blow-up kills that child only; the API answers 503 and goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forgesyte.results.preview import FrameNotDecodable, PreviewFailed
from forgesyte.workers.executor import (
    WATCH_INTERVAL_S,
    ChildLimits,
    describe_exit,
    kill_child,
    spawn_child,
)
from forgesyte.workers.preview_child import PreviewDrawn, PreviewNotDecodable, preview_main

PREVIEW_TIMEOUT_S = 30.0  # seconds a preview child may take, at most the job timeout


class ChildPreviewRenderer:
    """Draws each preview in its own child process, within limits."""

    def __init__(
        self,
        limits: ChildLimits,
        *,
        max_frame_pixels: int,
        child_env_keep: Iterable[str] = (),
    ) -> None:
        self.limits = limits
        self._max_frame_pixels = max_frame_pixels
        self._child_env_keep = tuple(child_env_keep)

    def render(self, video_path: Path, entry: dict[str, Any]) -> bytes:
        """The JPEG of the entry's frame with its results drawn, drawn by a child.

        Raises FrameNotDecodable when the video has no such frame, PreviewFailed when the
        child crashed, timed out or went over its memory cap (it is killed).
        """
        process, conn = spawn_child(
            preview_main,
            (str(video_path), entry, self._max_frame_pixels),
            name="forgesyte-preview",
            child_env_keep=self._child_env_keep,
        )
        deadline = time.monotonic() + self.limits.timeout_s
        try:
            while True:
                try:
                    if conn.poll(WATCH_INTERVAL_S):
                        answer = conn.recv()
                        break
                except (EOFError, OSError):
                    process.join(timeout=2.0)
                    exit_text = describe_exit(process.exitcode)
                    raise PreviewFailed(f"the process drawing it crashed ({exit_text})") from None
                breach = self.limits.breach(process, deadline, "preview")
                if breach is not None:
                    kill_child(process)
                    raise PreviewFailed(breach.message)
        finally:
            conn.close()
            process.join(timeout=2.0)
            if process.is_alive():
                kill_child(process)
        if isinstance(answer, PreviewNotDecodable):
            raise FrameNotDecodable(answer.reason)
        if not isinstance(answer, PreviewDrawn):  # pragma: no cover - protocol guard
            raise PreviewFailed(f"unexpected answer from the preview process: {type(answer)}")
        return answer.jpeg
