"""The search index in the job database: its writes (inside the job store's transactions)
and its one query per kind of search, for DuckDB and for PostgreSQL.

Each engine finds candidates with what it offers, then computes the distance of
`forgesyte.search.matching` itself (never in Python):

- DuckDB has no trigram index: `search_trigrams` holds each segment's distinct trigrams,
  and a segment is a candidate when it shares enough of the query's (a scan of one narrow
  column that DuckDB runs in parallel). Its `levenshtein` and list comprehensions
  compute the distance.
- PostgreSQL: pg_trgm's GIN index on `search_text.folded` answers ``LIKE '%piece%'`` for
  combinations of the query's pieces (`matching.index_pieces`: a BitmapOr of
  BitmapAnds), the rows found are checked for the trigram bound, and fuzzystrmatch's
  `levenshtein_less_equal` computes the distance. pg_trgm's similarity operators (`%`,
  `<%`) are not used: their threshold compares padded, word-split trigram sets, and no
  threshold is reached by every segment within the allowed edits, so some matches would
  be missed.

The distance is computed from anchors only: the places where a piece of the query appears
unchanged (`matching.anchor_starts`), a window of each possible length at each start. A
query's text is always a bound parameter, never part of the SQL.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from forgesyte.db.tables import SEARCH_ENTRY_IDS
from forgesyte.search.matching import SearchPlan, fold, index_pieces, trigrams
from forgesyte.search.values import (
    IndexEntries,
    SearchHit,
    SearchKind,
    SearchPosition,
    SearchQuery,
)

# the order of answers, and the keyset condition of "strictly behind a position"
_ORDER = "distance, created_at DESC, job_id DESC, start_s, seq"
_AFTER = """AND (distance > :after_distance OR (distance = :after_distance AND (
    created_at < :after_created_at OR (created_at = :after_created_at AND (
    job_id < :after_job_id OR (job_id = :after_job_id AND (
    start_s > :after_start_s OR (start_s = :after_start_s AND seq > :after_seq))))))))"""
# a text segment (t) beside a track of the class asked for, in the same job, overlapping in
# time: checked before any distance is computed
_BESIDE = """EXISTS (SELECT 1 FROM search_objects o WHERE o.job_id = t.job_id
    AND o.class_folded = :with_class AND o.start_s <= t.end_s AND o.end_s >= t.start_s)"""


def _jobs_of(alias: str) -> str:
    """The join of every search statement to the jobs its rows belong to (named j): the
    jobs a caller may read, only those of :owner when it is not null (a user key's)."""
    return (
        f"JOIN jobs j ON j.job_id = {alias}.job_id"
        " AND (CAST(:owner AS VARCHAR) IS NULL OR j.owner = :owner)"
    )


def _like_pattern(piece: str) -> str:
    """A LIKE pattern that finds piece anywhere (its %, _ and \\ taken literally)."""
    escaped = piece.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlSearchIndex:
    """The index's SQL on one engine ("duckdb" or "postgresql")."""

    def __init__(self, dialect_name: str) -> None:
        self.postgresql = dialect_name == "postgresql"

    # -- writes, in the caller's transaction ----------------------------------------------

    def write(
        self, session: Session, job_id: uuid.UUID, entries: IndexEntries, now: datetime
    ) -> bool:
        """Index a completed job's entries; False (nothing written) when it is indexed."""
        marked = session.execute(
            text(
                "INSERT INTO search_jobs (job_id, indexed_at) VALUES (:job_id, :now) "
                "ON CONFLICT DO NOTHING"
            ),
            {"job_id": job_id, "now": now},
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            return False
        if entries.text:
            self._write_text(session, job_id, entries)
        if entries.objects:
            objects = entries.objects
            columns: dict[str, list[Any]] = {
                "seq": list(range(len(objects))),
                "class_name": [track.class_name for track in objects],
                "class_folded": [track.class_name.casefold() for track in objects],
                "start_s": [track.start_s for track in objects],
                "end_s": [track.end_s for track in objects],
                "confidence": [track.confidence for track in objects],
            }
            session.execute(
                text(
                    "INSERT INTO search_objects (job_id, seq, class_name, class_folded, start_s,"
                    f" end_s, confidence) SELECT :job_id, u.* FROM {self._rows(columns)}"
                ),
                {"job_id": job_id, **columns},
            )
        return True

    def _rows(self, columns: dict[str, list[Any]]) -> str:
        """A FROM item that turns the list parameters named like columns into rows."""
        if self.postgresql:
            types = {int: "INTEGER[]", str: "TEXT[]", float: "DOUBLE PRECISION[]"}
            arrays = ", ".join(
                f"CAST(:{name} AS {types[type(values[0])]})" for name, values in columns.items()
            )
            return f"unnest({arrays}) AS u({', '.join(columns)})"
        unnested = ", ".join(f"unnest(:{name}) AS {name}" for name in columns)
        return f"(SELECT {unnested}) AS u"

    def _write_text(self, session: Session, job_id: uuid.UUID, entries: IndexEntries) -> None:
        segments = entries.text
        folded = [fold(segment.text) for segment in segments]
        columns: dict[str, list[Any]] = {
            "seq": list(range(len(segments))),
            "text": [segment.text for segment in segments],
            "folded": folded,
            "start_s": [segment.start_s for segment in segments],
            "end_s": [segment.end_s for segment in segments],
            "confidence": [segment.confidence for segment in segments],
        }
        rows = session.execute(
            text(
                "INSERT INTO search_text (entry_id, job_id, seq, text, folded, start_s, end_s,"
                f" confidence) SELECT nextval('{SEARCH_ENTRY_IDS}'), :job_id, u.* FROM"
                f" {self._rows(columns)} RETURNING entry_id, seq"
            ),
            {"job_id": job_id, **columns},
        ).all()
        if self.postgresql:
            return  # pg_trgm's GIN index follows the table
        grams: list[str] = []
        entry_ids: list[int] = []
        for entry_id, seq in rows:
            pieces = trigrams(folded[seq])
            grams.extend(pieces)
            entry_ids.extend([entry_id] * len(pieces))
        if grams:
            session.execute(
                text(
                    "INSERT INTO search_trigrams (gram, entry_id) "
                    "SELECT unnest(:grams), unnest(:entry_ids)"
                ),
                {"grams": grams, "entry_ids": entry_ids},
            )

    def delete(self, session: Session, job_id: uuid.UUID) -> None:
        """Remove a job's entries, in the caller's transaction (the job's removal)."""
        if not self.postgresql:
            # a job's entry ids are a narrow range written together: the range lets DuckDB
            # skip the trigram table's row groups of other jobs
            session.execute(
                text(
                    "DELETE FROM search_trigrams WHERE entry_id BETWEEN "
                    "(SELECT min(entry_id) FROM search_text WHERE job_id = :job_id) AND "
                    "(SELECT max(entry_id) FROM search_text WHERE job_id = :job_id) AND "
                    "entry_id IN (SELECT entry_id FROM search_text WHERE job_id = :job_id)"
                ),
                {"job_id": job_id},
            )
        for table in ("search_text", "search_objects", "search_jobs"):
            session.execute(text(f"DELETE FROM {table} WHERE job_id = :job_id"), {"job_id": job_id})

    def sort_trigrams(self, session: Session, after_entry_id: int | None) -> int | None:
        """DuckDB: rewrite search_trigrams sorted by trigram, in the caller's transaction,
        when the rows written since the last rewrite (entry ids above after_entry_id) are
        over SORT_TRIGRAMS_SHARE of the table (and at least SORT_TRIGRAMS_MIN_ROWS); the
        highest entry id now sorted, or None when nothing was done (and on PostgreSQL).

        Why: rows are appended job by job, so every row group of the table holds every
        trigram and a look-up reads them all. Sorted, DuckDB's min/max of each row group
        skips all but the few that hold the query's trigrams: 3 to 12 times faster on a
        million segments (13.6 million rows; the rewrite takes about 3 s). The copy is
        written before the old rows are deleted, in one transaction: a search meanwhile
        sees one or the other, and a job completed meanwhile keeps its rows (they are not
        visible to the rewrite, so it neither copies nor deletes them).
        """
        if self.postgresql:
            return None
        floor = -1 if after_entry_id is None else after_entry_id
        total, fresh, newest = session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE entry_id > :floor), max(entry_id)"
                " FROM search_trigrams"
            ),
            {"floor": floor},
        ).one()
        if newest is None or fresh < max(SORT_TRIGRAMS_MIN_ROWS, SORT_TRIGRAMS_SHARE * total):
            return None
        last = session.execute(text("SELECT max(rowid) FROM search_trigrams")).scalar_one()
        session.execute(
            text(
                "INSERT INTO search_trigrams SELECT gram, entry_id FROM search_trigrams"
                " WHERE rowid <= :last ORDER BY gram, entry_id"
            ),
            {"last": last},
        )
        session.execute(text("DELETE FROM search_trigrams WHERE rowid <= :last"), {"last": last})
        return int(newest)

    def unindexed_job_ids(self, connection: Connection, completed: str, limit: int) -> list[Any]:
        """Up to limit completed jobs not in the index yet, oldest first (the backfill's)."""
        rows = connection.execute(
            text(
                "SELECT j.job_id FROM jobs j WHERE j.status = :completed AND NOT EXISTS "
                "(SELECT 1 FROM search_jobs s WHERE s.job_id = j.job_id) "
                "ORDER BY j.created_at, j.job_id LIMIT :limit"
            ),
            {"completed": completed, "limit": limit},
        )
        return [row[0] for row in rows]

    # -- the query ------------------------------------------------------------------------

    def search(
        self, connection: Connection, query: SearchQuery, plans: list[str] | None = None
    ) -> list[SearchHit]:
        """Up to query.limit hits in answer order, strictly behind query.after.

        A text search first asks for segments that contain the query (cheap: every
        trigram of the query must be there); only when those do not fill the page does it
        measure the near ones (`_near`). plans: when given, every statement run is also
        run under EXPLAIN ANALYZE and its plan appended (what `explain` shows).
        """
        run = _Runner(connection, plans, query.owner)
        if query.kind is SearchKind.OBJECT:
            sql, values = self._statement(query, self._tracks_sql(query), {"q": query.folded})
            return self._hits(query, run(sql, values))
        plan = query.plan
        beside = {"with_class": query.with_class} if query.with_class is not None else {}
        shared = None
        if not self.postgresql and plan.grams:
            shared = self.shared_trigrams(run, plan)
        contained: list[SearchHit] | None = None
        if query.after is None or query.after.distance == 0:
            few = shared is not None and len(shared.near) <= DIRECT_NEAR_CANDIDATES
            if not (plan.errors and (few or (shared is not None and not shared.contained))):
                sql, params = self._contained_sql(plan, shared, bool(beside))
                contained = self._hits(query, run(*self._statement(query, sql, params | beside)))
                if len(contained) >= query.limit or not plan.errors:
                    return contained
        if not plan.errors:
            return []
        # the contained segments are either found already or, past the cursor's distance,
        # all before it
        exclude = contained is not None or (query.after is not None and query.after.distance > 0)
        return self._near(run, query, shared, contained or [], exclude=exclude)

    def explain(self, connection: Connection, query: SearchQuery) -> list[str]:
        """The plans, as run (EXPLAIN ANALYZE), of the statements a search runs."""
        plans: list[str] = []
        self.search(connection, query, plans)
        return plans

    def shared_trigrams(self, run: _Runner, plan: SearchPlan) -> SharedTrigrams:
        """DuckDB: the segments that share enough of the query's trigrams to be near it
        (or, without a bound, to contain it), and those that share all of them."""
        least = plan.grams_needed if plan.errors and plan.grams_needed >= 1 else len(plan.grams)
        values = {"grams": list(plan.grams), "least": least, "every": len(plan.grams)}
        near, contained = run(_TRIGRAM_COUNTS, values)[0]
        return SharedTrigrams(near=list(near or ()), contained=list(contained or ()))

    def _near(
        self,
        run: _Runner,
        query: SearchQuery,
        shared: SharedTrigrams | None,
        contained: list[SearchHit],
        *,
        exclude: bool,
    ) -> list[SearchHit]:
        """The page from the near segments (and `contained`, the contained ones already
        found when `exclude`: they are then left out here).

        The candidates are listed in answer order of their jobs (newest job, start_s,
        place), then measured in batches of NEAR_BATCH in that order: once the lowest
        distance still wanted has filled the page, no later segment can come before
        them, and the rest is never measured. A common word with one character changed
        (every `PLATFORM 1` is one edit from `PLATFORM 9`) costs one batch, not all.
        """
        plan = query.plan
        after = query.after
        lowest = max(after.distance if after is not None else 0, 1 if exclude else 0)
        needed = query.limit - len(contained)
        order_sql, params = self._near_order_sql(plan, shared, query.with_class, exclude)
        ids = list(run(order_sql, params)[0][0] or ())
        found: list[SearchHit] = []
        at_lowest = 0
        measure_sql = self._measure_sql(plan)
        measure_params = {"q": plan.query, "errors": plan.errors} | {
            f"piece{i}": piece.text for i, piece in enumerate(plan.pieces)
        }
        for start in range(0, len(ids), NEAR_BATCH):
            batch = ids[start : start + NEAR_BATCH]
            for hit in self._hits(query, run(measure_sql, measure_params | {"ids": batch})):
                if after is not None and hit.position.sort_key() <= after.sort_key():
                    continue
                if exclude and hit.position.distance == 0:
                    continue  # contained: found already, or before the cursor
                found.append(hit)
                at_lowest += hit.position.distance == lowest
            if at_lowest >= needed:
                break
        found.sort(key=lambda hit: hit.position.sort_key())
        return (contained + found)[: query.limit]

    @staticmethod
    def _hits(query: SearchQuery, rows: Sequence[Any]) -> list[SearchHit]:
        """Rows of a statement (its hit columns, distance, created_at, filename) as hits."""
        return [
            SearchHit.found(
                query,
                SearchPosition(
                    int(row.distance),
                    row.created_at,
                    row.job_id,
                    float(row.start_s),
                    int(row.seq),
                ),
                filename=row.filename,
                label=row.label,
                end_s=float(row.end_s),
                confidence=float(row.confidence),
            )
            for row in rows
        ]

    def _statement(
        self, query: SearchQuery, matches: str, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Order, page and describe the matches (columns job_id, seq, label, start_s, end_s,
        confidence, distance): the SQL and its parameters."""
        values = dict(params)
        behind = ""
        if query.after is not None:
            behind = _AFTER
            after = query.after
            values.update(
                after_distance=after.distance,
                after_created_at=after.created_at,
                after_job_id=after.job_id,
                after_start_s=after.start_s,
                after_seq=after.seq,
            )
        sql = f"""WITH hits AS MATERIALIZED ({matches}),
            placed AS (SELECT hits.*, j.created_at, j.filename FROM hits {_jobs_of("hits")})
            SELECT job_id, seq, label, start_s, end_s, confidence, distance, created_at, filename
            FROM placed WHERE TRUE {behind} ORDER BY {_ORDER} LIMIT :limit"""
        values["limit"] = query.limit
        return sql, values

    @staticmethod
    def _tracks_sql(query: SearchQuery) -> str:
        return """SELECT job_id, seq, class_name AS label, start_s, end_s, confidence,
            0 AS distance FROM search_objects WHERE class_folded = :q"""

    def _contained_sql(
        self, plan: SearchPlan, shared: SharedTrigrams | None, beside_class: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """The segments that contain the query (distance 0)."""
        params: dict[str, Any] = {"q": plan.query}
        beside = f" AND {_BESIDE}" if beside_class else ""
        if self.postgresql:
            params["pattern"] = _like_pattern(plan.query)
            return (
                f"SELECT {_HIT_COLUMNS}, 0 AS distance FROM search_text t"
                f" WHERE t.folded LIKE :pattern{beside}",
                params,
            )
        found = "contains(t.folded, :q)"
        if shared is None:  # under 3 characters: every segment is read
            sql = f"SELECT {_HIT_COLUMNS}, 0 AS distance FROM search_text t WHERE {found}{beside}"
            return sql, params
        params["ids"] = shared.contained
        rest = f"0 AS distance FROM candidates t WHERE {found}"
        return self._duckdb_candidates(rest, beside), params

    def _near_order_sql(
        self,
        plan: SearchPlan,
        shared: SharedTrigrams | None,
        with_class: str | None,
        exclude: bool,
    ) -> tuple[str, dict[str, Any]]:
        """The entry ids of the segments that may be near the query, in their jobs' answer
        order (newest job, start_s, place); without the contained ones when `exclude`.

        A match contains one of the query's pieces unchanged (pigeonhole: `errors + 1`
        pieces, at most one spoilt per edit), so only segments with a piece are listed.
        """
        params: dict[str, Any] = {"q": plan.query}
        conditions = []
        if with_class is not None:
            params["with_class"] = with_class
            conditions.append(_BESIDE)
        for index, piece in enumerate(plan.pieces):
            params[f"piece{index}"] = piece.text
            params[f"pattern{index}"] = _like_pattern(piece.text)
        if self.postgresql:
            # each piece's LIKE is a GIN lookup of all its trigrams: with `kept` of the
            # pieces in every match, an OR (BitmapOr) of ANDs (BitmapAnd) of them
            pieces, kept = index_pieces(plan)
            for index, piece in enumerate(pieces):
                params[f"indexed{index}"] = _like_pattern(piece.text)
            found = " OR ".join(
                "(" + " AND ".join(f"t.folded LIKE :indexed{i}" for i in chosen) + ")"
                for chosen in itertools.combinations(range(len(pieces)), kept)
            )
            if exclude:
                conditions.append("strpos(t.folded, :q) = 0")
            if plan.grams_needed >= 1:  # the trigram bound, checked on what the index found
                params.update(grams=list(plan.grams), grams_needed=plan.grams_needed)
                conditions.append(_PG_SHARED_TRIGRAMS)
            source = "search_text t"
        elif shared is not None and plan.grams_needed >= 1:
            # the candidates by id, nothing else checked: DuckDB pushes a condition into its
            # scan of the whole table, before the join. A segment without a piece measures
            # as too far, and a contained one as 0 (`_near` drops those when excluded).
            params["ids"] = shared.near
            found, source = "TRUE", "candidates t"
        else:
            found = " OR ".join(f"contains(t.folded, :piece{i})" for i in range(len(plan.pieces)))
            source = "search_text t"
        where = " AND ".join([f"({found})", *conditions])
        listed = "array_agg" if self.postgresql else "list"
        sql = (
            f"SELECT {listed}(t.entry_id ORDER BY j.created_at DESC, t.job_id DESC, t.start_s,"
            f" t.seq) FROM {source} {_jobs_of('t')} WHERE {where}"
        )
        if "ids" in params:
            sql = (
                "WITH candidates AS MATERIALIZED (SELECT entry_id, job_id, seq, start_s, end_s,"
                " folded FROM search_text WHERE entry_id IN"
                f" (SELECT unnest(CAST(:ids AS BIGINT[])))) {sql}"
            )
        return sql, params

    def _measure_sql(self, plan: SearchPlan) -> str:
        """The segments of :ids within the allowed errors, with their distances and jobs'
        columns (read first, so that nothing is measured on any other segment)."""
        distance = self._pg_distance(plan) if self.postgresql else self._duckdb_distance(plan)
        batch = (
            f"SELECT s.*, j.created_at, j.filename FROM search_text s {_jobs_of('s')}"
            " WHERE s.entry_id IN (SELECT unnest(CAST(:ids AS BIGINT[])))"
        )
        return (
            f"WITH batch AS MATERIALIZED ({batch}) SELECT * FROM (SELECT {_HIT_COLUMNS},"
            f" t.created_at, t.filename, {distance} AS distance FROM batch t) near"
            " WHERE distance <= :errors"
        )

    @staticmethod
    def _duckdb_candidates(rest: str, beside: str = "") -> str:
        """DuckDB: the segments :ids names (found by `shared_trigrams`; with `beside`, those
        beside a track of the class asked for), read first (materialized, so that DuckDB
        computes nothing costly on the other segments), then `SELECT <hit columns>, <rest>`
        over them, named t."""
        return (
            "WITH candidates AS MATERIALIZED (SELECT * FROM search_text t"
            f" WHERE t.entry_id IN (SELECT unnest(CAST(:ids AS BIGINT[]))){beside})"
            f" SELECT {_HIT_COLUMNS}, {rest}"
        )

    @staticmethod
    def _duckdb_distance(plan: SearchPlan) -> str:
        """The distance of t.folded to :q: 0 when contained, else the smallest Levenshtein
        distance of a window starting near an unchanged piece (errors + 1 when none is)."""
        starts = [
            f"flatten([range(greatest(i - {piece.offset} - {plan.errors}, 1),"
            f" i - {piece.offset} + {plan.errors + 1}) for i in range(1, length(t.folded) + 1)"
            f" if substr(t.folded, i, {len(piece.text)}) = :piece{index}])"
            for index, piece in enumerate(plan.pieces)
        ]
        lengths = f"range({plan.window_lengths.start}, {plan.window_lengths.stop})"
        windows = (
            f"[list_min([levenshtein(substr(t.folded, s, n), :q) for n in {lengths}])"
            f" for s in list_distinct(list_concat({', '.join(starts)}))]"
        )
        return (
            f"CASE WHEN contains(t.folded, :q) THEN 0"
            f" ELSE coalesce(list_min({windows}), {plan.errors + 1}) END"
        )

    @staticmethod
    def _pg_distance(plan: SearchPlan) -> str:
        """As `_duckdb_distance`, with fuzzystrmatch's bounded Levenshtein distance."""
        anchors = " UNION ".join(
            f"SELECT greatest(i - {piece.offset} + shift, 1) AS s"
            f" FROM generate_series(1, length(t.folded)) AS i,"
            f" generate_series({-plan.errors}, {plan.errors}) AS shift"
            f" WHERE substr(t.folded, i, {len(piece.text)}) = :piece{index}"
            for index, piece in enumerate(plan.pieces)
        )
        lengths = f"generate_series({plan.window_lengths.start}, {plan.window_lengths.stop - 1})"
        nearest = (
            f"(SELECT min(levenshtein_less_equal(substr(t.folded, a.s, n), :q, {plan.errors + 1}))"
            f" FROM ({anchors}) AS a, {lengths} AS n)"
        )
        return (
            f"CASE WHEN strpos(t.folded, :q) > 0 THEN 0"
            f" ELSE coalesce({nearest}, {plan.errors + 1}) END"
        )


