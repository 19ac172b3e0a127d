"""The values that cross the search index's seam: what is indexed, what is asked, what is found.

Plain frozen values, so the in-memory store, the API and the worker read them without
SQLAlchemy. A query is checked once, when it is built (`SearchQuery.parse`): a bad one is
an `InvalidSearch` naming the field.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from forgesyte.search.matching import (
    MAX_QUERY_CHARACTERS,
    MIN_QUERY_CHARACTERS,
    SearchPlan,
    fold,
    score,
)

MAX_LIMIT = 100  # matches per page
MAX_CLASS_CHARACTERS = 100  # with=: a class name (COCO's longest is 14 characters)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class InvalidSearch(ValueError):
    """A query the index cannot answer; the message names the field and the rule."""


class SearchKind(enum.StrEnum):
    """What a search looks for."""

    TEXT = "text"  # text segments, matched with OCR errors forgiven
    OBJECT = "object"  # object tracks of a class, by its name


@dataclass(frozen=True)
class TextEntry:
    """One text segment of a job's timeline, as indexed."""

    text: str
    start_s: float
    end_s: float
    confidence: float


@dataclass(frozen=True)
class ObjectEntry:
    """One object track of a job's timeline, as indexed."""

    class_name: str
    start_s: float
    end_s: float
    confidence: float


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _span(item: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """start_s, end_s and confidence of a timeline item (confidence 0 when absent)."""
    start, end = _number(item.get("start_s")), _number(item.get("end_s"))
    if start is None or end is None:
        return None
    return start, end, _number(item.get("confidence")) or 0.0


@dataclass(frozen=True)
class IndexEntries:
    """What the index keeps of one completed job: its timeline's segments and tracks, in
    the timeline's order (their place in it is their `seq`)."""

    text: tuple[TextEntry, ...] = ()
    objects: tuple[ObjectEntry, ...] = ()

    @classmethod
    def from_timeline(cls, timeline: Any) -> IndexEntries:
        """The entries of a stored timeline document (``{"text": [...], "objects": [...]}``).

        Whatever the timeline says is indexed; an item without its text or class name, or
        without numeric times, is left out rather than failing the job.
        """
        if not isinstance(timeline, Mapping):
            return cls()
        text: list[TextEntry] = []
        for item in timeline.get("text") or ():
            words = item.get("text") if isinstance(item, Mapping) else None
            if isinstance(words, str) and fold(words) and (span := _span(item)) is not None:
                text.append(TextEntry(words, *span))
        objects: list[ObjectEntry] = []
        for item in timeline.get("objects") or ():
            name = item.get("class_name") if isinstance(item, Mapping) else None
            if isinstance(name, str) and (span := _span(item)) is not None:
                objects.append(ObjectEntry(name, *span))
        return cls(tuple(text), tuple(objects))


@dataclass(frozen=True)
class SearchPosition:
    """A match's place in the order of answers: distance, then newest job (created_at, then
    job_id, both descending), then start_s, then its place in the job's timeline. A page's
    last position is where the next page starts."""

    distance: int
    created_at: datetime
    job_id: uuid.UUID
    start_s: float
    seq: int

    def sort_key(self) -> tuple[Any, ...]:
        """A key that sorts positions in answer order (ascending)."""
        return (
            self.distance,
            -((self.created_at - EPOCH) // MICROSECOND),
            -self.job_id.int,
            self.start_s,
            self.seq,
        )


@dataclass(frozen=True)
class SearchQuery:
    """One page of a search, checked: build it with `parse`."""

    kind: SearchKind
    q: str  # as sent
    folded: str  # what is compared: a text query folded, a class name case folded
    with_class: str | None  # text only: a class name, case folded
    limit: int  # at most this many hits
    after: SearchPosition | None = None  # only hits strictly behind this position
    owner: str | None = None  # only jobs of this owner (a user key's search); None: every job

    @classmethod
    def parse(
        cls,
        q: str | None,
        kind: str | None = None,
        with_class: str | None = None,
        limit: int = 20,
        after: SearchPosition | None = None,
    ) -> SearchQuery:
        """A query from the request's values; InvalidSearch naming what is wrong."""
        try:
            wanted = SearchKind(kind or SearchKind.TEXT)
        except ValueError:
            raise InvalidSearch("kind: must be text or object") from None
        if q is None or not MIN_QUERY_CHARACTERS <= len(q) <= MAX_QUERY_CHARACTERS:
            raise InvalidSearch(
                f"q: must be {MIN_QUERY_CHARACTERS} to {MAX_QUERY_CHARACTERS} characters"
            )
        folded = fold(q) if wanted is SearchKind.TEXT else q.strip().casefold()
        if len(folded) < MIN_QUERY_CHARACTERS:
            raise InvalidSearch(
                f"q: must have at least {MIN_QUERY_CHARACTERS} characters besides spaces"
            )
        if with_class is not None and wanted is SearchKind.OBJECT:
            raise InvalidSearch("with: only a text search can ask for an object beside it")
        if with_class is not None and not with_class.strip():
            raise InvalidSearch("with: must name a class, e.g. person")
        if with_class is not None and len(with_class) > MAX_CLASS_CHARACTERS:
            raise InvalidSearch(f"with: must be at most {MAX_CLASS_CHARACTERS} characters")
        if not 1 <= limit <= MAX_LIMIT + 1:  # the API asks one more, to know if more follow
            raise InvalidSearch(f"limit: must be a whole number from 1 to {MAX_LIMIT}")
        wanted_with = with_class.strip().casefold() if with_class is not None else None
        return cls(wanted, q, folded, wanted_with, limit, after)

    @property
    def plan(self) -> SearchPlan:
        """How a text query is matched (its allowed errors, pieces and trigrams)."""
        return SearchPlan.of(self.folded)

    @property
    def allowed_errors(self) -> int:
        """Errors a match may have: none for an object search."""
        return self.plan.errors if self.kind is SearchKind.TEXT else 0


@dataclass(frozen=True)
class SearchHit:
    """One moment that matched: a text segment (`text`) or an object track (`class_name`)."""

    job_id: uuid.UUID
    filename: str | None
    kind: SearchKind
    label: str  # the segment's text, or the track's class name
    start_s: float
    end_s: float
    confidence: float
    score: float  # in (0, 1]: 1 for a segment that contains the query, or a track
    position: SearchPosition

    @classmethod
    def found(
        cls,
        query: SearchQuery,
        position: SearchPosition,
        *,
        filename: str | None,
        label: str,
        end_s: float,
        confidence: float,
    ) -> SearchHit:
        """The hit at position for query (its score from its distance)."""
        return cls(
            job_id=position.job_id,
            filename=filename,
            kind=query.kind,
            label=label,
            start_s=position.start_s,
            end_s=end_s,
            confidence=confidence,
            score=score(position.distance, query.folded) if query.kind is SearchKind.TEXT else 1.0,
            position=position,
        )

    def to_json(self) -> dict[str, Any]:
        """The match as GET /v1/search answers it."""
        label = "text" if self.kind is SearchKind.TEXT else "class_name"
        return {
            "job_id": str(self.job_id),
            "filename": self.filename,
            "kind": self.kind.value,
            label: self.label,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "confidence": self.confidence,
            "score": self.score,
        }
