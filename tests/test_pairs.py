"""Pair construction from rankings, pairwise judgments and ratings (pure; no torch)."""

import itertools
import random

import pytest

from core.training.pairs import (
    group_by_prompt,
    pairs_from_pairwise,
    pairs_from_ranking,
    pairs_from_ratings,
)


def test_strict_ranking_gives_every_pair():
    pairs = pairs_from_ranking([[3], [1], [2], [4]])
    assert [(w, l) for w, l, _ in pairs] == [(3, 1), (3, 2), (3, 4), (1, 2), (1, 4), (2, 4)]
    assert all(m == 0.0 for _, _, m in pairs)


def test_ties_give_no_pair_and_margin_is_tier_distance():
    pairs = pairs_from_ranking([[3], [1, 2], [4]], margin_mode="tier_distance")
    assert sorted(pairs) == sorted([(3, 1, 1.0), (3, 2, 1.0), (3, 4, 2.0), (1, 4, 1.0), (2, 4, 1.0)])
    assert (1, 2, 1.0) not in pairs and (2, 1, 1.0) not in pairs
    # One tier with everything tied: no preference at all.
    assert pairs_from_ranking([[1, 2, 3]]) == []
    assert pairs_from_ranking([]) == []


def test_ranking_pair_count_matches_tier_sizes():
    rng = random.Random(0)
    for _ in range(50):
        ids = list(range(rng.randint(1, 9)))
        rng.shuffle(ids)
        cuts = sorted(rng.sample(range(1, len(ids)), rng.randint(0, len(ids) - 1))) if len(ids) > 1 else []
        tiers = [ids[a:b] for a, b in zip([0, *cuts], [*cuts, len(ids)])]
        sizes = [len(t) for t in tiers]
        expected = sum(a * b for a, b in itertools.combinations(sizes, 2))
        pairs = pairs_from_ranking(tiers, margin_mode="tier_distance")
        assert len(pairs) == expected
        tier_of = {r: i for i, t in enumerate(tiers) for r in t}
        for w, l, m in pairs:
            assert tier_of[w] < tier_of[l] and m == tier_of[l] - tier_of[w]


def test_ranking_rejects_duplicates_and_bad_mode():
    with pytest.raises(ValueError):
        pairs_from_ranking([[1], [1, 2]])
    with pytest.raises(ValueError):
        pairs_from_ranking([[1], [2]], margin_mode="quadratic")


def test_pairwise():
    assert pairs_from_pairwise(5, 7, "a") == [(5, 7, 0.0)]
    assert pairs_from_pairwise(5, 7, "b") == [(7, 5, 0.0)]
    assert pairs_from_pairwise(5, 7, "b", margin_mode="tier_distance") == [(7, 5, 1.0)]
    assert pairs_from_pairwise(5, 7, "tie") == []
    assert pairs_from_pairwise(5, 7, "both_bad") == []
    with pytest.raises(ValueError):
        pairs_from_pairwise(5, 7, "draw")
    with pytest.raises(ValueError):
        pairs_from_pairwise(5, 5, "a")


def test_ratings_higher_wins_equal_gives_none():
    pairs = pairs_from_ratings({1: 6, 2: 3, 3: 6, 4: 1}, margin_mode="tier_distance")
    assert sorted(pairs) == sorted([(1, 2, 3.0), (3, 2, 3.0), (1, 4, 5.0), (3, 4, 5.0), (2, 4, 2.0)])
    assert pairs_from_ratings({1: 4, 2: 4}) == []
    assert pairs_from_ratings({1: 2.5, 2: 4}) == [(2, 1, 0.0)]
    assert pairs_from_ratings({}) == []


def test_group_by_prompt_keeps_order():
    grouped = group_by_prompt([(10, 1, 2, 0), (11, 5, 6, 1), (10, 1, 3, 2)])
    assert grouped == {10: [(1, 2, 0.0), (1, 3, 2.0)], 11: [(5, 6, 1.0)]}
