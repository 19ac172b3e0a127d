"""What the runner hands each tool: typed values to tools that take them, JSON to the rest."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from forgesyte.pipelines.catalog import parse_definition
from forgesyte.pipelines.runner import PipelineRunner
from forgesyte.plugins.base import Frame, SimplePlugin, Tool
from forgesyte.plugins.detections import Detections
from forgesyte.plugins.registry import PluginRegistry

SEEN: dict[str, Any] = {}


class Finds(Tool):
    """A built-in-style detector: returns a typed value."""

    name = "finds"
    input_types = ("image",)
    output_types = ("detections",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return Detections.from_opencv_rects([[1, 2, 3, 4]], "thing", confidence=[0.5])


class Pair(Tool):
    """A separate plugin's tool that hands a tuple on (plain data, not JSON)."""

    name = "pair"
    input_types = ("image",)
    output_types = ("pair",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return (1, 2)


class Reads(Tool):
    """Records what it is handed; takes_typed_values is set per subclass."""

    input_types = ("detections", "pair")
    output_types = ("seen",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        SEEN[self.name] = dict(inputs)
        return len(inputs["detections"])


class ReadsJson(Reads):
    name = "reads_json"


class ReadsTyped(Reads):
    name = "reads_typed"
    takes_typed_values = True


def node(node_id: str, takes: list[str], gives: str) -> dict[str, Any]:
    """A node of the test plugin `t` whose tool has the node's id."""
    return {"id": node_id, "plugin_type": "t", "tool_type": node_id, "input_types": takes,
            "output_types": [gives]}  # fmt: skip


PIPELINE = {
    "id": "handing",
    "entry_nodes": ["finds", "pair"],
    "output_nodes": ["finds", "reads_json", "reads_typed"],
    "nodes": [
        node("finds", ["image"], "detections"),
        node("pair", ["image"], "pair"),
        node("reads_json", ["detections", "pair"], "seen"),
        node("reads_typed", ["detections", "pair"], "seen"),
    ],
    "edges": [
        {"from_node": source, "to_node": reader}
        for source in ("finds", "pair")
        for reader in ("reads_json", "reads_typed")
    ],
}


def test_typed_values_go_to_tools_that_take_them_and_their_json_to_the_others() -> None:
    tools: list[Tool] = [Finds(), Pair(), ReadsJson(), ReadsTyped()]
    registry = PluginRegistry(plugins={"t": SimplePlugin("t", tools)})
    runner = PipelineRunner(parse_definition(json.dumps(PIPELINE), "handing.json"), registry)
    outputs = runner.run(np.zeros((8, 8, 3), np.uint8))
    found = outputs["finds"]
    assert isinstance(found, Detections)  # returned as the tool returned it
    assert outputs["reads_json"] == outputs["reads_typed"] == 1
    assert SEEN["reads_typed"]["detections"] is found
    assert SEEN["reads_json"]["detections"] == found.to_json()
    assert SEEN["reads_json"]["detections"][0]["class_name"] == "thing"
    assert SEEN["reads_json"]["pair"] == SEEN["reads_typed"]["pair"] == (1, 2)  # plain: as is
