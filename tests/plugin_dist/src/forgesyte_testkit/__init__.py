"""Test plugins, registered by this separate distribution through `forgesyte.plugins`.

Tools: `noop` (costs nothing), `grey` (mean grey level: cheap and frame-dependent),
`segfault` (kills its own process with SIGSEGV), `sleep` (sleeps on every frame),
`hog_memory` (allocates memory until stopped), `missing_key` (a bug: raises KeyError),
`colour_boxes` (a detector of made objects: a box around each PALETTE colour's pixels),
`marks` (the boxes of the tests' marks videos: a red `square`, a blue `tile`, a black bar
read as the text TOP or BOTTOM), `opencv_threads` (the OpenCV threads the frame ran with:
the analysis child's thread share).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from forgesyte.plugins.base import Frame, SimplePlugin, Tool

SLEEP_PER_FRAME_S = float(os.environ.get("FORGESYTE_TESTKIT_SLEEP_S", "0.2"))

PALETTE = ((40, 40, 230), (40, 200, 40), (230, 60, 40), (40, 220, 230), (220, 40, 220))
"""BGR colours of made objects, one per object (tests/results/tracking_scenes.py)."""
COLOUR_TOLERANCE = 50  # grey levels each channel may be off (compression bleeds colours)
MIN_COLOUR_PIXELS = 350  # pixels: less of an object (20 x 44 px in the tests) is not seen


class Noop(Tool):
    """Returns an empty dict: the cost of the server itself."""

    name = "noop"
    input_types = ("image",)
    output_types = ("nothing",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return {}


class Grey(Tool):
    """The frame's mean grey level, rounded."""

    name = "grey"
    input_types = ("image",)
    output_types = ("number",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return round(float(frame.mean()), 1)


class Segfault(Tool):
    """Crashes its process the way a broken native decoder would."""

    name = "segfault"
    input_types = ("image",)
    output_types = ("nothing",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        os.kill(os.getpid(), signal.SIGSEGV)
        return {}  # pragma: no cover


class Sleep(Tool):
    """Sleeps on every frame: a slow model."""

    name = "sleep"
    input_types = ("image",)
    output_types = ("nothing",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        time.sleep(SLEEP_PER_FRAME_S)
        return {}


class HogMemory(Tool):
    """Allocates 64 MiB per frame and keeps it: a leak."""

    name = "hog_memory"
    input_types = ("image",)
    output_types = ("nothing",)

    def __init__(self) -> None:
        self._kept: list[bytearray] = []

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        for _ in range(200):
            self._kept.append(bytearray(b"\x01" * (64 << 20)))
            time.sleep(0.05)
        return {}


class MissingKey(Tool):
    """A plugin bug: looks up a key that is not there (a LookupError from inside a plugin)."""

    name = "missing_key"
    input_types = ("image",)
    output_types = ("nothing",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        settings: dict[str, float] = {}
        return settings["threshold"]


class OpencvThreads(Tool):
    """The threads OpenCV may use while this frame is analysed (the child sets them)."""

    name = "opencv_threads"
    input_types = ("image",)
    output_types = ("number",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return cv2.getNumThreads()


def _bounds(mask: Any) -> list[float] | None:
    """xyxy of the rows and columns with at least 3 marked pixels (compression noise aside)."""
    rows = np.flatnonzero(mask.sum(axis=1) >= 3)
    columns = np.flatnonzero(mask.sum(axis=0) >= 3)
    if rows.size == 0 or columns.size == 0:
        return None
    return [float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1)]


class Marks(Tool):
    """Finds the marks of tests/support/videos.py's marks videos by colour: detections of a
    red `square` and a blue `tile`, and the black bar as a text line (TOP or BOTTOM)."""

    name = "marks"
    input_types = ("image",)
    output_types = ("marks",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        blue, green, red = (frame[:, :, c].astype(np.int16) for c in range(3))
        found: list[dict[str, Any]] = []
        colours = {
            "square": (red > 150) & (green < 90) & (blue < 90),
            "tile": (blue > 150) & (green < 90) & (red < 90),
        }
        for class_id, (name, mask) in enumerate(colours.items()):
            box = _bounds(mask)
            if box is not None:
                found.append(
                    {"xyxy": box, "confidence": 0.9, "class_id": class_id, "class_name": name}
                )
        bar = _bounds((red < 60) & (green < 60) & (blue < 60))
        if bar is not None:
            x1, y1, x2, y2 = bar
            text = "TOP" if (y1 + y2) / 2 < frame.shape[0] * 0.75 else "BOTTOM"
            corners = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
            found.append({"text": text, "confidence": 0.95, "box": corners})
        return found


class ColourBoxes(Tool):
    """A detector of made objects: one "person" box around the pixels of each PALETTE
    colour (the part of an object another hides is not in its box), confidence 0.9."""

    name = "colour_boxes"
    input_types = ("image",)
    output_types = ("detections",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        pixels = frame.astype(np.int16)
        found = []
        for colour in PALETTE:
            mask = np.all(np.abs(pixels - np.array(colour)) <= COLOUR_TOLERANCE, axis=2)
            if np.count_nonzero(mask) < MIN_COLOUR_PIXELS:
                continue
            ys, xs = np.nonzero(mask)
            box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            found.append({"xyxy": box, "confidence": 0.9, "class_id": 0, "class_name": "person"})
        return found


def plugin() -> SimplePlugin:
    """The `testkit` plugin."""
    tools = [
        *(Noop(), Grey(), Segfault(), Sleep(), HogMemory(), MissingKey()),
        *(ColourBoxes(), Marks(), OpencvThreads()),
    ]
    return SimplePlugin("testkit", tools)
