"""Row x: search across jobs, on DuckDB and on PostgreSQL.

1,000,000 text segments and 200,000 object tracks (2,000 jobs of 500 segments and 100
tracks) go into each database through the store, as workers write them: one completion
per job, its entries in the completion's transaction. The text is made to look like what
OCR reads off signs, screens and scoreboards: words of a 6,000-word made vocabulary,
common sign words (EXIT, PLATFORM, GATE ...) and numbers, each job showing some 60
recurring lines; a few jobs carry the lines the queries look for. Then each query runs
interleaved with the others, `rounds` times: p50 and p95 per engine, the plans (EXPLAIN
ANALYZE), the index's size on disk, and what indexing one job costs against that job's
time (a real ocr_only analysis of a text video, indexed on the full database).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' PostgreSQL

from sqlalchemy import text

from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import NewJob
from forgesyte.plugins.coco import COCO_CLASS_NAMES
from forgesyte.search.values import IndexEntries, ObjectEntry, SearchQuery, TextEntry
from tests.support.services import postgres_server

WORKER = "bench-search"
SEGMENTS_PER_JOB = 500
TRACKS_PER_JOB = 100
VIDEO_S = 1800.0  # each made job's video is half an hour long
COMMON_WORDS = (
    "EXIT",
    "PLATFORM",
    "GATE",
    "SCORE",
    "OPEN",
    "CLOSED",
    "NORTH",
    "SOUTH",
    "STREET",
    "STATION",
    "SALE",
    "TICKETS",
    "WAY",
    "OUT",
    "PARKING",
    "NO",
    "ENTRY",
    "STOP",
    "BUS",
    "TRAIN",
)
SYLLABLE_TEXT = (
    "ba ce di fo gu ha je ki lo mu na pe ri so tu va we xi yo za ar en in on un st tr pl"
)
SYLLABLES = tuple(SYLLABLE_TEXT.split())  # of the made vocabulary's words
# what the queries look for, and in how many of the jobs (one in `every`)
NEEDLES = (("NORTH GATE 12", 200), ("NEXT TRAIN TO CENTRAL STATION DEPARTS FROM PLATFORM 4", 100))


@dataclass(frozen=True)
class Query:
    """One measured search."""

    label: str
    q: str
    kind: str = "text"
    with_class: str | None = None

    def parsed(self) -> SearchQuery:
        return SearchQuery.parse(self.q, self.kind, self.with_class, limit=21)


QUERIES = (
    Query("exact, common (PLATFORM 9)", "platform 9"),
    Query("fuzzy, 1 error (PLATF0RM 9)", "PLATF0RM 9"),
    Query("fuzzy, 1 error, rare (EXlT 12)", "EXlT 12"),
    Query("fuzzy, 2 errors (N0RTH GATE I2)", "N0RTH GATE I2"),
    Query("fuzzy, 1 error, nothing near", "ZASTJEPE PLATF0RM 949"),
    Query("short (EXIT)", "EXIT"),
    Query("short, 2 characters (12)", "12"),
    Query(
        "long, 3 errors (48 characters)", "NEXT TRA1N TO CENTRAL STATI0N DEPARTS FR0M PLATFORM 4"
    ),
    Query("with=person (EXIT 12)", "EXIT 12", with_class="person"),
    Query("with=person, 1 error (EX1T 12)", "EX1T 12", with_class="person"),
    Query("kind=object (person)", "person", kind="object"),
    Query("kind=object, rare (toothbrush)", "toothbrush", kind="object"),
)


class Corpus:
    """The made jobs' entries, from one seed."""

    def __init__(self, seed: int = 23) -> None:
        self.rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < 6000:
            words.add("".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(1, 4))))
        self.words = sorted(word.upper() for word in words)
        weights = [
            40.0 if name == "person" else 12.0 if name == "car" else 1.0
            for name in COCO_CLASS_NAMES
        ]
        self.class_weights = weights

    def _line(self) -> str:
        parts = []
        for _ in range(self.rng.choice((1, 2, 2, 3, 3, 4))):
            roll = self.rng.random()
            if roll < 0.3:
                parts.append(self.rng.choice(COMMON_WORDS))
            elif roll < 0.5:
                parts.append(str(self.rng.randint(0, 999)))
            else:
                parts.append(self.rng.choice(self.words))
        return " ".join(parts)

    def job(self, index: int) -> IndexEntries:
        """One job's 500 segments (some 60 lines, shown again and again) and 100 tracks."""
        lines = [self._line() for _ in range(60)]
        for slot, (needle, every) in enumerate(NEEDLES):
            if index % every == every - 1:
                lines[slot] = needle
        if index % 50 == 7:
            lines[len(NEEDLES)] = "EXIT 12"
        starts = sorted(self.rng.uniform(0, VIDEO_S) for _ in range(SEGMENTS_PER_JOB))
        segments = tuple(
            TextEntry(self.rng.choice(lines), start, start + self.rng.uniform(0.5, 20.0), 0.9)
            for start in starts
        )
        track_starts = sorted(self.rng.uniform(0, VIDEO_S) for _ in range(TRACKS_PER_JOB))
        names = self.rng.choices(COCO_CLASS_NAMES, self.class_weights, k=TRACKS_PER_JOB)
        tracks = tuple(
            ObjectEntry(name, start, start + self.rng.uniform(0.5, 60.0), 0.7)
            for name, start in zip(names, track_starts, strict=True)
        )
        return IndexEntries(segments, tracks)


