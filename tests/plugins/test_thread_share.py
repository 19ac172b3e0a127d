"""The ONNX tools following a thread share: one session per thread count, each call on the
one the share names now, and the same bits whatever the count.

A job's results must not depend on how many other jobs ran beside it: the share changes
a model call's threads, so every count must give the very same outputs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from forgesyte.plugins.base import Frame, PluginConfig
from forgesyte.plugins.imaging import letterbox
from forgesyte.plugins.objects import ObjectsDetect, input_wh, plugin, to_input_tensor
from forgesyte.plugins.ocr import OcrRead
from forgesyte.plugins.onnx_session import SharedThreadsSession
from tests.plugins.photos import photo


class TakingTurns:
    """A thread share whose count changes on every call: 1, 2, 4, 1, 2, ..."""

    counts = (1, 2, 4)

    def __init__(self) -> None:
        self.calls = 0

    def threads_now(self) -> int:
        """The next count in turn."""
        self.calls += 1
        return self.counts[self.calls % len(self.counts)]


def text_frame(width: int, height: int, seed: int) -> Frame:
    """Lines of text of several sizes on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 170, (height, width, 3), dtype=np.uint8)
    for line in range(5):
        scale = 0.6 + 0.35 * line * width / 1280
        words = " ".join(str(rng.integers(100, 99999)) for _ in range(3))
        origin = (int(0.05 * width), int((line + 1) * height / 6))
        cv2.putText(image, f"GATE {words}", origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2)
    return image


FRAMES = [
    *(text_frame(width, height, seed) for seed, (width, height) in enumerate([(640, 360)] * 2)),
    text_frame(1280, 720, 7),
]


@pytest.fixture(scope="module")
def photos() -> list[Frame]:
    """Darknet's photos (objects, and the text of a sign)."""
    return [photo(name) for name in ("dog", "person", "horses")]


def test_a_shared_session_runs_each_call_on_the_count_the_share_names() -> None:
    share = TakingTurns()
    opened: list[int] = []

    class Session:
        def __init__(self, threads: int) -> None:
            self.threads = threads
            opened.append(threads)

        def run(self, _outputs: object, _feed: object) -> int:
            return self.threads

    session = SharedThreadsSession(Session, share)
    assert opened == [1, 2, 4]  # one session per count, opened once
    assert [session.run(None, {}) for _ in range(4)] == [2, 4, 1, 2]


def test_ocr_reads_the_same_whatever_threads_each_call_gets(photos: list[Frame]) -> None:
    share = TakingTurns()
    alone, shared = OcrRead(threads=1), OcrRead(share=share)
    read = 0
    for frame in [*FRAMES, *photos]:
        lines = alone.read_lines(frame).to_json()
        assert shared.read_lines(frame).to_json() == lines
        read += len(lines)
    assert read > 10 and share.calls > read  # a detection call per frame, one per line read


def test_the_ocr_models_give_the_same_bits_at_every_count() -> None:
    tool = OcrRead(share=TakingTurns())
    tool.load()
    for model, size_wh in ((tool._engine.text_det, (640, 352)), (tool._engine.text_rec, (320, 48))):
        sessions = model.session.session.sessions
        name = sessions[1].get_inputs()[0].name
        for frame in FRAMES:
            tensor = cv2.resize(frame, size_wh).astype(np.float32).transpose(2, 0, 1)[None] / 255
            outputs = [sessions[threads].run(None, {name: tensor})[0] for threads in (1, 2, 4)]
            assert all(np.array_equal(outputs[0], other) for other in outputs[1:])


def test_the_detector_gives_the_same_bits_at_every_count(photos: list[Frame]) -> None:
    share = TakingTurns()
    alone, shared = ObjectsDetect(threads=1), ObjectsDetect(share=share)
    alone.load()
    shared.load()
    found = 0
    for frame in photos:
        tensor = to_input_tensor(letterbox(frame, input_wh(frame))[0])
        for expected, got in zip(alone.infer(tensor), shared.infer(tensor), strict=True):
            assert np.array_equal(expected, got)
        detections = alone.detect(frame).normalised().to_json()
        assert shared.detect(frame).normalised().to_json() == detections
        found += len(detections)
    assert found >= 3 and share.calls >= 2 * len(photos)


def test_the_built_in_plugins_take_the_share_from_their_config() -> None:
    share = TakingTurns()
    detect = plugin(PluginConfig(analysis_threads=1, thread_share=share)).tools["detect"]
    assert isinstance(detect, ObjectsDetect) and detect.share is share
