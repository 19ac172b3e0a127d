"""Wiring: from Settings to an engine, a job store, storage, plugins and pipelines."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from forgesyte.api.context import MAX_CONCURRENT_PREVIEWS, AppContext
from forgesyte.jobs.changes import JobWakeup
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobHousekeeping
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.base import PluginConfig
from forgesyte.plugins.registry import discover_plugins
from forgesyte.retention import ORPHAN_MIN_AGE_S, Housekeeper, remove_orphans
from forgesyte.search.backfill import backfill_search_index
from forgesyte.settings import Settings, child_memory_cap_mb, comma_separated, machine_memory_mb
from forgesyte.storage import Storage, StorageError, open_storage
from forgesyte.webhooks.sender import WebhookSender
from forgesyte.workers.executor import AnalysisExecutor, ChildLimits
from forgesyte.workers.job_run import WorkerConfig
from forgesyte.workers.previews import PREVIEW_TIMEOUT_S, ChildPreviewRenderer
from forgesyte.workers.shared_cores import SharedCores
from forgesyte.workers.worker import Worker

log = logging.getLogger(__name__)


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
    child_env_keep: tuple[str, ...] = ()  # extra variables the children get
    preload: tuple[str, ...] = ()  # pipelines each child loads at its start (build_runtime)

    def close(self) -> None:
        """Release the job store's database connections."""
        self.context.store.close()

    def start_background(self, stop_event: threading.Event) -> list[threading.Thread]:
        """Start the periodic sweep (retention, orphaned objects), the search backfill
        (once) and the webhook sender.

        They run until stop_event is set (the backfill until it is done); serve and worker
        processes run them alike.
        """
        settings = self.settings
        store = self.context.store
        housekeeper = Housekeeper(
            store,
            self.context.storage,
            interval_s=settings.sweep_interval_s,
            retention_days=settings.retention_days,
        )
        threads = [
            threading.Thread(target=housekeeper.run, args=(stop_event,), name="sweep"),
            # jobs completed before the search index existed, indexed once; then upkeep
            threading.Thread(target=self.backfill_search, args=(stop_event,), name="search"),
        ]
        if settings.webhook_secret:
            sender = WebhookSender(
                store,
                secret=settings.webhook_secret,
                max_attempts=settings.webhook_max_attempts,
                allow_private=settings.webhook_allow_private,
                timeout_s=settings.webhook_timeout_s,
            )
            store.add_change_listener(sender.on_change)
            threads.append(threading.Thread(target=sender.run, args=(stop_event,), name="webhooks"))
        for thread in threads:
            thread.daemon = True
            thread.start()
        return threads

    def backfill_search(self, stop_event: threading.Event) -> None:
        """Index the completed jobs the search index lacks (`backfill_search_index`), then
        keep the index quick to read, every sweep interval, until stop_event is set."""
        store = self.context.store
        try:
            backfill_search_index(store, self.context.storage, stop_event)
        except Exception:
            log.exception("the search backfill failed; the next start tries again")
        while True:
            try:
                store.maintain_search_index()
            except Exception:
                log.exception("search index maintenance failed; trying again later")
            if stop_event.wait(self.settings.sweep_interval_s):
                return

    def make_worker(
        self, stop_event: threading.Event, index: int = 0, *, cores: SharedCores | None = None
    ) -> Worker:
        """A worker with its own warm analysis child, sharing the process's cores (its
        plugins' threads follow them) with the other workers of the pool."""
        settings = self.settings
        executor = AnalysisExecutor(
            pipelines_dir=str(settings.pipelines_dir) if settings.pipelines_dir else None,
            timeout_s=settings.job_timeout_s,
            memory_cap_mb=self.context.child_memory_mb,  # set once, by build_runtime
            child_env_keep=self.child_env_keep,
            preload=self.preload,
            plugin_config=self.plugin_config,
            max_frame_pixels=settings.max_frame_pixels,
            cores=cores,
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
            cores=cores,
        )