def complete_job(store: SqlJobStore, entries: IndexEntries | None, index: int = 0) -> uuid.UUID:
    """A job created, claimed and completed through the store, as a worker does."""
    job_id = uuid.uuid4()
    store.create(
        NewJob(job_id, "ocr_only", {}, f"videos/{job_id}.mp4", filename=f"video-{index:04d}.mp4")
    )
    claimed = store.claim_next(WORKER, 600.0)
    assert claimed is not None and claimed.job_id == job_id
    assert store.complete(job_id, WORKER, f"results/{job_id}.jsonl", {}, index=entries)
    return job_id


@dataclass
class EngineFigures:
    """What one engine measured."""

    engine: str
    load_s: float
    segments: int
    tracks: int
    size_bytes: int
    size_detail: str
    timings: dict[str, list[float]] = field(default_factory=dict)  # seconds per run
    matches: dict[str, int] = field(default_factory=dict)  # hits on the first page
    plans: dict[str, list[str]] = field(default_factory=dict)
    index_job_s: float = 0.0  # what indexing the measured job's entries added
    index_big_job_s: float = 0.0  # the same for a made job of 500 segments and 100 tracks
    maintain_s: float = 0.0  # the index's upkeep after the load (DuckDB: sorting trigrams)

    def percentile(self, label: str, share: float) -> float:
        values = sorted(self.timings[label])
        return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def _load(store: SqlJobStore, jobs: int, note: Callable[[str], None]) -> float:
    corpus = Corpus()
    started = time.perf_counter()
    for index in range(jobs):
        complete_job(store, corpus.job(index), index)
        if index % 250 == 249:
            note(f"  {index + 1} of {jobs} jobs indexed ({time.perf_counter() - started:.0f} s)")
    return time.perf_counter() - started


def _index_cost(store: SqlJobStore, entries: IndexEntries, rounds: int = 5) -> float:
    """The median time a completion with these entries takes over one without any."""
    with_index: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        for target, value in ((with_index, entries), (without, None)):
            started = time.perf_counter()
            complete_job(store, value)
            target.append(time.perf_counter() - started)
    return max(0.0, statistics.median(with_index) - statistics.median(without))


DUCKDB_BLOCK_BYTES = 256 * 1024
SEARCH_TABLES = ("search_text", "search_trigrams", "search_objects", "search_jobs")


