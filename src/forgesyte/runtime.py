"""Wiring: from Settings to an engine, a job store, storage, plugins and pipelines."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, replace

from forgesyte.api.context import AppContext
from forgesyte.jobs.changes import JobWakeup
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobStore
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage import Storage, StorageError, open_storage
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.worker import Worker, WorkerConfig

log = logging.getLogger(__name__)

# Files unchanged for this long cannot belong to an upload or a write still under way.
ORPHAN_MIN_AGE_S = 600.0


@dataclass
class Runtime:
    """The wired pieces of one ForgeSyte process.

    `wakeup` listens to the job store: the workers made here wake as soon as a job in
    this process becomes pending (an API submit, a hand-back), not at their next poll.
    """

    settings: Settings
    context: AppContext
    plugin_config: PluginConfig
    wakeup: JobWakeup
    child_memory_mb: int | None = None  # set by the worker pool: the cap in force
    child_env_keep: tuple[str, ...] = ()  # extra variables the children get

    def close(self) -> None:
        """Release the job store's database connections."""
        self.context.store.close()

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
            memory_cap_mb=(
                self.child_memory_mb
                if self.child_memory_mb is not None
                else settings.child_memory_mb
            ),
            child_env_keep=self.child_env_keep,
            plugin_config=plugin_config,
            max_frame_pixels=settings.max_frame_pixels,
        )
        config = WorkerConfig.from_settings(settings)
        worker_id = f"{os.uname().nodename}-{os.getpid()}-{index}"
        return Worker(
            self.context.store,
            self.context.storage,
            executor,
            config,
            stop_event,
            worker_id=worker_id,
            wakeup=self.wakeup,
        )


def sweep_storage(
    store: JobStore, storage: Storage, *, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[str]:
    """Remove what a killed process can leave in storage; return what was removed.

    A write interrupted by a crash leaves its temporary file (on S3: an unfinished
    multipart upload); a crash between storing a
    video and inserting its job row leaves a video no job refers to. Only files unchanged
    for min_age_s go, so uploads running in another process are never touched. A video
    older than the oldest job is kept (with a warning): it predates this database, which
    says the storage was pointed at the wrong database rather than that a crash left it.
    """
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
    except (
        StorageError,
        OSError,
        ValueError,
    ) as exc:  # ValueError: a stray name that is not a job id
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
    """Connect to the database (upgrading its schema), storage, and load plugins and pipelines.

    Raises DatabaseLockedError when the DuckDB file is held by another process.
    """
    store = SqlJobStore.open(settings.resolved_database_url(), upgrade_schema=upgrade_schema)
    wakeup = JobWakeup()
    store.add_change_listener(wakeup.on_change)
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
    # an upload still under way in another process is younger than its deadline
    sweep_storage(store, storage, min_age_s=max(ORPHAN_MIN_AGE_S, settings.upload_timeout_s + 60))
    context = AppContext(
        settings=settings,
        store=store,
        storage=storage,
        registry=registry,
        catalog=catalog,
    )
    keep = tuple(name.strip() for name in settings.child_env_keep.split(",") if name.strip())
    return Runtime(
        settings=settings,
        context=context,
        plugin_config=plugin_config,
        wakeup=wakeup,
        child_env_keep=keep,
    )
