"""Wiring: from Settings to an engine, a job store, storage, plugins and pipelines."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from forgesyte.api.context import AppContext
from forgesyte.db import migrate
from forgesyte.db.engine import create_db_engine
from forgesyte.jobs.store import JobStore
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.base import open_storage
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.worker import Worker, WorkerConfig

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The wired pieces of one ForgeSyte process."""

    settings: Settings
    engine: Engine
    context: AppContext

    def make_worker(self, stop_event: threading.Event, index: int = 0) -> Worker:
        """A worker with its own warm analysis child."""
        settings = self.settings
        executor = AnalysisExecutor(
            pipelines_dir=str(settings.pipelines_dir) if settings.pipelines_dir else None,
            timeout_s=settings.job_timeout_s,
            memory_cap_mb=settings.child_memory_mb,
        )
        config = WorkerConfig(
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            poll_interval_s=settings.poll_interval_s,
            progress_interval_s=settings.progress_interval_s,
            shutdown_grace_s=settings.shutdown_grace_s,
        )
        worker_id = f"{os.uname().nodename}-{os.getpid()}-{index}"
        return Worker(
            self.context.store,
            self.context.storage,
            executor,
            config,
            stop_event,
            worker_id=worker_id,
        )


def build_runtime(settings: Settings, *, upgrade_schema: bool = True) -> Runtime:
    """Connect to the database (upgrading its schema), storage, and load plugins and pipelines."""
    url = settings.resolved_database_url()
    engine = create_db_engine(url)
    if upgrade_schema:
        migrate.upgrade(engine)
    storage = open_storage(
        settings.resolved_storage_url(), s3_endpoint_url=settings.s3_endpoint_url
    )
    registry = discover_plugins()
    catalog = load_catalog(registry, settings.pipelines_dir)
    for name, reason in registry.broken.items():
        log.error("plugin %s is broken: %s", name, reason)
    for reason in catalog.refused.values():
        log.error("pipeline refused: %s", reason)
    for pipeline_id, entry in catalog.pipelines.items():
        if not entry.available:
            log.warning("pipeline %s is unavailable: %s", pipeline_id, entry.unavailable_reason)
    context = AppContext(
        settings=settings,
        store=JobStore(engine),
        storage=storage,
        registry=registry,
        catalog=catalog,
    )
    return Runtime(settings=settings, engine=engine, context=context)
