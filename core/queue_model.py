"""The queue's own small reward model: a Bradley-Terry ensemble over hashed text features, fit in seconds.

The informative queue needs a model of the expert that is fresh after every few judgments; a
transformer reward-model run takes minutes and is not re-trained after each one. This is the cheap
companion (core.active mixes in the latest reward-model run when there is one):

- **Features** of a (prompt, reply) pair, hashed into 2^18 slots (no vocabulary to store): the reply's
  words and word pairs; its words marked by whether the prompt mentions them (a reply naming a product
  the customer never mentioned); the prompt's salient words crossed with the reply's words (does this
  reply answer *this* request); length, sentence end and the core.quality findings. Prompt-only features
  cancel out in a comparison, so none are kept. Each block is scaled to unit length.
- **Model**: a linear score fit with the Bradley-Terry loss -log sigmoid(s_w - s_l) over every pair of
  every judgment, each prompt weighing the same, plus an L2 penalty; full-batch L-BFGS (convex: the
  same data gives the same weights). Scores are in logits, so sigmoid(s_i - s_j) is the model's
  probability that i beats j.
- **Ensemble**: the fit on all the data, plus bootstrap refits (each prompt reweighted by a seeded
  Poisson(1) draw, warm-started from the first). Where they disagree, a judgment would teach.

Numpy only; Qt-free. Texts are hashed in memory and never written anywhere.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from core.jobs import USER_ACTIVITY

__all__ = ["DIM", "Featurizer", "Rows", "Group", "fit", "Ensemble", "fit_ensemble", "prompt_text"]

DIM = 1 << 18
_DENSE = 16  # slots 0..15 hold the dense features; hashed ones land above
_WORD = re.compile(r"\w+", re.UNICODE)
_MIX = np.uint64(0x9E3779B97F4A7C15)
MAX_PROMPT_WORDS = 16
MAX_REPLY_WORDS = 64
QUALITY_SLOTS = {"empty": 8, "repetitive": 9, "cut off": 10, "gibberish": 11, "duplicate": 12, "near-duplicate": 12}


def prompt_text(prompt: Any) -> str:
    """A prompt (text or chat messages) as one string; chat: the user turns (the request)."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
    return "\n".join(users or [m.get("content", "") for m in prompt])


@dataclass
class Rows:
    """Sparse rows (one per reply): feature slot, value and row number of each nonzero."""

    idx: np.ndarray  # int64 [nnz]
    val: np.ndarray  # float64 [nnz]
    row: np.ndarray  # int64 [nnz]
    n: int
    blk: Optional[np.ndarray] = None  # int8 [nnz]: index into BLOCKS of each nonzero

    def view(self, blocks: Sequence[str]) -> "Rows":
        """The same rows with only the given feature blocks (a committee member's view)."""
        if self.blk is None:
            return self
        keep = np.isin(self.blk, [BLOCKS.index(b) for b in blocks])
        return Rows(self.idx[keep], self.val[keep], self.row[keep], self.n, self.blk[keep])

    def scores(self, w: np.ndarray) -> np.ndarray:
        return np.bincount(self.row, weights=w[self.idx] * self.val, minlength=self.n)

    def backprop(self, g_rows: np.ndarray) -> np.ndarray:
        return np.bincount(self.idx, weights=g_rows[self.row] * self.val, minlength=DIM)

    @staticmethod
    def stack(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> "Rows":
        if not parts:
            return Rows(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), 0)
        idx = np.concatenate([p[0] for p in parts])
        val = np.concatenate([p[1] for p in parts])
        row = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p[0]) for p in parts])
        blk = np.concatenate([p[2] for p in parts]) if all(len(p) > 2 for p in parts) else None
        return Rows(idx, val, row, len(parts), blk)


BLOCKS = ("words", "pairs", "novel", "cross", "dense")


