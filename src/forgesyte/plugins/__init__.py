"""Analysis plugins: the tool protocol, discovery through entry points, built-ins."""

from forgesyte.plugins.base import Frame, Plugin, Tool
from forgesyte.plugins.registry import PluginRegistry, discover_plugins

__all__ = ["Frame", "Plugin", "PluginRegistry", "Tool", "discover_plugins"]
