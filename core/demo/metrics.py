"""How different a prompt's candidates are: share of unique candidates and distinct-n."""

from __future__ import annotations

from typing import Iterable, Sequence


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = text.split()
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Iterable[str], n: int = 4) -> float:
    """Distinct n-grams / all n-grams over the texts (word level; 0 when there are none)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = ngrams(text, n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def unique_share(groups: Sequence[Sequence[str]]) -> float:
    """Share of candidates that differ from every other candidate of the same prompt."""
    total = sum(len(g) for g in groups)
    unique = sum(len(set(g)) for g in groups)
    return unique / total if total else 0.0


def diversity(groups: Sequence[Sequence[str]], n: int = 4) -> dict[str, float]:
    """groups: the candidate texts of each prompt. distinct_n over everything, and within each prompt."""
    within = [distinct_n(g, n) for g in groups if any(len(t.split()) >= n for t in g)]
    return {
        "unique_share": unique_share(groups),
        f"distinct_{n}": distinct_n((t for g in groups for t in g), n),
        f"distinct_{n}_within_prompt": sum(within) / len(within) if within else 0.0,
    }
