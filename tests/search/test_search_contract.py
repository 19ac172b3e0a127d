"""The search index's contract, run on every store: in memory, a DuckDB file, PostgreSQL.

What matches (folding, containment, OCR slips within one error per five characters), the
score, the order, paging while jobs complete, objects and `with=`, deletion, and the
backfill's two operations. The last test checks the SQL indexes' candidate filters and
anchored distances against a plain dynamic programme on random text.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text as text_sql

from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobStore
from forgesyte.retention import remove_expired_jobs
from forgesyte.search import sql_index
from forgesyte.search.matching import fold, substring_distance, trigrams
from forgesyte.search.values import (
    IndexEntries,
    InvalidSearch,
    SearchHit,
    SearchKind,
    SearchQuery,
)
from forgesyte.storage.local import LocalStorage
from tests.search.indexing import WORKER, complete_job, completed_job, create_job, text, track
from tests.support.stores import SteppingClock


def search(
    store: JobStore, q: str, *, kind: str | None = None, with_class: str | None = None
) -> list[SearchHit]:
    """Every hit of a search, paged 3 at a time (so paging is exercised everywhere)."""
    hits: list[SearchHit] = []
    after = None
    while True:
        page = store.search(SearchQuery.parse(q, kind, with_class, limit=3, after=after))
        hits += page
        if len(page) < 3:
            return hits
        after = page[-1].position


def labels(hits: list[SearchHit]) -> list[tuple[str, float]]:
    return [(hit.label, hit.score) for hit in hits]


# -- what matches --------------------------------------------------------------------------


def test_case_and_spaces_are_folded_and_a_contained_query_scores_1(store: JobStore) -> None:
    completed_job(store, [text("PLATFORM 9"), text("Way out to Platform 9 and 10")])
    for q in ("PLATFORM 9", "platform9", "Platform  9", "latform"):
        found = search(store, q)
        assert sorted(labels(found)) == [("PLATFORM 9", 1.0), ("Way out to Platform 9 and 10", 1.0)]


@pytest.mark.parametrize(
    ("q", "segment", "score"),
    [
        ("PLATF0RM 9", "PLATFORM 9", 0.8889),  # O read as 0: 1 error in 9 characters
        ("PLATFORM 9", "PLATF0RM 9", 0.8889),
        ("EXIT 12", "EXlT 12", 0.8333),  # I read as l, 6 folded characters
        ("EXIT 12", "EX1T 12", 0.8333),
        ("FIRE EXIT", "EIRE EXIT", 0.875),  # F read as E
        ("PLATFORM 9", "PLATFOR M9", 1.0),  # a space in the wrong place: folded away
        ("PLATFORM 9", "PLATFRM 9", 0.8889),  # a letter lost
        ("PLATFORM 9", "PLATFORMM 9", 0.8889),  # a letter doubled
        ("NORTH GATE 12", "N0RTH GATE I2", 0.8182),  # 2 errors in 11 characters
    ],
)
def test_ocr_slips_within_one_error_per_five_characters_match(
    store: JobStore, q: str, segment: str, score: float
) -> None:
    completed_job(store, [text(segment), text("SOMETHING ELSE ENTIRELY")])
    assert labels(search(store, q)) == [(segment, score)]


@pytest.mark.parametrize(
    ("q", "segment"),
    [
        ("EXIT", "EXlT"),  # 4 characters: no error allowed
        ("PLATFORM 9", "PLATF0RM 8"),  # 2 errors in 9 characters
        ("GATE 12", "GATE 34"),  # 2 errors in 6 characters
        ("NORTH GATE 12", "N0RTH GATF I2"),  # 3 errors in 11 characters
        ("platform", "PLAT FURUM"),  # 2 errors in 8 characters
    ],
)
def test_more_errors_than_allowed_do_not_match(store: JobStore, q: str, segment: str) -> None:
    completed_job(store, [text(segment)])
    assert search(store, q) == []


def test_a_query_matches_inside_a_longer_segment_with_errors(store: JobStore) -> None:
    completed_job(store, [text("NEXT TRAIN TO PLATF0RM 9 DEPARTS 10:42")])
    assert labels(search(store, "platform 9")) == [
        ("NEXT TRAIN TO PLATF0RM 9 DEPARTS 10:42", 0.8889)
    ]


def test_query_characters_of_sql_patterns_are_taken_literally(store: JobStore) -> None:
    completed_job(store, [text("50% OFF"), text("50X OFF"), text("A_B"), text("AXB"), text("C\\D")])
    assert labels(search(store, "50%")) == [("50% OFF", 1.0)]
    assert labels(search(store, "a_b")) == [("A_B", 1.0)]
    assert labels(search(store, "c\\d")) == [("C\\D", 1.0)]
    assert labels(search(store, "'; DROP TABLE jobs; --")) == []


def test_non_ascii_text_folds_and_matches(store: JobStore) -> None:
    completed_job(store, [text("STRAẞE 12"), text("Ünter den Linden")])
    assert labels(search(store, "strasse12")) == [("STRAẞE 12", 1.0)]
    assert labels(search(store, "UNTER DEN LINDEN")) == [("Ünter den Linden", 0.9286)]


# -- order and paging ----------------------------------------------------------------------


def test_hits_are_ordered_by_score_then_newest_job_then_start(store: JobStore) -> None:
    older = completed_job(store, [text("GATE 7 OPEN", 5.0), text("GATE 7 0PEN", 1.0)])
    newer = completed_job(store, [text("GATE 7 OPEN", 9.0), text("GATE 7 OPEN", 2.0)])
    found = search(store, "gate 7 open")
    assert [(hit.job_id, hit.start_s, hit.score) for hit in found] == [
        (newer, 2.0, 1.0),
        (newer, 9.0, 1.0),
        (older, 5.0, 1.0),
        (older, 1.0, 0.8889),
    ]


def test_paging_visits_every_match_once_while_jobs_complete(store: JobStore) -> None:
    early = create_job(store)  # created first, completed after the first page
    assert store.claim_next(WORKER, 60.0) is not None  # running meanwhile
    jobs = [completed_job(store, [text(f"EXIT {n}", float(s)) for s in range(4)]) for n in range(3)]
    before = {(hit.job_id, hit.position.seq) for hit in search(store, "exit")}
    first = store.search(SearchQuery.parse("exit", limit=5))
    complete_job(store, early, [text("EXIT 9", 0.5)])  # older: sorts after the first page
    completed_job(store, [text("EXIT 99")])  # newer: sorts before it
    rest: list[SearchHit] = []
    after = first[-1].position
    while page := store.search(SearchQuery.parse("exit", limit=5, after=after)):
        rest += page
        after = page[-1].position
    seen = [(hit.job_id, hit.position.seq) for hit in first + rest]
    assert len(seen) == len(set(seen)), "a match was repeated"
    assert before <= set(seen), "a match was skipped"
    assert {job_id for job_id, _ in seen} == {*jobs, early}


# -- objects and co-occurrence ---------------------------------------------------------------


def test_an_object_search_finds_tracks_of_that_class(store: JobStore) -> None:
    job = completed_job(
        store, [text("PERSON")], [track("person", 1.0), track("car"), track("Person", 3.0)]
    )
    found = search(store, " PERSON ", kind="object")
    assert [(hit.kind, hit.label, hit.start_s, hit.score) for hit in found] == [
        (SearchKind.OBJECT, "person", 1.0, 1.0),
        (SearchKind.OBJECT, "Person", 3.0, 1.0),
    ]
    assert {hit.job_id for hit in found} == {job}
    assert search(store, "pers", kind="object") == []


def test_with_keeps_text_that_overlaps_a_track_of_that_class_in_the_same_job(
    store: JobStore,
) -> None:
    beside = completed_job(
        store,
        [text("EXIT 12", 0.0, 2.0), text("EXIT 12", 5.0, 6.0), text("EXIT 12", 9.0, 9.0)],
        [track("person", 1.5, 5.0), track("dog", 8.0, 10.0), track("Person", 9.0, 9.0)],
    )
    completed_job(store, [text("EXIT 12", 0.0, 10.0)], [track("dog", 0.0, 10.0)])
    found = search(store, "exit 12", with_class="PERSON")
    assert [(hit.job_id, hit.start_s) for hit in found] == [
        (beside, 0.0),
        (beside, 5.0),
        (beside, 9.0),
    ]
    assert [hit.start_s for hit in search(store, "exit 12", with_class="dog")] == [0.0, 9.0]
    assert search(store, "exit 12", with_class="car") == []


# -- filename, deletion, backfill -------------------------------------------------------------


def test_hits_carry_the_jobs_filename(store: JobStore) -> None:
    completed_job(store, [text("HELLO")], filename="station.mp4")
    completed_job(store, [text("HELLO")], filename=None)
    assert [hit.filename for hit in search(store, "hello")] == [None, "station.mp4"]
    assert [hit.to_json()["filename"] for hit in search(store, "hello")] == [None, "station.mp4"]


def test_deleting_a_job_removes_its_entries(store: JobStore) -> None:
    gone = completed_job(store, [text("PLATFORM 9")], [track("person")])
    kept = completed_job(store, [text("PLATFORM 9")], [track("person")])
    assert store.delete(gone) is not None
    assert {hit.job_id for hit in search(store, "platform 9")} == {kept}
    assert {hit.job_id for hit in search(store, "person", kind="object")} == {kept}
    assert store.unindexed_jobs(10) == []


def test_retention_removes_a_jobs_entries_with_it(
    store: JobStore, clock: SteppingClock, tmp_path: Path
) -> None:
    old = completed_job(store, [text("PLATFORM 9")], [track("person")])
    clock.advance(2 * 86400.0)
    new = completed_job(store, [text("PLATFORM 9")], [track("person")])
    storage = LocalStorage(tmp_path / "storage")
    assert remove_expired_jobs(store, storage, 1.0, now_fn=clock) == [old]
    assert {hit.job_id for hit in search(store, "platform 9")} == {new}
    assert {hit.job_id for hit in search(store, "person", kind="object")} == {new}


def test_a_job_completed_without_entries_is_indexed_by_the_backfill_once(store: JobStore) -> None:
    job_id = create_job(store)
    claimed = store.claim_next("w", 60.0)
    assert claimed is not None
    assert store.complete(job_id, "w", "results/x.jsonl", {})  # no entries: left to the backfill
    assert [job.job_id for job in store.unindexed_jobs(10)] == [job_id]
    entries = IndexEntries((text("LATE ARRIVAL"),), (track("train"),))
    assert store.index_job(job_id, entries)
    assert not store.index_job(job_id, entries)  # indexed once
    assert store.unindexed_jobs(10) == []
    assert labels(search(store, "late arrival")) == [("LATE ARRIVAL", 1.0)]
    assert len(search(store, "train", kind="object")) == 1


def test_only_completed_jobs_are_indexed(store: JobStore) -> None:
    pending = create_job(store)
    assert not store.index_job(pending, IndexEntries((text("NOPE"),)))
    assert not store.index_job(uuid.uuid4(), IndexEntries((text("NOPE"),)))
    assert search(store, "nope") == []


def test_bad_queries_are_refused_naming_the_field() -> None:
    for q, kind, with_class, limit, field in [
        (None, None, None, 20, "q:"),
        ("a", None, None, 20, "q:"),
        (" a ", None, None, 20, "q:"),
        ("x" * 201, None, None, 20, "q:"),
        ("exit", "video", None, 20, "kind:"),
        ("person", "object", "dog", 20, "with:"),
        ("exit", None, "  ", 20, "with:"),
        ("exit", None, None, 0, "limit:"),
        ("exit", None, None, 102, "limit:"),
    ]:
        with pytest.raises(InvalidSearch, match=field):
            SearchQuery.parse(q, kind, with_class, limit)


# -- the SQL indexes' filters against the plain rule -----------------------------------------

ALPHABET = "abcdeo0il1 "


def _mutated(rng: random.Random, source: str, edits: int) -> str:
    chars = list(source)
    for _ in range(edits):
        where = rng.randrange(len(chars) + 1)
        kind = rng.choice("isd")
        if kind == "i" or not chars:
            chars.insert(where, rng.choice(ALPHABET))
        elif kind == "s" and where < len(chars):
            chars[where] = rng.choice(ALPHABET)
        elif where < len(chars):
            del chars[where]
    return "".join(chars)


@pytest.mark.parametrize("batches", ["as configured", "tiny"])
def test_every_store_finds_exactly_the_segments_the_rule_matches(
    store: JobStore, batches: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random segments over a small alphabet (many near misses), and queries cut from them
    with 0-4 edits: each store's hits and scores are the plain dynamic programme's. With
    tiny batches the SQL stores measure near segments 4 at a time and always look for
    contained ones first, so their early stop is taken on every page."""
    if batches == "tiny":
        monkeypatch.setattr(sql_index, "NEAR_BATCH", 4)
        monkeypatch.setattr(sql_index, "DIRECT_NEAR_CANDIDATES", 0)
    rng = random.Random(23)
    segments = [
        "".join(rng.choice(ALPHABET) for _ in range(rng.randint(3, 30))) for _ in range(160)
    ]
    job_ids = [
        completed_job(store, [text(s, float(i)) for i, s in enumerate(segments[k::4])])
        for k in range(4)
    ]
    queries = []
    for _ in range(25):
        source = rng.choice(segments)
        start = rng.randrange(len(source))
        cut = source[start : start + rng.randint(2, 24)]
        queries.append(_mutated(rng, cut, rng.randint(0, 4)))
    checked = 0
    for q in queries:
        folded = fold(q)
        if len(folded) < 2 or len(q) > 200:
            continue
        expected = set()
        for k, job_id in enumerate(job_ids):
            for seq, segment in enumerate(segments[k::4]):
                distance = substring_distance(folded, fold(segment))
                if distance <= len(folded) // 5:
                    expected.add((job_id, seq, round(1 - distance / len(folded), 4)))
        found = {(hit.job_id, hit.position.seq, hit.score) for hit in search(store, q)}
        assert found == expected, q
        checked += len(expected)
    assert checked > 50  # the queries found something worth comparing


