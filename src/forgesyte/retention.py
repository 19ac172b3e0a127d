"""Removing jobs and what they stored: DELETE, retention, and the sweep of orphaned objects.

Every key a job owns is listed by `job_keys`, so the route, retention and the orphan
sweep can never disagree on what a job leaves in storage: a part of the server that stores
something new per job adds its key builder to JOB_KEY_BUILDERS.

Removal order: a pending job is cancelled first (no worker may claim it meanwhile), its
objects are deleted, and its row goes last. A crash half-way leaves a finished row whose
objects are partly gone, which the next DELETE or retention pass finishes; never an
object that no row refers to and no sweep would find.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.store import JobFinishedError, JobHousekeeping, JobRecord, JobRunningError
from forgesyte.storage.base import (
    Storage,
    StorageError,
    frame_tracks_key,
    playable_key,
    results_key,
    segment_results_key,
    thumbnails_key,
    timeline_key,
    video_key,
)

log = logging.getLogger(__name__)

# Builders of the storage keys a job owns (each gives one key from a job id): its upload,
# results and timeline, and the media its analysis child made (workers/media.py).
JOB_KEY_BUILDERS: tuple[Callable[[uuid.UUID], str], ...] = (
    video_key,
    results_key,
    timeline_key,
    playable_key,
    thumbnails_key,
    frame_tracks_key,
)
# A split job also owns one results object per segment (segment_results_key), while it
# runs and until it ends: their number is the job's segment rows, read before the row goes.
SEGMENT_FOLDER = segment_results_key(uuid.UUID(int=0), 0).split("/", 1)[0]
ORPHAN_MIN_AGE_S = 600.0  # seconds an object must sit unchanged before the sweep may take it
RETENTION_BATCH = 100  # jobs removed per store query


@runtime_checkable
class ListableStorage(Protocol):
    """A storage that can list one folder's keys with their modification times."""

    def keys_older_than(self, folder: str, min_age_s: float) -> dict[str, float]:
        """Keys in one folder unchanged for min_age_s, with their mtimes (Unix seconds)."""
        ...


def job_keys(job: JobRecord) -> list[str]:
    """Every storage key the job owns: those built from its id and those its row names."""
    keys = [build(job.job_id) for build in JOB_KEY_BUILDERS]
    for recorded in (job.input_path, job.output_path):
        if recorded and recorded not in keys:
            keys.append(recorded)
    return keys


def owned_folders() -> list[str]:
    """The storage folders that hold objects owned by jobs."""
    probe = uuid.UUID(int=0)
    return sorted({build(probe).split("/", 1)[0] for build in JOB_KEY_BUILDERS} | {SEGMENT_FOLDER})


def remove_job(store: JobHousekeeping, storage: Storage, job_id: uuid.UUID) -> JobRecord | None:
    """Remove a job that is not running: its storage objects, then its row.

    Returns the removed job, or None if there is none. Raises JobRunningError for a running
    job and StorageError when an object could not be deleted (the row then stays, so the
    removal can be tried again).
    """
    job = store.get(job_id)
    if job is None:
        return None
    if job.status is JobStatus.RUNNING:
        raise JobRunningError(str(job_id))
    if job.status is JobStatus.PENDING:
        # out of the queue first: no worker may start on a video being deleted
        with contextlib.suppress(JobFinishedError):
            store.cancel(job_id)
    segment_keys = [segment_results_key(job_id, s.seq) for s in store.segments(job_id)]
    for key in job_keys(job) + segment_keys:
        storage.delete(key)
    return store.delete(job_id)


def remove_expired_jobs(
    store: JobHousekeeping,
    storage: Storage,
    retention_days: float,
    *,
    now_fn: Callable[[], datetime] = utcnow,
) -> list[uuid.UUID]:
    """Remove every job that finished more than retention_days ago; the ids removed."""
    cutoff = now_fn() - timedelta(days=retention_days)
    removed: list[uuid.UUID] = []
    while True:
        batch = store.finished_before(cutoff, RETENTION_BATCH)
        progressed = False
        for job in batch:
            try:
                if remove_job(store, storage, job.job_id) is not None:
                    removed.append(job.job_id)
                    progressed = True
            except (StorageError, OSError) as exc:
                log.warning("job %s: retention could not remove it yet: %s", job.job_id, exc)
        if len(batch) < RETENTION_BATCH or not progressed:
            break
    for job_id in removed:
        log.info("job %s: removed by retention (finished over %g days ago)", job_id, retention_days)
    return removed


def _job_id_of(key: str) -> uuid.UUID | None:
    stem = key.split("/", 1)[-1].split(".", 1)[0]
    try:
        return uuid.UUID(stem)
    except ValueError:
        return None


def remove_orphans(
    store: JobHousekeeping,
    storage: Storage,
    *,
    min_age_s: float = ORPHAN_MIN_AGE_S,
    folders: Iterable[str] | None = None,
) -> list[str]:
    """Delete objects under a job's key that no job refers to; return the keys removed.

    Only objects unchanged for min_age_s are candidates: an upload is written before its
    job row exists, and the grace period keeps the sweep from racing it. An object older
    than the oldest job is kept with a warning: it predates this database, which says the
    storage is shared with another database rather than that a crash left it.
    """
    if not isinstance(storage, ListableStorage):
        return []
    candidates: dict[str, tuple[uuid.UUID, float]] = {}
    for folder in folders if folders is not None else owned_folders():
        for key, mtime in storage.keys_older_than(folder, min_age_s).items():
            job_id = _job_id_of(key)
            if job_id is not None:
                candidates[key] = (job_id, mtime)
    if not candidates:
        return []
    existing = store.existing_job_ids({job_id for job_id, _ in candidates.values()})
    orphans = {key: value for key, value in candidates.items() if value[0] not in existing}
    oldest = store.oldest_created_at() if orphans else None
    removed: list[str] = []
    kept = 0
    for key, (_, mtime) in sorted(orphans.items()):
        if oldest is None or mtime < oldest.timestamp():
            kept += 1
            continue
        storage.delete(key)
        removed.append(key)
    if kept:
        log.warning(
            "storage holds %d object(s) older than every job in the database; kept them "
            "(is FORGESYTE_DATABASE_URL the database this storage belongs to?)",
            kept,
        )
    return removed


@dataclass
class Housekeeper:
    """The periodic sweep of a serve or worker process: retention, then orphaned objects.

    Every process may run one; they do not need to agree (removing a job or an object
    twice is harmless).
    """

    store: JobHousekeeping
    storage: Storage
    _: KW_ONLY
    interval_s: float
    retention_days: float | None
    orphan_min_age_s: float = ORPHAN_MIN_AGE_S

    def sweep(self) -> tuple[list[uuid.UUID], list[str]]:
        """One pass: the jobs retention removed and the orphaned keys removed."""
        expired: list[uuid.UUID] = []
        if self.retention_days is not None:
            expired = remove_expired_jobs(self.store, self.storage, self.retention_days)
        orphans = remove_orphans(self.store, self.storage, min_age_s=self.orphan_min_age_s)
        for key in orphans:
            log.info("storage sweep: removed %s, which no job refers to", key)
        return expired, orphans

    def run(self, stop_event: threading.Event) -> None:
        """Sweep every interval_s until stop_event is set; an error waits for the next pass."""
        while not stop_event.wait(self.interval_s):
            try:
                self.sweep()
            except Exception:
                log.exception("the periodic storage sweep failed; trying again later")
