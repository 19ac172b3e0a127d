"""The matching rule of text search, written once: both indexes find the same matches.

- Folding: case folded (`str.casefold`) and every whitespace character removed, on the
  query and on each segment, so "platform9" finds "PLATFORM 9".
- Allowed errors: one per five characters of the folded query, `len // 5` (a query of
  2-4 characters must be contained exactly).
- Distance: the fewest single-character edits (insert, delete, substitute: Levenshtein)
  that turn the folded query into some part of the folded segment; 0 when the segment
  contains the query. A segment matches when its distance is at most the allowed errors.
- Score: ``1 - distance / len(folded query)``, rounded to 4 decimals: 1 for a segment that
  contains the query, never below 0.8 for a match.

The SQL index finds candidates without reading every segment, through two consequences
of a match (`SearchPlan`): a segment within e edits of a query shares at least
``distinct trigrams - 3 e`` of the query's distinct three-character pieces (each edit
spoils at most three); and when the query is cut into e + 1 consecutive pieces, one of
them at least appears in the segment unchanged (an edit spoils at most one piece). It
then computes the distance only from where such a piece sits (`anchor_starts`): the
matching part starts within e characters of the piece's place less its offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_QUERY_CHARACTERS = 2  # of the folded query
MAX_QUERY_CHARACTERS = 200  # of the query as sent
CHARACTERS_PER_ERROR = 5  # one wrong character allowed per this many of the folded query
MIN_INDEX_PIECE = 3  # characters of a piece a trigram index looks up (one trigram at least)
MAX_PIECE_COMBINATIONS = 10  # sets of kept pieces one index condition may list
SCORE_DIGITS = 4


def fold(text: str) -> str:
    """Case folded, every whitespace character removed: what search compares."""
    return "".join(text.casefold().split())


def allowed_errors(folded_query: str) -> int:
    """How many wrong characters a match may have: one per CHARACTERS_PER_ERROR."""
    return len(folded_query) // CHARACTERS_PER_ERROR


def score(distance: int, folded_query: str) -> float:
    """1 for a segment that contains the query, falling by 1/len per edit."""
    return round(1.0 - distance / len(folded_query), SCORE_DIGITS)


def substring_distance(folded_query: str, folded_text: str) -> int:
    """The fewest edits that turn the query into some part of the text (Sellers' dynamic
    programme: a match may start and end anywhere in the text)."""
    previous = [0] * (len(folded_text) + 1)  # an empty query matches anywhere, free
    for row, wanted in enumerate(folded_query, start=1):
        current = [row]
        for column, seen in enumerate(folded_text, start=1):
            current.append(
                min(
                    previous[column] + 1,  # the query's character is missing from the text
                    current[column - 1] + 1,  # the text has an extra character
                    previous[column - 1] + (wanted != seen),
                )
            )
        previous = current
    return min(previous)


def trigrams(folded: str) -> set[str]:
    """The distinct three-character pieces of a folded text (none under 3 characters)."""
    return {folded[i : i + 3] for i in range(len(folded) - 2)}


@dataclass(frozen=True)
class Piece:
    """A consecutive part of the folded query and where it starts in it (0-based)."""

    text: str
    offset: int


@dataclass(frozen=True)
class SearchPlan:
    """What a SQL index needs to find the matches of one folded query without reading
    every segment: see the module's docstring for why each bound holds."""

    query: str  # the folded query
    errors: int  # allowed errors
    grams: tuple[str, ...]  # its distinct trigrams, sorted
    pieces: tuple[Piece, ...]  # errors + 1 of them, consecutive: one is in every match

    @classmethod
    def of(cls, folded_query: str) -> SearchPlan:
        """The plan of a folded query (at least MIN_QUERY_CHARACTERS long)."""
        errors = allowed_errors(folded_query)
        return cls(
            query=folded_query,
            errors=errors,
            grams=tuple(sorted(trigrams(folded_query))),
            pieces=split_into_pieces(folded_query, errors + 1),
        )

    @property
    def grams_needed(self) -> int:
        """Distinct trigrams a match shares with the query at least (0 or less: no bound)."""
        return len(self.grams) - 3 * self.errors

    @property
    def window_lengths(self) -> range:
        """The lengths a matching part of a segment can have."""
        return range(len(self.query) - self.errors, len(self.query) + self.errors + 1)


def index_pieces(plan: SearchPlan) -> tuple[tuple[Piece, ...], int]:
    """Pieces of at least 3 characters (a trigram index can look each up) for a stronger
    filter than `plan.pieces`: cut into m of them, a match keeps `m - errors` unchanged
    (an edit spoils at most one). The largest m up to `2 errors + 1` whose combinations of
    `m - errors` pieces number at most MAX_PIECE_COMBINATIONS; the pieces and how many a
    match keeps (1 when no such cut exists: `plan.pieces`)."""
    best: tuple[tuple[Piece, ...], int] = (plan.pieces, 1)
    longest = min(2 * plan.errors + 1, len(plan.query) // MIN_INDEX_PIECE)
    for count in range(plan.errors + 2, longest + 1):
        kept = count - plan.errors
        if math.comb(count, kept) <= MAX_PIECE_COMBINATIONS:
            best = (split_into_pieces(plan.query, count), kept)
    return best


def split_into_pieces(folded_query: str, count: int) -> tuple[Piece, ...]:
    """The query cut into `count` consecutive pieces, the longer ones first."""
    size, longer = divmod(len(folded_query), count)
    pieces: list[Piece] = []
    start = 0
    for index in range(count):
        length = size + (1 if index < longer else 0)
        pieces.append(Piece(folded_query[start : start + length], start))
        start += length
    return tuple(pieces)


def anchor_starts(plan: SearchPlan, folded_text: str) -> set[int]:
    """Where (0-based) a part of the text within the allowed errors of the query can start:
    near each place a piece of the query appears unchanged. The SQL indexes compute the
    same starts (1-based) in the engine; the in-memory index checks its own distance
    against them in the tests."""
    starts: set[int] = set()
    for piece in plan.pieces:
        found = folded_text.find(piece.text)
        while found >= 0:
            first = found - piece.offset - plan.errors
            starts.update(range(max(first, 0), found - piece.offset + plan.errors + 1))
            found = folded_text.find(piece.text, found + 1)
    return starts