# what a text match's statement selects of its segment (as t), besides its distance
_HIT_COLUMNS = "t.job_id, t.seq, t.text AS label, t.start_s, t.end_s, t.confidence"
# DuckDB: the segments sharing at least :least of the query's distinct trigrams, and those
# sharing all of them, as two lists in one row (tens of thousands of ids cross to Python
# as one value, not as as many rows)
_TRIGRAM_COUNTS = """SELECT list(entry_id), list(entry_id) FILTER (WHERE shared = :every)
    FROM (SELECT entry_id, count(*) AS shared FROM search_trigrams
          WHERE gram IN (SELECT unnest(CAST(:grams AS VARCHAR[])))
          GROUP BY entry_id HAVING count(*) >= :least) AS sharing"""
# what a DuckDB plan line shows of an operator's details
_PLAN_DETAILS = ("Table", "Join Type", "Conditions", "Filters", "Groups", "Aggregates", "CTE Name")
# PostgreSQL: a segment (t) shares at least :grams_needed of the query's distinct trigrams
_PG_SHARED_TRIGRAMS = """(SELECT count(*) FROM unnest(CAST(:grams AS TEXT[])) AS g(gram)
    WHERE strpos(t.folded, g.gram) > 0) >= :grams_needed"""
# DuckDB: up to this many near candidates, their distances are computed at once, without
# looking for contained segments first (a statement saved; a few milliseconds of distances)
DIRECT_NEAR_CANDIDATES = 2_000
NEAR_BATCH = 1_000  # near candidates measured per statement, in answer order
# DuckDB's trigram table is sorted again once the rows appended since are this share of it
SORT_TRIGRAMS_SHARE = 0.1
SORT_TRIGRAMS_MIN_ROWS = 200_000  # ... and at least this many (a small table is cheap to read)


