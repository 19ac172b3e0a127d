"""Split jobs on the worker fixtures of tests/workers (in-memory store, local storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.segments.videos import write_keyframed_video
from tests.workers.conftest import enqueue, make_worker, storage_backend, store

__all__ = ["enqueue", "keyframed_video", "make_worker", "storage_backend", "store"]


@pytest.fixture(scope="session")
def keyframed_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """95 frames at 30 fps, a keyframe about every 10 frames, B-frames between."""
    return write_keyframed_video(tmp_path_factory.mktemp("split") / "keyframed.mp4", 95)