class Featurizer:
    """Hashed features of replies to prompts. Keeps a word -> hash cache (in memory only).

    blocks: which feature blocks to produce (all by default): reply words, word pairs, words marked by
    whether the prompt has them, prompt x reply words, dense figures. A committee of models that each
    see other blocks disagrees where the evidence is mixed."""

    def __init__(self, blocks: Sequence[str] = BLOCKS) -> None:
        self.blocks = frozenset(blocks)
        self._hashes: dict[str, int] = {}
        self.doc_freq: dict[str, int] = {}
        self.n_docs = 0

    def _h(self, key: str) -> int:
        h = self._hashes.get(key)
        if h is None:
            h = zlib.crc32(key.encode("utf-8", "surrogatepass"))
            if len(self._hashes) < 2_000_000:
                self._hashes[key] = h
        return h

    def _slots(self, keys: Iterable[str]) -> np.ndarray:
        return np.fromiter((_DENSE + self._h(k) % (DIM - _DENSE) for k in keys), dtype=np.int64)

    def observe_prompts(self, prompts: Iterable[str]) -> None:
        """Document frequencies of prompt words: the rarest words of a prompt are its salient ones."""
        for text in prompts:
            self.n_docs += 1
            for w in set(_WORD.findall(text.lower())):
                self.doc_freq[w] = self.doc_freq.get(w, 0) + 1

    def salient(self, prompt: str) -> tuple[set[str], np.ndarray]:
        """(all prompt words, hash codes of its salient words: the rarest, length >= 3)."""
        words = set(_WORD.findall(prompt.lower()))
        ranked = sorted(
            (w for w in words if len(w) >= 3 and not w.isdigit()), key=lambda w: (self.doc_freq.get(w, 0), w)
        )[:MAX_PROMPT_WORDS]
        return words, np.array([self._h("c:" + w) for w in ranked], dtype=np.uint64)

    def features(
        self, prompt_info: tuple[set[str], np.ndarray], text: str, tags: Iterable[str] = ()
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slots, values, block index of each) of one reply to the prompt `prompt_info` (from `salient`)."""
        prompt_words, prompt_codes = prompt_info
        words = _WORD.findall(text.lower())
        uni = sorted(set(words))
        bi = sorted({a + " " + b for a, b in zip(words, words[1:])})
        marked = [("p:" if w in prompt_words else "n:") + w for w in uni if len(w) >= 3]
        idx_parts, val_parts, blk_parts = [], [], []
        for block, keys in (("words", ["u:" + w for w in uni]), ("pairs", ["b:" + g for g in bi]), ("novel", marked)):
            if keys and block in self.blocks:
                idx_parts.append(self._slots(keys))
                val_parts.append(np.full(len(keys), 1.0 / math.sqrt(len(keys))))
                blk_parts.append(np.full(len(keys), BLOCKS.index(block), dtype=np.int8))
        reply_words = sorted(uni, key=lambda w: (-len(w), w))[:MAX_REPLY_WORDS]
        if reply_words and len(prompt_codes) and "cross" in self.blocks:
            rc = np.array([self._h("r:" + w) for w in reply_words], dtype=np.uint64)
            with np.errstate(over="ignore"):
                mixed = (prompt_codes[:, None] * _MIX) ^ rc[None, :]
            cross = (_DENSE + (mixed.ravel() % np.uint64(DIM - _DENSE))).astype(np.int64)
            idx_parts.append(cross)
            val_parts.append(np.full(len(cross), 1.0 / math.sqrt(len(cross))))
            blk_parts.append(np.full(len(cross), BLOCKS.index("cross"), dtype=np.int8))
        n = len(words)
        stripped = text.rstrip()
        in_prompt = sum(1 for w in uni if w in prompt_words) / len(uni) if uni else 0.0
        sentences = len(re.findall(r"[.!?](\s|$)", text))
        digits = sum(1 for w in words if w.isdigit())
        # numbers the reply states that the request never gave (an order number, an amount): a detail
        # that may contradict the request
        new_numbers = sum(1 for w in uni if w.isdigit() and len(w) >= 2 and w not in prompt_words)
        old_numbers = sum(1 for w in uni if w.isdigit() and len(w) >= 2 and w in prompt_words)
        dense = {
            0: math.log1p(n) / 2.0,
            1: n / 40.0,
            2: (n / 40.0) ** 2,
            3: float(bool(stripped) and stripped[-1] in ".!?"),
            4: 2.0 * in_prompt,
            5: float(n < 5),
            6: sentences / 4.0,
            7: digits / 4.0,
            13: min(new_numbers, 3) / 1.5,
            14: min(old_numbers, 3) / 1.5,
        }
        for tag in tags:
            if tag in QUALITY_SLOTS:
                dense[QUALITY_SLOTS[tag]] = 1.0
        if "dense" in self.blocks or not idx_parts:
            idx_parts.append(np.fromiter(dense.keys(), dtype=np.int64))
            val_parts.append(np.fromiter(dense.values(), dtype=np.float64))
            blk_parts.append(np.full(len(dense), BLOCKS.index("dense"), dtype=np.int8))
        return np.concatenate(idx_parts), np.concatenate(val_parts), np.concatenate(blk_parts)


@dataclass
class Group:
    """One judged prompt: its replies' rows and the (winner, loser) pairs among them (row numbers)."""

    prompt_id: int
    rows: list[int]
    pairs: list[tuple[int, int]]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not BLAS: a threaded BLAS spin-waits for cores a busy machine (the GUI, other jobs) lacks
    return float(np.einsum("i,i->", a, b))