def test_maintenance_keeps_every_answer(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's trigram table sorted again (here at any size): the same answers, then a
    job added and one deleted, sorted again, the same answers as the rule gives."""
    monkeypatch.setattr(sql_index, "SORT_TRIGRAMS_MIN_ROWS", 0)
    first = completed_job(store, [text("PLATFORM 9", 1.0), text("EXIT 12", 2.0)])
    second = completed_job(store, [text("PLATF0RM 9", 3.0), text("NORTH GATE", 4.0)])
    before = {(hit.job_id, hit.label, hit.score) for hit in search(store, "platform 9")}
    store.maintain_search_index()
    assert {(hit.job_id, hit.label, hit.score) for hit in search(store, "platform 9")} == before
    third = completed_job(store, [text("PLATFORM 9 AND 10", 5.0)])
    assert store.delete(first) is not None
    store.maintain_search_index()
    assert {(hit.job_id, hit.score) for hit in search(store, "platform 9")} == {
        (second, 0.8889),
        (third, 1.0),
    }
    assert labels(search(store, "exit 12")) == []
    if isinstance(store, SqlJobStore) and store.engine.dialect.name == "duckdb":
        with store.engine.connect() as connection:
            grams = [
                row[0]
                for row in connection.execute(
                    text_sql("SELECT gram FROM search_trigrams ORDER BY rowid")
                )
            ]
        remaining = ("platf0rm9", "northgate", "platform9and10")  # one row per trigram each
        assert grams == sorted(grams)
        assert len(grams) == sum(len(trigrams(folded)) for folded in remaining)
