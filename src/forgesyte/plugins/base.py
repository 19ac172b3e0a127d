"""What a plugin is: a named set of tools that turn a frame (and earlier outputs) into values."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
"""A decoded video frame: height x width x 3, BGR, uint8."""

IMAGE_TYPE = "image"
"""The type of the frame itself, the input of every entry node."""


class ThreadShare(Protocol):
    """The threads a model call may use now, when that changes while the process runs: an
    analysis child's share of the cores follows how many of its server's workers are busy.

    A model's session fixes its thread count when it is opened, so a tool opens one per
    count in `counts` and runs each call on the one `threads_now()` names.
    """

    @property
    def counts(self) -> tuple[int, ...]:
        """Every thread count threads_now() may answer, ascending."""

    def threads_now(self) -> int:
        """The threads the next model call may use (one of counts)."""


@dataclass(frozen=True)
class PluginConfig:
    """What the server hands a plugin when it builds it: plugins never read settings.

    analysis_threads: threads one analysis process may give ONNX Runtime and OpenCV (None:
    the library's own default). thread_share: when given, the built-in ONNX tools follow it
    call by call instead (analysis_threads is then its count when every worker is busy).
    yolo_model: the user's ONNX YOLO model for `yolo.detect`.
    """

    analysis_threads: int | None = None
    yolo_model: Path | None = None
    thread_share: ThreadShare | None = None


class Tool(ABC):
    """One analysis step. Subclasses declare their types and implement run().

    A tool gets typed inputs (`Detections`...) only if it sets takes_typed_values; any other
    (written for JSON) gets their ``to_json()``, plain data as it was returned."""

    name: ClassVar[str]
    input_types: ClassVar[tuple[str, ...]]
    output_types: ClassVar[tuple[str, ...]]
    takes_typed_values: ClassVar[bool] = False

    def unavailable_reason(self) -> str | None:
        """Why the tool cannot run here (missing model file...), or None when it can."""
        return None

    def load(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Load what is expensive (models) once per process; called before the first frame."""

    @abstractmethod
    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        """Analyse one frame; inputs maps each predecessor's output type to its output.

        Returns typed values (`plugins.values.JsonConvertible`: `Detections`, `TextLines`),
        JSON-ready data (dicts, lists, str, int, float, bool, None), or a mix: made JSON
        once, when the frame's entry is written.
        """


class Plugin(Protocol):
    """A named set of tools, registered under the entry-point group `forgesyte.plugins`."""

    @property
    def name(self) -> str:
        """The plugin_type that pipeline nodes use to name this plugin."""

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The plugin's tools by tool_type."""


class SimplePlugin:
    """A plugin made of a name and a list of tools."""

    def __init__(self, name: str, tools: list[Tool]) -> None:
        self._name = name
        self._tools = {tool.name: tool for tool in tools}

    @property
    def name(self) -> str:
        """The plugin_type that pipeline nodes use."""
        return self._name

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The plugin's tools by tool_type."""
        return self._tools