def _size(store: SqlJobStore, path: Path | None) -> tuple[int, str]:
    """The index's bytes on disk, and how they divide."""
    with store.engine.connect() as connection:
        if path is not None:
            connection.execute(text("CHECKPOINT"))
            blocks = {
                table: int(
                    connection.execute(
                        text(f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('{table}')")
                    ).scalar_one()
                )
                * DUCKDB_BLOCK_BYTES
                for table in SEARCH_TABLES
            }
            total = sum(blocks.values())
            parts = ", ".join(f"{t} {b / 2**20:.0f}" for t, b in blocks.items())
            whole = path.stat().st_size / 2**20
            return total, f"{total / 2**20:.0f} MiB ({parts}; whole file {whole:.0f} MiB)"
        rows = connection.execute(
            text(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN"
                " ('search_text', 'search_objects', 'search_jobs', 'ix_search_text_folded_trgm')"
            )
        ).all()
    sizes = {str(name): int(size) for name, size in rows}
    total = sizes["search_text"] + sizes["search_objects"] + sizes["search_jobs"]
    trigram = sizes.get("ix_search_text_folded_trgm", 0) / 2**20
    return total, f"{total / 2**20:.0f} MiB with indexes (GIN trigram {trigram:.0f} MiB)"


def measure_engine(
    engine: str,
    url: str,
    path: Path | None,
    jobs: int,
    rounds: int,
    measured_job: IndexEntries,
    note: Callable[[str], None],
) -> EngineFigures:
    """Load the corpus into one database through its store, then time the queries."""
    store = SqlJobStore.open(url)
    try:
        note(f"x: {engine}: indexing {jobs} jobs of {SEGMENTS_PER_JOB} segments each")
        load_s = _load(store, jobs, note)
        started = time.perf_counter()
        store.maintain_search_index()  # what serve's search thread does (DuckDB: sorts)
        maintain_s = time.perf_counter() - started
        if engine == "postgresql":
            with store.engine.begin() as connection:
                connection.execute(text("ANALYZE"))  # statistics for the planner
        size, detail = _size(store, path)
        figures = EngineFigures(
            engine, load_s, jobs * SEGMENTS_PER_JOB, jobs * TRACKS_PER_JOB, size, detail
        )
        figures.maintain_s = maintain_s
        for query in QUERIES:  # warm, and the plans
            figures.matches[query.label] = len(store.search(query.parsed()))
            with store.engine.connect() as connection:
                figures.plans[query.label] = store.search_index.explain(connection, query.parsed())
        note(f"x: {engine}: {len(QUERIES)} queries, {rounds} rounds")
        for round_index in range(rounds):
            shift = round_index % len(QUERIES)
            for query in QUERIES[shift:] + QUERIES[:shift]:
                started = time.perf_counter()
                store.search(query.parsed())
                figures.timings.setdefault(query.label, []).append(time.perf_counter() - started)
        figures.index_job_s = _index_cost(store, measured_job)
        figures.index_big_job_s = _index_cost(store, Corpus(seed=99).job(0))
        return figures
    finally:
        store.close()


@contextmanager
def databases(folder: Path) -> Iterator[list[tuple[str, str, Path | None]]]:
    """A DuckDB file and a fresh database on a throwaway PostgreSQL server."""
    duckdb_path = folder / "search.duckdb"
    with postgres_server() as server:
        yield [
            ("duckdb", f"duckdb:///{duckdb_path}", duckdb_path),
            ("postgresql", server.url(server.create_database()), None),
        ]


def run(
    jobs: int, rounds: int, measured_job: IndexEntries, note: Callable[[str], None]
) -> list[EngineFigures]:
    """Both engines' figures."""
    with (
        tempfile.TemporaryDirectory(prefix="forgesyte-bench-search-") as scratch,
        databases(Path(scratch)) as engines,
    ):
        return [
            measure_engine(engine, url, path, jobs, rounds, measured_job, note)
            for engine, url, path in engines
        ]