def sweep_storage(
    store: JobHousekeeping, storage: Storage, *, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[str]:
    """Remove what a killed process can leave in storage; return the removed keys and paths.

    A write interrupted by a crash leaves its temporary file (local storage; on S3 an
    unfinished multipart upload, which a bucket lifecycle rule reclaims); a crash
    between storing a video and inserting its job row leaves an object no job refers to
    (any storage that can list its keys: local and S3). Only what is unchanged for
    min_age_s goes, so uploads running in another process are never touched; see
    `forgesyte.retention.remove_orphans` for what else is kept.
    """
    removed: list[str] = []
    try:
        removed.extend(storage.remove_stale_temporary_files(min_age_s))
        removed.extend(remove_orphans(store, storage, min_age_s=min_age_s))
    except (OSError, ValueError, StorageError) as exc:
        log.warning("storage sweep stopped early: %s", getattr(exc, "strerror", None) or exc)
    for path in removed:
        log.info("storage sweep: removed %s, left by an interrupted write", path)
    return removed


def child_memory_cap(settings: Settings, workers: int) -> int | None:
    """Each analysis child's memory cap in this process (logged); None with no workers."""
    if not workers:
        return None
    memory_mb = child_memory_cap_mb(
        settings.child_memory_mb, settings.child_memory_fraction, workers
    )
    log.info(
        "each analysis child may use %d MiB of memory (%s); one over it is stopped",
        memory_mb,
        (
            "FORGESYTE_CHILD_MEMORY_MB"
            if settings.child_memory_mb is not None
            else f"{settings.child_memory_fraction:g} of {machine_memory_mb()} MiB / "
            f"{workers} worker(s)"
        ),
    )
    return memory_mb


def build_runtime(settings: Settings, *, workers: int, upgrade_schema: bool = True) -> Runtime:
    """Connect to the database (upgrading its schema), storage, and load plugins and pipelines.

    `workers` is how many worker loops this process will run: the analysis children's
    memory cap is their share, set here once. Raises DatabaseLockedError when the DuckDB
    file is held by another process.
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
    if settings.pipelines_dir is not None:
        log.info("extra pipelines from %s (named pipelines_dir/...)", settings.pipelines_dir)
    for name, reason in registry.broken.items():
        log.error("plugin %s is broken: %s", name, reason)
    for reason in catalog.refused.values():
        log.error("pipeline refused: %s", reason)
    for pipeline_id, entry in catalog.pipelines.items():
        if not entry.available:
            log.warning("pipeline %s is unavailable: %s", pipeline_id, entry.unavailable_reason)
    # an upload still under way in another process is younger than its deadline
    sweep_storage(store, storage, min_age_s=max(ORPHAN_MIN_AGE_S, settings.upload_timeout_s + 60))
    child_memory_mb = child_memory_cap(settings, workers)
    child_env_keep = comma_separated(settings.child_env_keep)
    context = AppContext(
        settings=settings,
        store=store,
        storage=storage,
        registry=registry,
        catalog=catalog,
        child_memory_mb=child_memory_mb,
        previews=preview_renderer(settings, child_memory_mb, child_env_keep),
    )
    return Runtime(
        settings=settings,
        context=context,
        plugin_config=plugin_config,
        wakeup=wakeup,
        child_env_keep=child_env_keep,
        preload=comma_separated(settings.preload_pipelines),
    )


def preview_renderer(
    settings: Settings, child_memory_mb: int | None, child_env_keep: tuple[str, ...]
) -> ChildPreviewRenderer:
    """What draws this process's previews: a child each, with the analysis children's memory
    cap (an API-only process: the share of MAX_CONCURRENT_PREVIEWS children) and a time
    limit of PREVIEW_TIMEOUT_S (at most the job timeout)."""
    memory_mb = child_memory_mb
    if memory_mb is None:
        memory_mb = child_memory_cap_mb(
            settings.child_memory_mb, settings.child_memory_fraction, MAX_CONCURRENT_PREVIEWS
        )
    limits = ChildLimits(min(PREVIEW_TIMEOUT_S, settings.job_timeout_s), memory_mb)
    return ChildPreviewRenderer(
        limits, max_frame_pixels=settings.max_frame_pixels, child_env_keep=child_env_keep
    )
