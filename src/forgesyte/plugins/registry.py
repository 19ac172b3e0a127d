"""Plugin discovery through the `forgesyte.plugins` entry-point group."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from forgesyte.plugins.base import Plugin, PluginConfig, Tool

ENTRY_POINT_GROUP = "forgesyte.plugins"

log = logging.getLogger(__name__)


@dataclass
class PluginRegistry:
    """The plugins found, and the ones that failed to load with the reason why."""

    plugins: dict[str, Plugin] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    def tool(self, plugin_type: str, tool_type: str) -> Tool | None:
        """The tool a pipeline node names, or None if there is none."""
        plugin = self.plugins.get(plugin_type)
        if plugin is None:
            return None
        return plugin.tools.get(tool_type)


def _accepts_config(factory: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def _load_entry_point(entry: EntryPoint, config: PluginConfig) -> Plugin:
    """Build the plugin an entry point names; a factory that takes an argument gets config."""
    loaded = entry.load()
    if callable(loaded):
        plugin: Plugin = loaded(config) if _accepts_config(loaded) else loaded()
    else:
        plugin = loaded
    if not isinstance(plugin.name, str) or not hasattr(plugin, "tools"):
        raise TypeError(f"entry point {entry.value} did not give a plugin")
    return plugin


def discover_plugins(
    config: PluginConfig | None = None,
    extra: Iterable[tuple[str, Callable[[], Plugin]]] = (),
) -> PluginRegistry:
    """Load every plugin registered under the entry-point group; report broken ones by name.

    Each plugin factory that takes an argument is handed `config` (threads, model paths).
    A plugin that fails to import or build is recorded in `broken` and logged; it never
    stops the others from loading.
    """
    registry = PluginRegistry()
    config = config or PluginConfig()
    sources: list[tuple[str, Callable[[], Plugin]]] = [
        (entry.name, lambda entry=entry: _load_entry_point(entry, config))  # type: ignore[misc]
        for entry in entry_points(group=ENTRY_POINT_GROUP)
    ]
    sources.extend(extra)
    for name, factory in sources:
        try:
            plugin = factory()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            registry.broken[name] = reason
            log.error("plugin %s failed to load: %s", name, reason)
            continue
        registry.plugins[plugin.name] = plugin
    return registry
