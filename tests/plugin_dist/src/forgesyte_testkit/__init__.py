"""Test plugins, registered by this separate distribution through `forgesyte.plugins`.

Tools: `noop` (costs nothing), `grey` (mean grey level: cheap and frame-dependent),
`segfault` (kills its own process with SIGSEGV), `sleep` (sleeps on every frame),
`hog_memory` (allocates memory until stopped), `missing_key` (a bug: raises KeyError).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from forgesyte.plugins.base import Frame, SimplePlugin, Tool

SLEEP_PER_FRAME_S = float(os.environ.get("FORGESYTE_TESTKIT_SLEEP_S", "0.2"))


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


def plugin() -> SimplePlugin:
    """The `testkit` plugin."""
    return SimplePlugin("testkit", [Noop(), Grey(), Segfault(), Sleep(), HogMemory(), MissingKey()])
