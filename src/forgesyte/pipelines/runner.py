"""Running a validated pipeline on one frame at a time, in topological order."""

from __future__ import annotations

from typing import Any

from forgesyte.pipelines.model import PipelineDefinition
from forgesyte.plugins.base import IMAGE_TYPE, Frame, Tool
from forgesyte.plugins.registry import PluginRegistry
from forgesyte.plugins.values import JsonConvertible, json_ready


class PluginError(Exception):
    """A plugin's tool raised while loading or analysing a frame; names the tool and the cause.

    The message reads "plugin <plugin_type>.<tool_type> failed: <ExceptionType>: <text>";
    the original exception is the __cause__.
    """

    def __init__(self, plugin_type: str, tool_type: str, cause: BaseException) -> None:
        super().__init__(
            f"plugin {plugin_type}.{tool_type} failed: {type(cause).__name__}: {cause}"
        )
        self.plugin_type = plugin_type
        self.tool_type = tool_type


class PipelineRunner:
    """Runs one pipeline's nodes on a frame and returns its output nodes' outputs."""

    def __init__(self, definition: PipelineDefinition, registry: PluginRegistry) -> None:
        definition.check_tools(registry)
        self.definition = definition
        self._order = definition.validate_graph()
        self._tools: dict[str, Tool] = {}
        self._names: dict[str, tuple[str, str]] = {}  # node id -> (plugin_type, tool_type)
        for node in definition.nodes:
            tool = registry.tool(node.plugin_type, node.tool_type)
            assert tool is not None  # check_tools guarantees it
            self._tools[node.id] = tool
            self._names[node.id] = (node.plugin_type, node.tool_type)
        # per node, once: which predecessor output feeds which input type (the frame loop
        # then only looks values up)
        self._wiring: dict[str, list[tuple[str, str]]] = {}
        for node_id in self._order:
            node = definition.node(node_id)
            self._wiring[node_id] = [
                (
                    source,
                    next(t for t in definition.node(source).output_types if t in node.input_types),
                )
                for source in definition.predecessors(node_id)
            ]

    def load(self) -> None:
        """Load every tool's models (once per process); a tool that raises gives PluginError."""
        for node_id, tool in self._tools.items():
            try:
                tool.load()
            except Exception as exc:
                raise PluginError(*self._names[node_id], exc) from exc

    def run(self, frame: Frame) -> dict[str, Any]:
        """Run every node on the frame; return {output node id: output}.

        Outputs are returned as the tools returned them (typed or JSON, see `Tool.run`).
        A tool that raises gives PluginError naming it (whatever it raised).
        """
        outputs: dict[str, Any] = {}
        for node_id in self._order:
            wiring, tool = self._wiring[node_id], self._tools[node_id]
            inputs: dict[str, Any] = {t: outputs[source] for source, t in wiring}
            if not tool.takes_typed_values:  # a tool written for JSON: typed values' JSON
                inputs = {
                    t: json_ready(v) if isinstance(v, JsonConvertible) else v
                    for t, v in inputs.items()
                }
            if not wiring:
                inputs[IMAGE_TYPE] = frame
            try:
                outputs[node_id] = tool.run(frame, inputs)
            except Exception as exc:
                raise PluginError(*self._names[node_id], exc) from exc
        return {node_id: outputs[node_id] for node_id in self.definition.output_nodes}
