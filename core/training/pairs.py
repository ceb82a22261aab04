"""Preference pairs from judgments: the one implementation (the store and the trainers both call it).

Pure functions over response ids; no torch, no store. A pair is `(winner_id, loser_id, margin)`.

- A ranking is a list of tiers, best first (`[[r3], [r1, r2], [r4]]`). Every response beats every
  response in a lower tier; responses in the same tier are tied and give no pair.
- A pairwise judgment `a` vs `b` gives one pair when one side wins; "tie" and "both_bad" give none.
- Ratings: the higher rating wins; equal ratings give no pair.

Margins (`margin_mode`):
- "none": every margin is 0.0 (plain Bradley-Terry).
- "tier_distance": how far apart the two were judged: tier index distance for rankings (adjacent
  tiers: 1.0), 1.0 for a pairwise win, the rating difference for ratings. The trainer scales it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Iterable, Literal, Mapping, Sequence

__all__ = [
    "MARGIN_MODES",
    "PAIRWISE_RESULTS",
    "pairs_from_ranking",
    "pairs_from_pairwise",
    "pairs_from_ratings",
    "group_by_prompt",
]

MarginMode = Literal["none", "tier_distance"]
MARGIN_MODES = ("none", "tier_distance")
PAIRWISE_RESULTS = ("a", "b", "tie", "both_bad")

PairT = tuple[int, int, float]


def _check_mode(margin_mode: str) -> None:
    if margin_mode not in MARGIN_MODES:
        raise ValueError(f"margin_mode must be one of {MARGIN_MODES}, not {margin_mode!r}")


def pairs_from_ranking(tiers: Sequence[Iterable[int]], margin_mode: MarginMode = "none") -> list[PairT]:
    """Every pair implied by best-first tiers; ties (same tier) give none.

    Order: by winner tier, then loser tier, then the order within tiers (deterministic).
    """
    _check_mode(margin_mode)
    tiers = [list(t) for t in tiers]
    seen: set[int] = set()
    for tier in tiers:
        for rid in tier:
            if rid in seen:
                raise ValueError(f"response {rid} appears twice in a ranking")
            seen.add(rid)
    pairs: list[PairT] = []
    for i, upper in enumerate(tiers):
        for j in range(i + 1, len(tiers)):
            margin = float(j - i) if margin_mode == "tier_distance" else 0.0
            for w in upper:
                for l in tiers[j]:
                    pairs.append((w, l, margin))
    return pairs


def pairs_from_pairwise(a: int, b: int, result: str, margin_mode: MarginMode = "none") -> list[PairT]:
    """One pair for a win ("a" or "b"); none for "tie" or "both_bad"."""
    _check_mode(margin_mode)
    if result not in PAIRWISE_RESULTS:
        raise ValueError(f"pairwise result must be one of {PAIRWISE_RESULTS}, not {result!r}")
    if a == b:
        raise ValueError("a pairwise judgment needs two different responses")
    margin = 1.0 if margin_mode == "tier_distance" else 0.0
    if result == "a":
        return [(a, b, margin)]
    if result == "b":
        return [(b, a, margin)]
    return []


def pairs_from_ratings(ratings: Mapping[int, float], margin_mode: MarginMode = "none") -> list[PairT]:
    """Every pair of differently rated responses, the higher rating winning; equal ratings give none.

    Order: winners by rating (highest first, then id), losers likewise.
    """
    _check_mode(margin_mode)
    ranked = sorted(ratings.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    pairs: list[PairT] = []
    for i, (w, rw) in enumerate(ranked):
        for l, rl in ranked[i + 1 :]:
            if float(rw) > float(rl):
                margin = float(rw) - float(rl) if margin_mode == "tier_distance" else 0.0
                pairs.append((w, l, margin))
    return pairs


def group_by_prompt(pairs: Iterable[tuple[Hashable, int, int, float]]) -> dict[Hashable, list[PairT]]:
    """`(prompt_id, winner, loser, margin)` rows -> {prompt_id: [(winner, loser, margin), ...]}, in order."""
    grouped: dict[Hashable, list[PairT]] = defaultdict(list)
    for prompt_id, w, l, m in pairs:
        grouped[prompt_id].append((w, l, float(m)))
    return dict(grouped)
