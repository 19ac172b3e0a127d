"""Wiring: from Settings to an engine, a job store, storage, plugins and pipelines."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from forgesyte.api.context import AppContext
from forgesyte.db import migrate
from forgesyte.db.engine import create_db_engine
from forgesyte.jobs.store import JobStore
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.base import Storage, open_storage
from forgesyte.storage.local import LocalStorage
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.worker import Worker, WorkerConfig

log = logging.getLogger(__name__)

# Files unchanged for this long cannot belong to an upload or a write still under way.
ORPHAN_MIN_AGE_S = 600.0


@dataclass
class Runtime:
    """The wired pieces of one ForgeSyte process."""

    settings: Settings
    engine: Engine
    context: AppContext
    plugin_config: PluginConfig

    def make_worker(
        self, stop_event: threading.Event, index: int = 0, *, analysis_threads: int | None = None
    ) -> Worker:
        """A worker with its own warm analysis child (its plugins get analysis_threads)."""
        settings = self.settings
        plugin_config = self.plugin_config
        if analysis_threads is not None:
            plugin_config = replace(plugin_config, analysis_threads=analysis_threads)
        executor = AnalysisExecutor(
            pipelines_dir=str(settings.pipelines_dir) if settings.pipelines_dir else None,
            timeout_s=settings.job_timeout_s,
            memory_cap_mb=settings.child_memory_mb,
            plugin_config=plugin_config,
            max_frame_pixels=settings.max_frame_pixels,
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


def sweep_storage(
    store: JobStore, storage: Storage, *, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[str]:
    """Remove what a killed process can leave in local storage; return the removed paths.

    A write interrupted by a crash leaves its temporary file; a crash between storing a
    video and inserting its job row leaves a video no job refers to. Only files unchanged
    for min_age_s go, so uploads running in another process are never touched. A video
    older than the oldest job is kept (with a warning): it predates this database, which
    says the storage was pointed at the wrong database rather than that a crash left it.
    Object storage is not swept.
    """
    if not isinstance(storage, LocalStorage):
        return []
    removed: list[str] = []
    kept = 0
    try:
        removed.extend(storage.remove_stale_temporary_files(min_age_s))
        videos = {
            uuid.UUID(key.removeprefix("videos/").removesuffix(".mp4")): (key, mtime)
            for key, mtime in storage.keys_older_than("videos", min_age_s).items()
            if key.endswith(".mp4")
        }
        orphans = set(videos) - store.existing_job_ids(videos.keys()) if videos else set()
        oldest = store.oldest_created_at() if orphans else None
        for job_id in sorted(orphans):
            key, mtime = videos[job_id]
            if oldest is None or mtime < oldest.timestamp():
                kept += 1
                continue
            storage.delete(key)
            removed.append(key)
    except (OSError, ValueError) as exc:  # ValueError: a stray name that is not a job id
        log.warning("storage sweep stopped early: %s", getattr(exc, "strerror", None) or exc)
    if kept:
        log.warning(
            "storage holds %d video(s) older than every job in the database; kept them "
            "(is FORGESYTE_DATABASE_URL the database this storage belongs to?)",
            kept,
        )
    for path in removed:
        log.info("storage sweep: removed %s, left by an interrupted write", path)
    return removed


def build_runtime(settings: Settings, *, upgrade_schema: bool = True) -> Runtime:
    """Connect to the database (upgrading its schema), storage, and load plugins and pipelines."""
    url = settings.resolved_database_url()
    engine = create_db_engine(url)
    if upgrade_schema:
        migrate.upgrade(engine)
    storage = open_storage(
        settings.resolved_storage_url(), s3_endpoint_url=settings.s3_endpoint_url
    )
    plugin_config = PluginConfig(
        analysis_threads=settings.analysis_threads, yolo_model=settings.yolo_model
    )
    registry = discover_plugins(plugin_config)
    catalog = load_catalog(registry, settings.pipelines_dir)
    for name, reason in registry.broken.items():
        log.error("plugin %s is broken: %s", name, reason)
    for reason in catalog.refused.values():
        log.error("pipeline refused: %s", reason)
    for pipeline_id, entry in catalog.pipelines.items():
        if not entry.available:
            log.warning("pipeline %s is unavailable: %s", pipeline_id, entry.unavailable_reason)
    store = JobStore(engine)
    sweep_storage(store, storage)
    context = AppContext(
        settings=settings,
        store=store,
        storage=storage,
        registry=registry,
        catalog=catalog,
    )
    return Runtime(settings=settings, engine=engine, context=context, plugin_config=plugin_config)
