"""The pipeline definition format (a JSON DAG) and its structural validation."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from pydantic import BaseModel, ConfigDict, Field

from forgesyte.plugins.base import IMAGE_TYPE
from forgesyte.plugins.registry import PluginRegistry


class PipelineError(ValueError):
    """A pipeline definition is invalid; the message names the problem."""


class NodeDefinition(BaseModel):
    """One node: a plugin tool with the types it takes and gives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    plugin_type: str = Field(min_length=1)
    tool_type: str = Field(min_length=1)
    input_types: list[str]
    output_types: list[str] = Field(min_length=1)


class EdgeDefinition(BaseModel):
    """A directed edge: from_node's output feeds to_node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_node: str
    to_node: str


class PipelineDefinition(BaseModel):
    """A pipeline as stored in JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    entry_nodes: list[str] = Field(min_length=1)
    output_nodes: list[str] = Field(min_length=1)
    nodes: list[NodeDefinition] = Field(min_length=1)
    edges: list[EdgeDefinition] = Field(default_factory=list)

    def node(self, node_id: str) -> NodeDefinition:
        """The node with this id."""
        return next(node for node in self.nodes if node.id == node_id)

    def predecessors(self, node_id: str) -> list[str]:
        """The ids of the nodes whose edges lead into this one, in edge order."""
        return [edge.from_node for edge in self.edges if edge.to_node == node_id]

    def execution_order(self) -> list[str]:
        """Node ids in a topological order that is stable for a given definition."""
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for node in self.nodes:
            sorter.add(node.id, *self.predecessors(node.id))
        try:
            return list(sorter.static_order())
        except CycleError as exc:
            cycle = " -> ".join(str(n) for n in exc.args[1])
            raise PipelineError(f"pipeline {self.id!r} has a cycle: {cycle}") from exc

    def validate_graph(self) -> list[str]:
        """Check ids, edges, entry/output nodes and acyclicity; return the execution order."""
        ids = [node.id for node in self.nodes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise PipelineError(f"pipeline {self.id!r}: duplicate node ids {duplicates}")
        known = set(ids)
        for edge in self.edges:
            for end in (edge.from_node, edge.to_node):
                if end not in known:
                    raise PipelineError(f"pipeline {self.id!r}: edge names unknown node {end!r}")
        for role, names in (("entry", self.entry_nodes), ("output", self.output_nodes)):
            for name in names:
                if name not in known:
                    raise PipelineError(f"pipeline {self.id!r}: {role} node {name!r} is missing")
        order = self.execution_order()
        for node in self.nodes:
            has_inputs = bool(self.predecessors(node.id))
            if node.id in self.entry_nodes:
                if IMAGE_TYPE not in node.input_types:
                    raise PipelineError(
                        f"pipeline {self.id!r}: entry node {node.id!r} does not take {IMAGE_TYPE!r}"
                    )
                if has_inputs:
                    raise PipelineError(
                        f"pipeline {self.id!r}: entry node {node.id!r} has incoming edges"
                    )
            elif not has_inputs:
                raise PipelineError(
                    f"pipeline {self.id!r}: node {node.id!r} has no input and is not an entry node"
                )
        for edge in self.edges:
            source, target = self.node(edge.from_node), self.node(edge.to_node)
            if not set(source.output_types) & set(target.input_types):
                raise PipelineError(
                    f"pipeline {self.id!r}: type mismatch on edge {source.id} -> {target.id}: "
                    f"{source.output_types} does not feed {target.input_types}"
                )
        return order

    def check_tools(self, registry: PluginRegistry) -> None:
        """Check that each node names a known plugin tool whose declared types agree."""
        for node in self.nodes:
            if node.plugin_type not in registry.plugins:
                why = registry.broken.get(node.plugin_type)
                detail = f" (it failed to load: {why})" if why else ""
                raise PipelineError(
                    f"pipeline {self.id!r}: node {node.id!r} names unknown plugin "
                    f"{node.plugin_type!r}{detail}"
                )
            tool = registry.tool(node.plugin_type, node.tool_type)
            if tool is None:
                raise PipelineError(
                    f"pipeline {self.id!r}: node {node.id!r} names unknown tool "
                    f"{node.plugin_type}.{node.tool_type}"
                )
            extra_in = set(node.input_types) - set(tool.input_types)
            extra_out = set(node.output_types) - set(tool.output_types)
            if extra_in or extra_out:
                raise PipelineError(
                    f"pipeline {self.id!r}: node {node.id!r} declares types that "
                    f"{node.plugin_type}.{node.tool_type} does not have "
                    f"(takes {list(tool.input_types)}, gives {list(tool.output_types)})"
                )
