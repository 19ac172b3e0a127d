"""Test plugins, registered by this separate distribution through `forgesyte.plugins`.

Tools: `noop` (costs nothing), `grey` (mean grey level: cheap and frame-dependent),
`segfault` (kills its own process with SIGSEGV), `sleep` (sleeps on every frame),
`hog_memory` (allocates memory until stopped), `missing_key` (a bug: raises KeyError),
`colour_boxes` (a detector of made objects: a box around each PALETTE colour's pixels).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

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
    tools = [Noop(), Grey(), Segfault(), Sleep(), HogMemory(), MissingKey(), ColourBoxes()]
    return SimplePlugin("testkit", tools)
