"""Statistics for evaluation: Wilson intervals, win/tie/loss, flag rates, calibration bins, ranking
cycles and the expert's self-consistency. Pure functions over numbers and ids (no project, no text).

Win rate convention (used everywhere in RLHF Studio): a tie counts as half a win. "Both bad" is a tie
(neither side was preferred), and so are identical responses (nothing to prefer). The rate with ties
excluded, wins / (wins + losses), is reported beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Hashable, Iterable, Optional, Sequence

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal
OUTCOMES = ("win", "tie", "both_bad", "identical", "loss")
"""Outcomes from the tuned model's point of view."""


# ---- intervals --------------------------------------------------------------------------------------


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion successes/n (closed form). Fractional successes are fine
    (ties as half wins). n = 0 gives the uninformative (0, 1)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes ({successes}) must be between 0 and n ({n})")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Exactly 0 or 1 at the edges (float rounding would otherwise give e.g. -1e-17).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson 95% interval; rate is None when n is 0."""

    successes: float
    n: int
    rate: Optional[float]
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)


def rate(successes: float, n: int) -> Rate:
    low, high = wilson_interval(successes, n)
    return Rate(float(successes), int(n), (successes / n) if n else None, low, high)


# ---- win / tie / loss -------------------------------------------------------------------------------


def outcome(choice: str, tuned_side: str) -> str:
    """A pairwise choice ("a", "b", "tie", "both_bad") as an outcome for the tuned model, which was
    shown as `tuned_side` ("a" or "b")."""
    if choice in ("tie", "both_bad"):
        return choice
    if choice not in ("a", "b") or tuned_side not in ("a", "b"):
        raise ValueError(f"bad choice {choice!r} or side {tuned_side!r}")
    return "win" if choice == tuned_side else "loss"


@dataclass(frozen=True)
class Counts:
    win: int = 0
    tie: int = 0
    both_bad: int = 0
    identical: int = 0
    loss: int = 0

    @property
    def n(self) -> int:
        return self.win + self.tie + self.both_bad + self.identical + self.loss

    @property
    def ties(self) -> int:
        """Everything that is neither a win nor a loss."""
        return self.tie + self.both_bad + self.identical

    def win_rate(self) -> Rate:
        """Ties (tie, both bad, identical) count as half a win."""
        return rate(self.win + 0.5 * self.ties, self.n)

    def win_rate_excluding_ties(self) -> Rate:
        return rate(self.win, self.win + self.loss)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in OUTCOMES}


def count_outcomes(outcomes: Iterable[str]) -> Counts:
    tally = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        if o not in tally:
            raise ValueError(f"unknown outcome {o!r}")
        tally[o] += 1
    return Counts(**tally)


def flag_rates(flag_sets: Sequence[Iterable[str]], known: Iterable[str] = ()) -> dict[str, Rate]:
    """Share of judged items carrying each flag (a flag applies to the item, not to one side).
    `known` flags are listed even at zero."""
    n = len(flag_sets)
    counts: dict[str, int] = dict.fromkeys(known, 0)
    for flags in flag_sets:
        for f in set(flags):
            counts[f] = counts.get(f, 0) + 1
    return {f: rate(c, n) for f, c in sorted(counts.items())}


def distribution(values: Sequence[float]) -> dict:
    """Mean, std (population), quartiles, min and max of a list of numbers."""
    v = sorted(float(x) for x in values)
    n = len(v)
    if not n:
        return {"n": 0, "mean": None, "std": None, "min": None, "q1": None, "median": None, "q3": None, "max": None}
    mean = sum(v) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / n)
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "min": v[0],
        "q1": quantile(v, 0.25),
        "median": quantile(v, 0.5),
        "q3": quantile(v, 0.75),
        "max": v[-1],
    }


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# ---- reward model against the expert ----------------------------------------------------------------


def pair_correct(reward_chosen: float, reward_rejected: float) -> float:
    """1 when the reward model prefers the expert's choice, 0 when not, 1/2 on an exact tie."""
    if reward_chosen > reward_rejected:
        return 1.0
    if reward_chosen < reward_rejected:
        return 0.0
    return 0.5


