"""The matching rule (search/matching.py): folding, allowed errors, the distance, the score,
and the two bounds the SQL indexes rely on to read only candidates."""

from __future__ import annotations

import random

import pytest

from forgesyte.search.matching import (
    SearchPlan,
    allowed_errors,
    anchor_starts,
    fold,
    index_pieces,
    score,
    substring_distance,
    trigrams,
)


def test_folding_removes_case_and_every_space() -> None:
    assert fold("  Platform\t9\n") == "platform9"
    assert fold("STRAẞE") == "strasse"
    assert fold("A\u00a0B\u2003C") == "abc"  # no-break and em spaces too


@pytest.mark.parametrize(("length", "errors"), [(2, 0), (4, 0), (5, 1), (9, 1), (10, 2), (200, 40)])
def test_one_error_per_five_characters(length: int, errors: int) -> None:
    assert allowed_errors("x" * length) == errors


@pytest.mark.parametrize(
    ("query", "text", "distance"),
    [
        ("platform9", "nexttrainplatform9now", 0),
        ("platf0rm9", "platform9", 1),
        ("platform9", "platfrm9", 1),
        ("platform9", "xxplatformm9yy", 1),
        ("gate12", "gate34", 2),
        ("abc", "", 3),
        ("abc", "xbx", 2),
    ],
)
def test_the_distance_is_to_the_nearest_part_of_the_text(
    query: str, text: str, distance: int
) -> None:
    assert substring_distance(query, text) == distance


def test_the_score_is_1_when_contained_and_falls_per_edit() -> None:
    assert score(0, "platform9") == 1.0
    assert score(1, "platform9") == 0.8889
    assert score(1, "exit1") == 0.8  # the lowest a match can score


def _best_start(query: str, text: str) -> set[int]:
    """Every start (0-based) of a part of text at the nearest distance from query."""
    best = substring_distance(query, text)
    return {
        start
        for start in range(len(text) + 1)
        for end in range(start, len(text) + 1)
        if substring_distance(query, text[start:end]) == best
        and _levenshtein(query, text[start:end]) == best
    }


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def test_a_match_contains_a_piece_and_starts_near_it() -> None:
    """The bounds the SQL indexes read candidates by: on random near matches, a match shares
    `grams_needed` trigrams, and one of its best parts starts at an anchor."""
    rng = random.Random(5)
    checked = 0
    for _ in range(300):
        query = "".join(rng.choice("abo0l1") for _ in range(rng.randint(5, 16)))
        text = list(query)
        for _ in range(rng.randint(0, 3)):
            where = rng.randrange(len(text))
            text[where : where + 1] = rng.choice(["", rng.choice("abo0l1"), "xy"])
        padded = "".join(rng.choice("xyz") for _ in range(3)) + "".join(text) + "zz"
        plan = SearchPlan.of(query)
        if substring_distance(query, padded) > plan.errors:
            continue
        checked += 1
        assert len(trigrams(padded) & set(plan.grams)) >= plan.grams_needed
        assert any(piece.text in padded for piece in plan.pieces)
        pieces, kept = index_pieces(plan)
        assert sum(piece.text in padded for piece in pieces) >= kept
        assert _best_start(query, padded) & anchor_starts(plan, padded)
    assert checked > 100


def test_the_index_pieces_ask_for_more_than_one_when_the_query_is_long_enough() -> None:
    pieces, kept = index_pieces(SearchPlan.of("platf0rm9"))
    assert ([p.text for p in pieces], kept) == (["pla", "tf0", "rm9"], 2)
    pieces, kept = index_pieces(SearchPlan.of("exlt12"))  # 2 pieces of 3: one is kept
    assert ([p.text for p in pieces], kept) == (["exl", "t12"], 1)


def test_the_plan_cuts_the_query_into_errors_plus_one_pieces() -> None:
    plan = SearchPlan.of("northgate12")
    assert plan.errors == 2
    assert [(p.text, p.offset) for p in plan.pieces] == [("nort", 0), ("hgat", 4), ("e12", 8)]
    assert plan.grams_needed == len(trigrams("northgate12")) - 6
    assert list(plan.window_lengths) == [9, 10, 11, 12, 13]