def _objective(w, X: Rows, win, lose, pw, l2):
    s = X.scores(w)
    d = s[win] - s[lose]
    loss = float(np.sum(pw * np.logaddexp(0.0, -d))) + l2 * _dot(w, w)
    g_d = -pw / (1.0 + np.exp(np.clip(d, -50, 50)))  # d/dd softplus(-d) = -sigmoid(-d)
    g_rows = np.bincount(win, weights=g_d, minlength=X.n) - np.bincount(lose, weights=g_d, minlength=X.n)
    return loss, X.backprop(g_rows) + 2.0 * l2 * w


def _lbfgs(f, w0, iters: int, memory: int = 8, tol: float = 1e-5):
    """Plain L-BFGS with a backtracking Armijo line search (convex objective)."""
    w = w0.copy()
    loss, g = f(w)
    S, Y = [], []
    for _ in range(iters):
        q = g.copy()
        alphas = []
        for s, y in reversed(list(zip(S, Y))):
            rho = 1.0 / _dot(y, s)
            a = rho * _dot(s, q)
            alphas.append((a, rho, s, y))
            q -= a * y
        if S:
            q *= _dot(S[-1], Y[-1]) / _dot(Y[-1], Y[-1])
        else:
            q /= max(1.0, math.sqrt(_dot(g, g)))
        for a, rho, s, y in reversed(alphas):
            b = rho * _dot(y, q)
            q += (a - b) * s
        direction = -q
        slope = _dot(g, direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            S, Y = [], []
            direction, slope = -g, -_dot(g, g)
        step = 1.0
        for _ in range(20):
            w_new = w + step * direction
            new_loss, new_g = f(w_new)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s_vec, y_vec = w_new - w, new_g - g
        if _dot(y_vec, s_vec) > 1e-12:
            S.append(s_vec)
            Y.append(y_vec)
            if len(S) > memory:
                S.pop(0)
                Y.pop(0)
        improvement = loss - new_loss
        w, loss, g = w_new, new_loss, new_g
        if improvement < tol * max(1.0, abs(loss)):
            break
    return w


def _pairs(groups: Sequence[Group], weights: Optional[np.ndarray] = None):
    win, lose, pw = [], [], []
    for k, grp in enumerate(groups):
        gw = 1.0 if weights is None else float(weights[k])
        if not grp.pairs or gw == 0:
            continue
        for a, b in grp.pairs:
            win.append(a)
            lose.append(b)
            pw.append(gw / len(grp.pairs))  # every prompt weighs the same, whatever its pairs
    return np.array(win, np.int64), np.array(lose, np.int64), np.array(pw, np.float64)


DEFAULT_L2 = 0.05


def fit(
    X: Rows,
    groups: Sequence[Group],
    *,
    weights: Optional[np.ndarray] = None,
    l2: float = DEFAULT_L2,
    w0: Optional[np.ndarray] = None,
    iters: int = 60,
) -> np.ndarray:
    """Weights [DIM] of a Bradley-Terry linear model on the groups' pairs (rows index X).

    Solved over the slots the judged rows use (a few tens of thousands of the 2^18): a slot no judged
    reply has keeps weight 0 under the L2 penalty anyway."""
    win, lose, pw = _pairs(groups, weights)
    if len(win) == 0:
        return np.zeros(DIM) if w0 is None else w0.copy()
    used_rows = np.unique(np.concatenate([win, lose]))
    keep = np.isin(X.row, used_rows)
    slots, local_idx = np.unique(X.idx[keep], return_inverse=True)
    remap = np.full(X.n, -1, dtype=np.int64)
    remap[used_rows] = np.arange(len(used_rows))
    sub = _SubRows(local_idx, X.val[keep], remap[X.row[keep]], len(used_rows), len(slots))
    start = np.zeros(len(slots)) if w0 is None else w0[slots]
    win_local, lose_local = remap[win], remap[lose]

    def objective(w):
        USER_ACTIVITY.step_aside()  # a fit in the background makes way for the expert between evaluations
        return _objective(w, sub, win_local, lose_local, pw, l2)

    w_local = _lbfgs(objective, start, iters)
    out = np.zeros(DIM)
    out[slots] = w_local
    return out


@dataclass
class _SubRows(Rows):
    dim: int = 0

    def backprop(self, g_rows: np.ndarray) -> np.ndarray:
        return np.bincount(self.idx, weights=g_rows[self.row] * self.val, minlength=self.dim)


@dataclass
class Ensemble:
    """Member weights; member 0 is the fit on all the data."""

    weights: list[np.ndarray] = field(default_factory=list)
    judged: int = 0
    """Judged prompts it was fit on."""

    def scores(self, X: Rows) -> np.ndarray:
        """[members, rows] scores in logits."""
        if not self.weights:
            return np.zeros((0, X.n))
        return np.stack([X.scores(w) for w in self.weights])


# Committee members after the first (all blocks): each sees part of the evidence. Where a model of the
# wording alone and one of the request/reply match disagree, the evidence is mixed and a judgment
# settles it; on the demo this picked better than bootstrap refits (bench/active.py, docs).
VIEWS = (
    ("words", "pairs", "dense"),
    ("novel", "cross", "dense"),
    ("pairs", "novel", "cross", "dense"),
    ("words", "novel", "cross", "dense"),
)


def fit_ensemble(
    X: Rows,
    groups: Sequence[Group],
    members: int = 5,
    seed: int = 0,
    l2: float = DEFAULT_L2,
    cancel=None,
    kind: str = "views",
) -> Ensemble:
    """Member 0 is the fit on all the data and features; then `members - 1` more: fits on the feature
    VIEWS (kind "views", when X carries block tags) or Poisson-bootstrap refits (kind "bootstrap",
    seeded: same data, same ensemble). A member's weights score X as it is (a view's weights are 0
    outside its blocks)."""
    base = fit(X, groups, l2=l2)
    weights = [base]
    rng = np.random.default_rng(seed)
    for k in range(max(0, members - 1)):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if kind == "views" and X.blk is not None:
            weights.append(fit(X.view(VIEWS[k % len(VIEWS)]), groups, l2=l2))
        else:
            draw = rng.poisson(1.0, size=len(groups)).astype(np.float64)
            weights.append(fit(X, groups, weights=draw, l2=l2, w0=base, iters=30))
    return Ensemble(weights, judged=sum(1 for g in groups if g.pairs))