def pairwise_accuracy(diffs: Sequence[float]) -> Rate:
    """diffs: reward(chosen) - reward(rejected) per expert pair."""
    return rate(sum(pair_correct(d, 0.0) for d in diffs), len(diffs))


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    """Smallest |reward margin| in the bin."""
    high: float
    """Largest |reward margin| in the bin."""
    n: int
    accuracy: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return asdict(self)


def calibration_bins(diffs: Sequence[float], n_bins: int = 5) -> list[CalibrationBin]:
    """Accuracy against the expert by the size of the reward margin |r(chosen) - r(rejected)|.

    Bins hold (nearly) equal numbers of pairs, sorted by margin, so each accuracy rests on the same
    amount of evidence. A calibrated reward model is more often right where its margin is larger."""
    rows = sorted((abs(float(d)), pair_correct(d, 0.0)) for d in diffs)
    if not rows:
        return []
    k = max(1, min(n_bins, len(rows)))
    bins = []
    for i in range(k):
        chunk = rows[i * len(rows) // k : (i + 1) * len(rows) // k]
        if not chunk:
            continue
        r = rate(sum(c for _, c in chunk), len(chunk))
        bins.append(CalibrationBin(chunk[0][0], chunk[-1][0], len(chunk), r.rate, r.low, r.high))
    return bins


# ---- ranking cycles -----------------------------------------------------------------------------------


def strongly_connected(edges: Iterable[tuple[Hashable, Hashable]]) -> list[list[Hashable]]:
    """Strongly connected components (Tarjan, iterative) of a directed graph given as (u, v) edges."""
    graph: dict = defaultdict(list)
    nodes: list = []
    for u, v in edges:
        for x in (u, v):
            if x not in graph:
                graph[x]
                nodes.append(x)
        graph[u].append(v)
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    out: list[list] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == node:
                        break
                out.append(comp)
    return out


def _shortest_cycle_through(start, graph: dict, allowed: set) -> list:
    """Breadth-first: the shortest cycle start -> ... -> start inside `allowed`."""
    parent = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for u in frontier:
            for v in graph.get(u, ()):
                if v not in allowed:
                    continue
                if v == start:
                    path = [u]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return path[::-1]
                if v not in parent:
                    parent[v] = u
                    nxt.append(v)
        frontier = nxt
    return []


def find_cycles(edges: Iterable[tuple[Hashable, Hashable]]) -> list[list[Hashable]]:
    """One shortest preference cycle per cyclic component of "u is preferred to v" edges, e.g. [A, B, C]
    for A>B, B>C, C>A; [A, B] when A>B and B>A were both stated. Empty when the preferences are
    consistent (a partial order)."""
    edges = list(edges)
    graph: dict = defaultdict(list)
    for u, v in edges:
        graph[u].append(v)
    cycles = []
    for comp in strongly_connected(edges):
        if len(comp) < 2:
            continue
        members = set(comp)
        best: list = []
        for start in sorted(comp, key=repr):
            cyc = _shortest_cycle_through(start, graph, members)
            if cyc and (not best or len(cyc) < len(best)):
                best = cyc
        cycles.append(best)
    return cycles


def cycles_by_prompt(pairs: Iterable[tuple[int, int, int]]) -> dict[int, list[list[int]]]:
    """(prompt_id, chosen_id, rejected_id) preference pairs -> {prompt_id: cycles} for prompts with any."""
    grouped: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for pid, chosen, rejected in pairs:
        grouped[pid].append((chosen, rejected))
    out = {}
    for pid, edges in grouped.items():
        cycles = find_cycles(edges)
        if cycles:
            out[pid] = cycles
    return out


# ---- self-consistency ---------------------------------------------------------------------------------


def self_consistency(agreed: Sequence[bool], taus: Sequence[Optional[float]] = ()) -> dict:
    """The expert's agreement with their own earlier judgments on blind re-checks."""
    r = rate(sum(bool(a) for a in agreed), len(agreed))
    tau_values = [t for t in taus if t is not None]
    return {
        "checks": len(agreed),
        "agreement": r.rate,
        "low": r.low,
        "high": r.high,
        "mean_tau": (sum(tau_values) / len(tau_values)) if tau_values else None,
    }
