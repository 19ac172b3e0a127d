"""Completed jobs with known timelines, made through the store as a worker makes them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobStore, NewJob
from forgesyte.search.values import IndexEntries, ObjectEntry, TextEntry

WORKER = "search-test-worker"


def text(value: str, start_s: float = 0.0, end_s: float | None = None) -> TextEntry:
    """A text segment from start_s to end_s (start_s + 1 by default), confidence 0.9."""
    return TextEntry(value, start_s, start_s + 1.0 if end_s is None else end_s, 0.9)


def track(class_name: str, start_s: float = 0.0, end_s: float | None = None) -> ObjectEntry:
    """An object track from start_s to end_s (start_s + 1 by default), confidence 0.8."""
    return ObjectEntry(class_name, start_s, start_s + 1.0 if end_s is None else end_s, 0.8)


def create_job(store: JobStore, filename: str | None = "clip.mp4") -> uuid.UUID:
    """A pending job of the store (created now, by the store's clock)."""
    job_id = uuid.uuid4()
    store.create(
        NewJob(
            job_id=job_id,
            pipeline_id="ocr_only",
            options={},
            input_path=f"videos/{job_id}.mp4",
            filename=filename,
        )
    )
    return job_id


def complete_job(
    store: JobStore,
    job_id: uuid.UUID,
    segments: Sequence[TextEntry] = (),
    tracks: Sequence[ObjectEntry] = (),
) -> None:
    """Claim the job (unless claimed already) and complete it with these entries, as a
    worker does."""
    current = store.get(job_id)
    if current is not None and current.status is JobStatus.PENDING:
        claimed = store.claim_next(WORKER, 60.0)
        assert claimed is not None and claimed.job_id == job_id, "claim jobs in creation order"
    entries = IndexEntries(tuple(segments), tuple(tracks))
    assert store.complete(job_id, WORKER, f"results/{job_id}.jsonl", {}, index=entries)


def completed_job(
    store: JobStore,
    segments: Sequence[TextEntry] = (),
    tracks: Sequence[ObjectEntry] = (),
    filename: str | None = "clip.mp4",
) -> uuid.UUID:
    """A new job, completed with these entries."""
    job_id = create_job(store, filename)
    complete_job(store, job_id, segments, tracks)
    return job_id
