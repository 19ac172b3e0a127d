"""The HTTP API: app factory and one router per resource."""

from forgesyte.api.app import create_app
from forgesyte.api.context import AppContext

__all__ = ["AppContext", "create_app"]
