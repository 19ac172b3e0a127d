"""Indexing the jobs that completed before the search index existed (or whose worker could
not read its timeline): run by `serve` and `worker` at start, in the background.

A migration cannot do it: the timelines live in storage, not in the database. Each job is
read from storage and indexed in its own transaction, which also marks it indexed
(`search_jobs`), so the backfill is resumable: a process stopped half-way leaves the rest
to the next start, and two processes backfilling at once index each job once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from forgesyte.search.values import IndexEntries
from forgesyte.storage.base import Storage, timeline_key
from forgesyte.storage.errors import ObjectNotFound, StorageError

BACKFILL_BATCH = 50  # jobs asked for at once

log = logging.getLogger(__name__)


class UnindexedJob(Protocol):
    """What the backfill reads of a job (a `JobRecord`)."""

    @property
    def job_id(self) -> uuid.UUID:
        """The job's id."""
        ...


class BackfillStore(Protocol):
    """The job store's two operations the backfill needs (`JobHousekeeping`'s)."""

    def unindexed_jobs(self, limit: int) -> Sequence[UnindexedJob]:
        """Completed jobs not in the index yet, oldest first."""
        ...

    def index_job(self, job_id: uuid.UUID, entries: IndexEntries) -> bool:
        """Index a completed job's entries and mark it indexed, in one transaction."""
        ...


@dataclass
class BackfillReport:
    """What one backfill did."""

    indexed: list[uuid.UUID] = field(default_factory=list)
    without_timeline: list[uuid.UUID] = field(default_factory=list)  # indexed with nothing
    postponed: list[uuid.UUID] = field(default_factory=list)  # storage failed: next start


def read_entries(storage: Storage, job_id: uuid.UUID) -> IndexEntries | None:
    """A completed job's entries from its stored timeline; None when it has no readable
    timeline (missing, or not JSON). StorageError when storage cannot answer now."""
    try:
        with storage.open(timeline_key(job_id)) as stored:
            document = json.load(stored)
    except (ObjectNotFound, FileNotFoundError):
        return None
    except ValueError:  # not JSON (UnicodeDecodeError is one too)
        return None
    return IndexEntries.from_timeline(document)


def backfill_search_index(
    store: BackfillStore, storage: Storage, stop_event: threading.Event | None = None
) -> BackfillReport:
    """Index every completed job the index lacks, one transaction each, until none is left
    (or stop_event is set). A job whose timeline is missing or unreadable is indexed with
    no entries (logged); one storage cannot read now is left for the next start."""
    report = BackfillReport()
    postponed: set[uuid.UUID] = set()
    while stop_event is None or not stop_event.is_set():
        waiting = [
            job.job_id
            for job in store.unindexed_jobs(BACKFILL_BATCH + len(postponed))
            if job.job_id not in postponed
        ]
        if not waiting:
            break
        for job_id in waiting:
            if stop_event is not None and stop_event.is_set():
                break
            try:
                entries = read_entries(storage, job_id)
            except (StorageError, OSError) as exc:
                log.warning("job %s: search backfill could not read its timeline: %s", job_id, exc)
                postponed.add(job_id)
                report.postponed.append(job_id)
                continue
            if entries is None:
                log.warning("job %s: no readable timeline; indexed for search with nothing", job_id)
                report.without_timeline.append(job_id)
            if store.index_job(job_id, entries or IndexEntries()):
                report.indexed.append(job_id)
    if report.indexed:
        log.info("search backfill: indexed %d completed job(s)", len(report.indexed))
    return report
