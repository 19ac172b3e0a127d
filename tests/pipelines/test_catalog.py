"""Pipeline definitions: validation at load, the catalog, and execution order."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forgesyte.pipelines.catalog import (
    PipelineUnavailable,
    UnknownPipeline,
    load_catalog,
    parse_definition,
)
from forgesyte.pipelines.model import PipelineDefinition, PipelineError
from forgesyte.pipelines.runner import PipelineRunner, PluginError
from forgesyte.plugins.base import Frame, Plugin, SimplePlugin, Tool
from forgesyte.plugins.registry import PluginRegistry, discover_plugins


class Brightness(Tool):
    name = "brightness"
    input_types = ("image",)
    output_types = ("number",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return int(frame.mean())


class Double(Tool):
    name = "double"
    input_types = ("number",)
    output_types = ("number",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return inputs["number"] * 2


class NeedsModel(Tool):
    name = "needs_model"
    input_types = ("image",)
    output_types = ("number",)

    def unavailable_reason(self) -> str | None:
        return "no model file configured"

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        raise AssertionError("never runs")


class MissingKey(Tool):
    """A tool with a bug: it looks up a key that is not there."""

    name = "missing_key"
    input_types = ("number",)
    output_types = ("number",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return {}["threshold"]


class LoadFails(Tool):
    name = "load_fails"
    input_types = ("image",)
    output_types = ("number",)

    def load(self) -> None:
        raise LookupError("no such model variant")

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        raise AssertionError("never runs")


def math_plugin() -> Plugin:
    return SimplePlugin("math", [Brightness(), Double(), NeedsModel(), MissingKey(), LoadFails()])


def broken_plugin() -> Plugin:
    raise ImportError("No module named 'missing_dependency'")


@pytest.fixture
def registry() -> PluginRegistry:
    return discover_plugins(extra=[("math", math_plugin), ("broken", broken_plugin)])


def pipeline(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "brightness_doubled",
        "entry_nodes": ["b"],
        "output_nodes": ["d"],
        "nodes": [
            {
                "id": "b",
                "plugin_type": "math",
                "tool_type": "brightness",
                "input_types": ["image"],
                "output_types": ["number"],
            },
            {
                "id": "d",
                "plugin_type": "math",
                "tool_type": "double",
                "input_types": ["number"],
                "output_types": ["number"],
            },
        ],
        "edges": [{"from_node": "b", "to_node": "d"}],
    }
    document.update(overrides)
    return document


def check(document: dict[str, Any], registry: PluginRegistry) -> PipelineDefinition:
    definition = parse_definition(json.dumps(document), "test.json")
    definition.check_tools(registry)
    return definition


def test_a_valid_pipeline_runs_in_topological_order(registry: PluginRegistry) -> None:
    runner = PipelineRunner(check(pipeline(), registry), registry)
    runner.load()
    frame = np.full((4, 4, 3), 21, np.uint8)
    assert runner.run(frame) == {"d": 42}


def test_broken_plugin_is_reported_by_name(registry: PluginRegistry) -> None:
    assert "broken" in registry.broken
    assert "missing_dependency" in registry.broken["broken"]
    assert "math" in registry.plugins and "ocr" in registry.plugins


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"nodes": [{**pipeline()["nodes"][0], "plugin_type": "nope"}], "output_nodes": ["b"]},
            "unknown plugin 'nope'",
        ),
        (
            {"nodes": [{**pipeline()["nodes"][0], "plugin_type": "broken"}], "output_nodes": ["b"]},
            "failed to load",
        ),
        (
            {"nodes": [{**pipeline()["nodes"][0], "tool_type": "nope"}], "output_nodes": ["b"]},
            "unknown tool math.nope",
        ),
        (
            {
                "nodes": [{**pipeline()["nodes"][0], "output_types": ["text"]}],
                "output_nodes": ["b"],
            },
            "declares types",
        ),
    ],
)
def test_tools_are_checked_against_the_plugins(
    registry: PluginRegistry, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        check(pipeline(edges=[], **change), registry)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "edges": [
                    {"from_node": "b", "to_node": "d"},
                    {"from_node": "d", "to_node": "b"},
                ]
            },
            "entry node 'b' has incoming edges|cycle",
        ),
        ({"entry_nodes": ["x"]}, "entry node 'x' is missing"),
        ({"output_nodes": ["x"]}, "output node 'x' is missing"),
        ({"edges": [{"from_node": "b", "to_node": "zz"}]}, "unknown node 'zz'"),
        ({"edges": []}, "node 'd' has no input"),
        ({"entry_nodes": []}, "entry_nodes"),
        ({"nodes": []}, "nodes"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_graphs_are_refused_with_the_file_named(
    change: dict[str, Any], message: str, registry: PluginRegistry
) -> None:
    with pytest.raises(PipelineError, match=message) as caught:
        check(pipeline(**change), registry)
    assert str(caught.value).startswith("test.json")


def test_a_cycle_is_named(registry: PluginRegistry) -> None:
    nodes = pipeline()["nodes"] + [
        {
            "id": "e",
            "plugin_type": "math",
            "tool_type": "double",
            "input_types": ["number"],
            "output_types": ["number"],
        }
    ]
    edges = [
        {"from_node": "b", "to_node": "d"},
        {"from_node": "d", "to_node": "e"},
        {"from_node": "e", "to_node": "d"},
    ]
    with pytest.raises(PipelineError, match="cycle"):
        check(pipeline(nodes=nodes, edges=edges), registry)


def test_type_mismatch_along_an_edge(registry: PluginRegistry) -> None:
    nodes = [
        pipeline()["nodes"][0],
        {
            "id": "d",
            "plugin_type": "ocr",
            "tool_type": "read",
            "input_types": ["detections"],
            "output_types": ["ocr_lines"],
        },
    ]
    with pytest.raises(PipelineError, match="type mismatch on edge b -> d"):
        check(pipeline(nodes=nodes), registry)


def test_invalid_json_is_refused() -> None:
    with pytest.raises(PipelineError, match=r"^bad\.json: not valid JSON"):
        parse_definition("{nope", "bad.json")


def test_catalog_loads_user_folder_and_records_refusals(
    registry: PluginRegistry, tmp_path: Path
) -> None:
    (tmp_path / "good.json").write_text(json.dumps(pipeline()))
    (tmp_path / "cyclic.json").write_text(
        json.dumps(pipeline(edges=[{"from_node": "d", "to_node": "d"}]))
    )
    (tmp_path / "dupe.json").write_text(json.dumps(pipeline(id="ocr_only")))
    (tmp_path / "model.json").write_text(
        json.dumps(
            pipeline(
                id="needs_model",
                nodes=[{**pipeline()["nodes"][0], "tool_type": "needs_model"}],
                output_nodes=["b"],
                edges=[],
            )
        )
    )
    catalog = load_catalog(registry, tmp_path)
    assert "ocr_only" in catalog.ids()
    assert catalog.pipelines["brightness_doubled"].available
    assert catalog.pipelines["needs_model"].unavailable_reason == (
        "math.needs_model: no model file configured"
    )
    refused = catalog.refused
    assert set(refused) == {"pipelines_dir/cyclic.json", "pipelines_dir/dupe.json"}
    assert "already defined" in refused["pipelines_dir/dupe.json"]
    assert refused["pipelines_dir/cyclic.json"].startswith("pipelines_dir/cyclic.json: ")
    assert not any(str(tmp_path) in key + reason for key, reason in refused.items())


def test_a_missing_user_folder_is_reported(registry: PluginRegistry, tmp_path: Path) -> None:
    catalog = load_catalog(registry, tmp_path / "absent")
    assert catalog.refused == {"pipelines_dir": "pipelines_dir: pipelines folder does not exist"}
    assert "ocr_only" in catalog.ids()


def test_a_tool_that_raises_is_reported_as_its_plugins_error(registry: PluginRegistry) -> None:
    """Whatever a tool raises (a KeyError here, a LookupError) names the plugin and tool."""
    nodes = pipeline()["nodes"]
    broken = pipeline(nodes=[nodes[0], {**nodes[1], "tool_type": "missing_key"}])
    runner = PipelineRunner(check(broken, registry), registry)
    runner.load()
    with pytest.raises(PluginError) as raised:
        runner.run(np.full((4, 4, 3), 21, np.uint8))
    assert str(raised.value) == "plugin math.missing_key failed: KeyError: 'threshold'"
    assert (raised.value.plugin_type, raised.value.tool_type) == ("math", "missing_key")
    assert isinstance(raised.value.__cause__, KeyError)

    load_fails = pipeline(
        nodes=[{**nodes[0], "tool_type": "load_fails"}], output_nodes=["b"], edges=[]
    )
    runner = PipelineRunner(check(load_fails, registry), registry)
    with pytest.raises(PluginError, match=r"^plugin math.load_fails failed: LookupError: no such"):
        runner.load()


def test_the_catalog_says_why_a_pipeline_cannot_run(
    registry: PluginRegistry, tmp_path: Path
) -> None:
    (tmp_path / "model.json").write_text(
        json.dumps(
            pipeline(
                id="needs_model",
                nodes=[{**pipeline()["nodes"][0], "tool_type": "needs_model"}],
                output_nodes=["b"],
                edges=[],
            )
        )
    )
    (tmp_path / "good.json").write_text(json.dumps(pipeline()))
    catalog = load_catalog(registry, tmp_path)
    assert catalog.runnable("brightness_doubled") is catalog.pipelines["brightness_doubled"]
    with pytest.raises(UnknownPipeline, match=r"^unknown pipeline 'vanished'$"):
        catalog.runnable("vanished")
    with pytest.raises(PipelineUnavailable) as raised:
        catalog.runnable("needs_model")
    assert str(raised.value) == (
        "pipeline 'needs_model' is unavailable: math.needs_model: no model file configured"
    )
    assert not isinstance(raised.value, LookupError)