class _Runner:
    """Runs a search's statements on one connection (and EXPLAIN ANALYZE of each, when
    plans is a list to fill)."""

    def __init__(
        self, connection: Connection, plans: list[str] | None, owner: str | None = None
    ) -> None:
        self.connection, self.plans, self.owner = connection, plans, owner

    def __call__(self, sql: str, values: dict[str, Any]) -> Sequence[Any]:
        if ":owner" in sql:  # a statement joined to the jobs (`_jobs_of`)
            values = values | {"owner": self.owner}
        if self.plans is not None:
            self.plans.append(self._plan(sql, values))
        return self.connection.execute(text(sql), values).all()

    def _plan(self, sql: str, values: dict[str, Any]) -> str:
        """EXPLAIN ANALYZE of one statement: PostgreSQL's text, DuckDB's operator tree one
        operator a line (from its JSON: name, rows, seconds, the details that matter)."""
        if self.connection.dialect.name == "postgresql":
            rows = self.connection.execute(text(f"EXPLAIN ANALYZE {sql}"), values).all()
            return "\n".join(str(row[0]) for row in rows)
        answer = self.connection.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), values)
        document = json.loads(answer.all()[0][-1])
        lines: list[str] = []

        def walk(operator: dict[str, Any], depth: int) -> None:
            if operator.get("name") in ("RESULT_COLLECTOR", "EXPLAIN_ANALYZE"):
                for child in operator.get("children", []):
                    walk(child, depth)
                return
            info = operator.get("extra_info") or {}
            shown = "; ".join(f"{key}: {info[key]}" for key in _PLAN_DETAILS if key in info)
            lines.append(
                f"{'  ' * depth}{operator.get('name', '?')}"
                f" ({operator.get('intermediate_rows', 0)} rows,"
                f" {operator.get('timing', 0.0) * 1000:.1f} ms)" + (f" {shown}" if shown else "")
            )
            for child in operator.get("children", []):
                walk(child, depth + 1)

        for top in document.get("operator", []):
            walk(top, 0)
        return "\n".join(lines)


@dataclass(frozen=True)
class SharedTrigrams:
    """DuckDB: the entry ids of the segments that share trigrams with a query."""

    near: list[int]  # enough for the near statement (all of them without errors allowed)
    contained: list[int]  # all of the query's: those that may contain it
