"""What the routes need, wired once per process."""

from __future__ import annotations

from dataclasses import dataclass

from forgesyte.jobs.store import JobStore
from forgesyte.pipelines.catalog import PipelineCatalog
from forgesyte.plugins.registry import PluginRegistry
from forgesyte.settings import Settings
from forgesyte.storage.base import Storage


@dataclass
class AppContext:
    """Settings, the job store, storage and the pipeline catalog."""

    settings: Settings
    store: JobStore
    storage: Storage
    registry: PluginRegistry
    catalog: PipelineCatalog
    child_memory_mb: int | None = None  # each analysis child's memory cap (None: no workers)
