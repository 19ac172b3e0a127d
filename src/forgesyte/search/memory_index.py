"""The search index in memory, for the in-memory job store: the same answers as the SQL
index, found by reading every entry (a test double; the SQL index reads only candidates)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from forgesyte.search.matching import fold, substring_distance
from forgesyte.search.values import (
    IndexEntries,
    SearchHit,
    SearchKind,
    SearchPosition,
    SearchQuery,
)


@dataclass(frozen=True)
class _IndexedJob:
    created_at: datetime
    filename: str | None
    entries: IndexEntries
    owner: str


class MemorySearchIndex:
    """Entries by job. Not locked: the in-memory store calls it under its own lock."""

    def __init__(self) -> None:
        self._jobs: dict[uuid.UUID, _IndexedJob] = {}

    def write(
        self,
        job_id: uuid.UUID,
        created_at: datetime,
        filename: str | None,
        entries: IndexEntries,
        owner: str,
    ) -> bool:
        """Index a job's entries; False (nothing changed) when it is indexed already."""
        if job_id in self._jobs:
            return False
        self._jobs[job_id] = _IndexedJob(created_at, filename, entries, owner)
        return True

    def has(self, job_id: uuid.UUID) -> bool:
        """Whether the job is indexed."""
        return job_id in self._jobs

    def delete(self, job_id: uuid.UUID) -> None:
        """Forget a job's entries."""
        self._jobs.pop(job_id, None)

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Up to query.limit hits in answer order, strictly behind query.after."""
        hits = self._text_hits(query) if query.kind is SearchKind.TEXT else self._track_hits(query)
        if query.after is not None:
            after = query.after.sort_key()
            hits = [hit for hit in hits if hit.position.sort_key() > after]
        hits.sort(key=lambda hit: hit.position.sort_key())
        return hits[: query.limit]

    def _readable(self, query: SearchQuery) -> list[tuple[uuid.UUID, _IndexedJob]]:
        """The indexed jobs the query may see (only its owner's, when it names one)."""
        owner = query.owner
        return [(i, job) for i, job in self._jobs.items() if owner is None or job.owner == owner]

    def _text_hits(self, query: SearchQuery) -> list[SearchHit]:
        errors = query.allowed_errors
        hits: list[SearchHit] = []
        for job_id, job in self._readable(query):
            tracks = [
                track
                for track in job.entries.objects
                if track.class_name.casefold() == query.with_class
            ]
            for seq, segment in enumerate(job.entries.text):
                distance = substring_distance(query.folded, fold(segment.text))
                if distance > errors:
                    continue
                if query.with_class is not None and not any(
                    t.start_s <= segment.end_s and t.end_s >= segment.start_s for t in tracks
                ):
                    continue
                position = SearchPosition(distance, job.created_at, job_id, segment.start_s, seq)
                hits.append(
                    SearchHit.found(
                        query,
                        position,
                        filename=job.filename,
                        label=segment.text,
                        end_s=segment.end_s,
                        confidence=segment.confidence,
                    )
                )
        return hits

    def _track_hits(self, query: SearchQuery) -> list[SearchHit]:
        return [
            SearchHit.found(
                query,
                SearchPosition(0, job.created_at, job_id, track.start_s, seq),
                filename=job.filename,
                label=track.class_name,
                end_s=track.end_s,
                confidence=track.confidence,
            )
            for job_id, job in self._readable(query)
            for seq, track in enumerate(job.entries.objects)
            if track.class_name.casefold() == query.folded
        ]
