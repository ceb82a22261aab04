"""Spend the expert's time where it teaches most: the informative queue order and assisted review.

**Queue order** (`ORDERS`): "project" (the default: the project's own order) or "informative". The
informative order is computed by a job, `refresh_queue`, that the GUI runs on a worker and the CLI with
a progress bar; the annotation session only reads the result (`QueueOrder`), so the expert never waits:

1. A small reward model of the expert (core.queue_model: a Bradley-Terry ensemble on hashed text
   features, fit in seconds) is fit on the current judgments of the train split.
2. A pool of unjudged prompts (all of them, or a seeded sample of `pool_size` on a big project) is
   scored by every member. For each pair of candidates the members give p = P(i beats j); a prompt's
   informativeness is the sum over its candidate pairs of the ensemble's disagreement (the mutual
   information H(mean p) - mean H(p), in bits) plus `margin_weight` x the uncertainty of the mean
   (H(mean p): small score margins). Pairs the quality filters mark as copies are left out: their
   order teaches nothing.
3. When a reward-model run exists (Train page), the `reward_pool` most informative prompts are also
   scored by it; it joins the ensemble as one more member (its disagreement with the quick models counts).
4. Diversity: the head of the order is picked greedily (maximal marginal relevance): each next prompt
   maximises informativeness minus `diversity` x its highest similarity (hashed prompt words, cosine)
   to the prompts already picked, so one topic does not fill the next screens.

Until `START_INFORMATIVE` prompts have judgments the order says why and the session keeps the project
order (a model of a handful of judgments picks worse than the project order). Consistency re-checks are
unchanged (they sit outside the queue).

**Assisted review** (`explain_judgment`, `review_list`): only ever about judgments that exist. The
model's view of a judgment comes from a model that did not see it (the queue ensemble fit before it,
or, for the review list, fit on the other folds), or from a reward-model run (`source="reward"`).
Qt-free; the GUI shows these after a submit, never before.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from core.errors import UserError
from core.jobs import NEVER, USER_ACTIVITY, CancelToken, Progress, run_job
from core.queue_model import Ensemble, Featurizer, Group, Rows, fit, fit_ensemble, prompt_text

__all__ = [
    "ORDERS",
    "ORDER_SETTING",
    "QUEUE_SETTING",
    "MIN_JUDGED",
    "START_INFORMATIVE",
    "QueueOrder",
    "ModelCache",
    "ModelView",
    "refresh_queue",
    "stored_order",
    "informativeness",
    "explain_judgment",
    "review_list",
    "model_view",
]

ORDERS = ("project", "informative")
ORDER_LABELS = {"project": "Project order", "informative": "Most informative first"}
ORDER_SETTING = "annotation.queue_order"
QUEUE_SETTING = "annotation.informative_queue"
MIN_JUDGED = 8
"""Judged prompts before there is a model of the expert at all (model check, review list)."""
START_INFORMATIVE = 40
"""Judged prompts before the informative order starts: a model of fewer judgments picks worse than the
project order (bench/active.py: starting at 8 cost accuracy over the first 60 rankings)."""
DEFAULT_POOL = 3000
DEFAULT_REWARD_POOL = 300
DEFAULT_MEMBERS = 5
MAX_TRAIN_PROMPTS = 3000
DIVERSE_HEAD = 200
_LN2 = math.log(2.0)


# ---- data -----------------------------------------------------------------------------------------


@dataclass
class QueueOrder:
    """The informative order: prompt ids, most informative first, with their scores (bits)."""

    prompt_ids: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    split: Optional[str] = None
    judged: int = 0
    """Judged prompts the model was fit on."""
    pool: int = 0
    """Unjudged prompts scored."""
    unjudged: int = 0
    """Unjudged prompts in the split (the pool is a sample of them on a big project)."""
    reward_run: Optional[int] = None
    """The reward-model run that joined the ensemble, if any."""
    members: int = 0
    created: float = 0.0
    seconds: float = 0.0
    reason: str = ""
    """Why there is no informative order yet (empty when there is one)."""

    @property
    def ready(self) -> bool:
        return bool(self.prompt_ids)

    def text(self) -> str:
        if not self.ready:
            return self.reason or "No informative order yet."
        by = f" and reward-model run {self.reward_run}" if self.reward_run is not None else ""
        sample = f" (a sample of {self.unjudged:,})" if self.pool < self.unjudged else ""
        return (
            f"Most informative first: {self.pool:,} unjudged prompts{sample} ranked by a model of your "
            f"{self.judged:,} judged prompts{by}."
        )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "QueueOrder":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def stored_order(project) -> Optional[QueueOrder]:
    """The last informative order the refresh job stored (encrypted settings), or None."""
    raw = project.get_setting(QUEUE_SETTING, None)
    return QueueOrder.from_json(raw) if raw else None


def _judged_rows(
    project, split: Optional[str] = "train", limit: int = MAX_TRAIN_PROMPTS, exclude: Sequence[int] = ()
) -> dict[int, list[tuple[int, int]]]:
    """{prompt id: [(winner, loser) response ids]} from the current annotation judgments, newest
    prompts first when over `limit`. No decryption (tiers, pairs and ratings are plaintext ids/numbers)."""
    from core.training import pairs as P

    sql = (
        "SELECT j.prompt_id, j.kind, j.tiers, j.a, j.b, j.choice, j.ratings FROM judgments j "
        "JOIN prompts p ON p.id=j.prompt_id WHERE j.status='current' AND j.purpose='annotation' "
        "AND j.kind!='skip'" + (" AND p.split=?" if split else "") + " ORDER BY j.id DESC"
    )
    out: dict[int, list[tuple[int, int]]] = {}
    skip = set(exclude)
    for pid, kind, tiers, a, b, choice, ratings in project.db.execute(sql, [split] if split else []):
        if pid in skip:
            continue
        if pid not in out and len(out) >= limit:
            continue
        if kind == "ranking":
            pairs = P.pairs_from_ranking(json.loads(tiers))
        elif kind == "pairwise":
            pairs = P.pairs_from_pairwise(a, b, choice)
        elif kind == "rating":
            pairs = P.pairs_from_ratings({int(k): v for k, v in json.loads(ratings).items()})
        else:
            continue
        out.setdefault(pid, []).extend((w, l) for w, l, _ in pairs)
    return {pid: sorted(set(v)) for pid, v in out.items()}


def _unjudged(project, split: Optional[str]) -> list[int]:
    """Prompts with no current annotation judgment (a skip counts as one: skipped prompts wait)."""
    sql = (
        "SELECT p.id FROM prompts p WHERE NOT EXISTS (SELECT 1 FROM judgments j WHERE j.prompt_id=p.id "
        "AND +j.status='current' AND +j.purpose='annotation')"
        + (" AND p.split=?" if split else "")
        + " ORDER BY p.position"
    )
    return [r[0] for r in project.db.execute(sql, [split] if split else [])]


def _candidates(project, pid: int):
    from core.quality import check_candidates

    responses = [r for r in project.responses(pid) if r.origin.get("kind") != "eval"]
    return responses, check_candidates(responses)


class _Table:
    """Featurized prompts: rows of every reply, in prompt order."""

    def __init__(self, featurizer: Featurizer):
        self.f = featurizer
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.rows: dict[int, list[int]] = {}  # prompt id -> row numbers
        self.ids: dict[int, list[int]] = {}  # prompt id -> response ids (same order)
        self.copies: dict[int, set[frozenset]] = {}  # prompt id -> duplicate pairs (response ids)
        self.words: dict[int, set[str]] = {}

    def add(self, pid: int, prompt: Any, responses, quality) -> None:
        from core.quality import flagged_pairs

        text = prompt_text(prompt)
        info = self.f.salient(text)
        self.words[pid] = info[0]
        start = len(self.parts)
        for r in responses:
            self.parts.append(self.f.features(info, r.text, [q.tag for q in quality.get(r.id, ())]))
        self.rows[pid] = list(range(start, len(self.parts)))
        self.ids[pid] = [r.id for r in responses]
        self.copies[pid] = flagged_pairs(responses)

    def matrix(self) -> Rows:
        return Rows.stack(self.parts)


def _load_table(
    project,
    pids: Sequence[int],
    featurizer: Featurizer,
    cancel: CancelToken,
    total: Optional[int] = None,
    message: str = "reading prompts",
) -> Iterator[Progress]:
    """Job step: decrypt and featurize the prompts (in memory only); returns the `_Table`."""
    table = _Table(featurizer)
    loaded = []
    for k, pid in enumerate(pids):
        if k % 64 == 0:
            cancel.raise_if_cancelled()
            yield Progress(k, total or len(pids), message)
        responses, quality = _candidates(project, pid)
        loaded.append((pid, project.prompt(pid).prompt, responses, quality))
        _let_others_run(cancel)
    featurizer.observe_prompts(prompt_text(p) for _, p, _, _ in loaded)
    for pid, prompt, responses, quality in loaded:
        table.add(pid, prompt, responses, quality)
        _let_others_run(cancel)
    return table


def _let_others_run(cancel: CancelToken = NEVER) -> None:
    """This job is pure-Python work in a background thread: a prompt at a time, step aside while the
    expert is pressing keys (core.jobs.UserActivity) and hand the GIL over, so a submit never queues
    behind it."""
    USER_ACTIVITY.step_aside(cancel)


def _groups(table: _Table, judged: dict[int, list[tuple[int, int]]]) -> list[Group]:
    groups = []
    for pid, pairs in judged.items():
        if pid not in table.rows:
            continue
        row_of = dict(zip(table.ids[pid], table.rows[pid]))
        local = [(row_of[w], row_of[l]) for w, l in pairs if w in row_of and l in row_of]
        groups.append(Group(pid, table.rows[pid], local))
    return groups


# ---- informativeness ------------------------------------------------------------------------------


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p)) / _LN2


def informativeness(
    scores: np.ndarray, skip_pairs: Sequence[tuple[int, int]] = (), margin_weight: float = 0.25
) -> float:
    """How much ranking these candidates would teach, in bits: scores is [members, k] (logits).

    Sum over candidate pairs of the members' disagreement (mutual information between the outcome and
    the member: H(mean p) - mean H(p)) plus `margin_weight` x H(mean p), the plain uncertainty of a
    small margin. One member: the margin term alone. Pairs in `skip_pairs` (copies) count nothing."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    k = scores.shape[1]
    if k < 2:
        return 0.0
    skip = {frozenset(p) for p in skip_pairs}
    ii, jj = np.triu_indices(k, 1)
    keep = np.array([frozenset((int(a), int(b))) not in skip for a, b in zip(ii, jj)], dtype=bool)
    if not keep.any():
        return 0.0
    ii, jj = ii[keep], jj[keep]
    d = scores[:, ii] - scores[:, jj]  # [members, pairs]
    p = 1.0 / (1.0 + np.exp(-np.clip(d, -50, 50)))
    mean = p.mean(axis=0)
    h_mean = _entropy(mean)
    bald = h_mean - _entropy(p).mean(axis=0)
    return float(np.sum(np.maximum(bald, 0.0) + margin_weight * h_mean))


def _prompt_vectors(table: _Table, pids: Sequence[int], featurizer: Featurizer, dim: int = 1024) -> np.ndarray:
    """Unit vectors of each prompt's words (idf-weighted, hashed): cosine = topic similarity."""
    import zlib

    out = np.zeros((len(pids), dim))
    n = max(1, featurizer.n_docs)
    for r, pid in enumerate(pids):
        if r % 64 == 0:
            _let_others_run()
        for w in table.words.get(pid, ()):
            if len(w) < 3:
                continue
            idf = math.log((1 + n) / (1 + featurizer.doc_freq.get(w, 0)))
            out[r, zlib.crc32(w.encode("utf-8", "surrogatepass")) % dim] += idf
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def diverse_order(
    values: np.ndarray, vectors: np.ndarray, diversity: float = 0.5, head: int = DIVERSE_HEAD, candidates: int = 1000
) -> list[int]:
    """Indices: the first `head` picked greedily by value/max - diversity x max cosine to those
    already picked (from the `candidates` most valuable), then the rest by value."""
    order = list(np.argsort(-values, kind="stable"))
    if diversity <= 0 or len(order) <= 1:
        return order
    top = order[:candidates]
    rest = order[candidates:]
    vmax = float(values[top[0]]) or 1.0
    rel = values[top] / vmax
    vec = vectors[top]
    best_sim = np.zeros(len(top))
    taken = np.zeros(len(top), dtype=bool)
    picked: list[int] = []
    for n in range(min(head, len(top))):
        if n % 16 == 0:
            _let_others_run()
        score = np.where(taken, -np.inf, rel - diversity * best_sim)
        k = int(np.argmax(score))
        taken[k] = True
        picked.append(top[k])
        best_sim = np.maximum(best_sim, np.einsum("ij,j->i", vec, vec[k]))  # not BLAS (see queue_model._dot)
    left = [top[k] for k in range(len(top)) if not taken[k]]
    return picked + left + rest


# ---- reward-model runs (cached on the caller's side) ----------------------------------------------


class ModelCache:
    """Loaded reward-model runs and the last queue ensemble, kept between jobs by their caller (the
    Annotate page keeps one). Thread-safe; the models are used by one job at a time."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._reward: dict[tuple[str, int], Any] = {}
        self.queue: Optional[tuple[Featurizer, Ensemble, set[int]]] = None
        """(featurizer, ensemble, prompt ids it was fit on) from the last refresh or explain."""

    def reward_model(self, project, run_id: int):
        from core.training.reward import load_reward_model

        key = (str(project.path), run_id)
        with self._lock:
            if key not in self._reward:
                self._reward.clear()  # one at a time: they can be large
                self._reward[key] = load_reward_model(project, run_id)
            return self._reward[key]

    def clear(self) -> None:
        with self._lock:
            self._reward.clear()
            self.queue = None


def latest_reward_run(project) -> Optional[int]:
    runs = [r for r in project.runs(kind="reward") if r.status == "done" and project.has_artifact(r.id, "final")]
    return runs[-1].id if runs else None


def _reward_scores(
    project, cache: ModelCache, run_id: int, pids: Sequence[int], cancel: CancelToken
) -> dict[int, dict[int, float]]:
    model = cache.reward_model(project, run_id)
    out = {}
    for k in range(0, len(pids), 16):
        cancel.raise_if_cancelled()
        items, keys = [], []
        for pid in pids[k : k + 16]:
            prompt = project.prompt(pid).prompt
            for r in project.responses(pid):
                if r.origin.get("kind") != "eval":
                    items.append((prompt, r.text))
                    keys.append((pid, r.id))
        for (pid, rid), v in zip(keys, model.score(items) if items else []):
            out.setdefault(pid, {})[rid] = float(v)
    return out


# ---- the refresh job ------------------------------------------------------------------------------


def refresh_queue(
    project,
    *,
    split: Optional[str] = None,
    pool_size: int = DEFAULT_POOL,
    members: int = DEFAULT_MEMBERS,
    use_reward_run: bool = True,
    reward_pool: int = DEFAULT_REWARD_POOL,
    margin_weight: float = 0.25,
    diversity: float = 0.3,
    seed: int = 0,
    store: bool = True,
    min_judged: int = START_INFORMATIVE,
    cache: Optional[ModelCache] = None,
    cancel: CancelToken = NEVER,
) -> Iterator[Progress]:
    """Job: compute the informative order of the unjudged prompts of `split` (None: all prompts);
    returns a `QueueOrder` (not ready, with a reason, until MIN_JUDGED prompts are judged). Reads the
    project only; with `store` the order is saved in the encrypted settings for the next session."""
    t0 = time.monotonic()
    cache = cache or ModelCache()
    yield Progress(0, None, "reading judgments")
    # Fit on the train split only and rank only its prompts: the held-out split measures the reward
    # model, so it must neither teach the queue nor be picked by it (that would bias the measurement).
    judged = {pid: pairs for pid, pairs in _judged_rows(project, "train").items() if pairs}
    unjudged = _unjudged(project, "train") if split in (None, "train") else []
    heldout = _unjudged(project, "heldout") if split is None else []
    order = QueueOrder(split=split, judged=len(judged), unjudged=len(unjudged), created=time.time())
    if split == "heldout":
        order.reason = (
            "The held-out split keeps the project order: it measures the reward model, and "
            "choosing it by the model would bias that measurement."
        )
        return order
    if len(judged) < min_judged:
        order.reason = (
            f"The informative order starts once {min_judged} prompts are judged "
            f"({len(judged)} so far); until then the queue keeps the project order."
        )
        order.seconds = time.monotonic() - t0
        return order
    if not unjudged:
        order.reason = "Every prompt in the queue is judged."
        order.seconds = time.monotonic() - t0
        return order
    pool = list(unjudged)
    if len(pool) > pool_size:
        pool = sorted(random.Random(f"{seed}:{len(judged)}").sample(pool, pool_size))
    train_ids = sorted(judged)
    total = len(train_ids) + len(pool)
    featurizer = Featurizer()
    table = yield from _load_table(project, train_ids + pool, featurizer, cancel, total)
    yield Progress(total // 2, total, "fitting the queue model")
    X = table.matrix()
    groups = _groups(table, judged)
    ensemble = fit_ensemble(X, groups, members=members, seed=seed, cancel=cancel)
    with cache._lock:
        cache.queue = (featurizer, ensemble, set(train_ids))
    cancel.raise_if_cancelled()
    yield Progress(total - len(pool) // 4, total, "scoring unjudged prompts")
    all_scores = ensemble.scores(X)  # [members, rows]
    per_prompt = {pid: all_scores[:, table.rows[pid]] for pid in pool}
    values = np.zeros(len(pool))
    for i, pid in enumerate(pool):
        values[i] = informativeness(per_prompt[pid], _local_copies(table, pid), margin_weight)
        if i % 32 == 0:
            _let_others_run(cancel)

    run_id = latest_reward_run(project) if use_reward_run else None
    if run_id is not None and reward_pool > 0:
        top = [pool[i] for i in np.argsort(-values, kind="stable")[:reward_pool]]
        yield Progress(total - len(pool) // 8, total, "scoring with the reward model")
        try:
            rm = _reward_scores(project, cache, run_id, top, cancel)
        except UserError:
            rm, run_id = {}, None  # its base model folder moved: the quick ensemble alone
        index = {pid: i for i, pid in enumerate(pool)}
        for pid, by_rid in rm.items():
            row = np.array([by_rid.get(r, 0.0) for r in table.ids[pid]])
            scores = np.vstack([per_prompt[pid], row[None, :]])
            values[index[pid]] = informativeness(scores, _local_copies(table, pid), margin_weight)
        order.reward_run = run_id
    vectors = _prompt_vectors(table, pool, featurizer)
    ranked = diverse_order(values, vectors, diversity)
    order.prompt_ids = [pool[i] for i in ranked]
    order.scores = [round(float(values[i]), 4) for i in ranked]
    if heldout:  # all prompts: held-out ones keep their project order, interleaved at their share
        order.prompt_ids, order.scores = _interleave(
            order.prompt_ids, order.scores, heldout, len(heldout) / (len(heldout) + len(unjudged))
        )
    order.pool = len(pool)
    order.members = len(ensemble.weights) + (1 if order.reward_run is not None else 0)
    order.seconds = time.monotonic() - t0
    if store:
        project.set_setting(QUEUE_SETTING, order.to_json())
    yield Progress(total, total, "done")
    return order


def _interleave(ids: list[int], scores: list[float], heldout: list[int], share: float):
    out_ids, out_scores, h = [], [], 0
    for k, (pid, v) in enumerate(zip(ids, scores)):
        while h < len(heldout) and h < share * len(out_ids):
            out_ids.append(heldout[h])
            out_scores.append(0.0)
            h += 1
        out_ids.append(pid)
        out_scores.append(v)
    return out_ids + heldout[h:], out_scores + [0.0] * (len(heldout) - h)


def _local_copies(table: _Table, pid: int) -> list[tuple[int, int]]:
    """Duplicate pairs of a prompt as local candidate indices."""
    local = {rid: i for i, rid in enumerate(table.ids[pid])}
    return [tuple(local[r] for r in pair) for pair in table.copies.get(pid, ()) if all(r in local for r in pair)]


# ---- assisted review ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """What a model thinks of one of the expert's judgments (never computed for an unjudged prompt)."""

    judgment_id: int
    prompt_id: int
    kind: str
    scores: dict[int, float]
    """Response id -> the model's score (logits: sigmoid(a - b) = P(a beats b))."""
    pairs: int
    """Pairs the judgment implies."""
    disagreement: float
    """Mean over those pairs of the model's probability that the expert's loser is the better one."""
    flipped: int
    """Pairs the model orders the other way."""
    expert_top: tuple[int, ...]
    """The expert's best response(s)."""
    source: str
    """"queue model" or "reward model run N"."""

    @property
    def model_order(self) -> list[int]:
        return sorted(self.scores, key=lambda r: -self.scores[r])

    @property
    def model_top(self) -> int:
        return self.model_order[0]

    @property
    def top_differs(self) -> bool:
        """The model's best is not among the expert's best."""
        return bool(self.expert_top) and self.model_top not in self.expert_top

    @property
    def disagrees(self) -> bool:
        return self.top_differs or self.disagreement > 0.5


def model_view(judgment, scores: dict[int, float], source: str) -> Optional[ModelView]:
    """The model's view of a judgment from its scores of the candidates (None without pairs)."""
    from core.training import pairs as P

    if judgment.kind == "ranking":
        pairs = P.pairs_from_ranking(judgment.tiers)
        top = tuple(judgment.tiers[0]) if judgment.tiers else ()
    elif judgment.kind == "pairwise":
        pairs = P.pairs_from_pairwise(judgment.a, judgment.b, judgment.choice)
        top = (pairs[0][0],) if pairs else ()
    elif judgment.kind == "rating":
        pairs = P.pairs_from_ratings(judgment.ratings)
        best = max(judgment.ratings.values()) if judgment.ratings else None
        top = tuple(r for r, v in judgment.ratings.items() if v == best) if pairs else ()
    else:
        return None
    pairs = [(w, l) for w, l, _ in pairs if w in scores and l in scores]
    if not pairs:
        return None
    probs = [1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, scores[l] - scores[w])))) for w, l in pairs]
    shown = {r: scores[r] for r in scores if judgment.kind != "pairwise" or r in (judgment.a, judgment.b)}
    return ModelView(
        judgment.id,
        judgment.prompt_id,
        judgment.kind,
        shown,
        len(pairs),
        float(sum(probs) / len(probs)),
        sum(1 for w, l in pairs if scores[l] > scores[w]),
        top,
        source,
    )


def _queue_scores(
    project, featurizer: Featurizer, weights: np.ndarray, pids: Sequence[int]
) -> dict[int, dict[int, float]]:
    table = _Table(featurizer)
    for pid in pids:
        responses, quality = _candidates(project, pid)
        table.add(pid, project.prompt(pid).prompt, responses, quality)
    X = table.matrix()
    s = X.scores(weights)
    return {pid: {rid: float(s[row]) for rid, row in zip(table.ids[pid], table.rows[pid])} for pid in pids}


def _fit_queue(project, exclude: Sequence[int], cancel: CancelToken, members: int = 1):
    judged = {pid: p for pid, p in _judged_rows(project, None, exclude=exclude).items() if p}
    if len(judged) < MIN_JUDGED:
        return None
    featurizer = Featurizer()
    table = run_job(_load_table(project, sorted(judged), featurizer, cancel))
    ensemble = fit_ensemble(table.matrix(), _groups(table, judged), members=members)
    return featurizer, ensemble, set(judged)


def explain_judgment(
    project, judgment_id: int, *, source: str = "queue", cache: Optional[ModelCache] = None, cancel: CancelToken = NEVER
) -> Iterator[Progress]:
    """Job: the model's view of one submitted judgment (`ModelView`, or None when there is no model
    yet or the judgment implies no pair). source "queue": a queue model that never saw this prompt's
    judgment (the last refresh's, when it did not; else one fit now without it); "reward": the latest
    reward-model run."""
    cache = cache or ModelCache()
    judgment = project.judgment(judgment_id)  # UserError when unknown
    if judgment.status != "current" or judgment.kind == "skip":
        return None
    yield Progress(0, 1, "asking the model")
    pid = judgment.prompt_id
    if source == "reward":
        run_id = latest_reward_run(project)
        if run_id is None:
            return None
        scores = _reward_scores(project, cache, run_id, [pid], cancel).get(pid, {})
        label = f"reward model run {run_id}"
    elif source == "queue":
        with cache._lock:
            fitted = cache.queue
        judged_now = project.db.execute(
            "SELECT count(DISTINCT prompt_id) FROM judgments WHERE status='current' AND purpose='annotation' "
            "AND kind!='skip'"
        ).fetchone()[0]
        stale = fitted is not None and judged_now > 1.25 * len(fitted[2]) + 10  # refit as the judgments grow
        if fitted is None or pid in fitted[2] or stale:
            fitted = _fit_queue(project, [pid], cancel)
            if fitted is None:
                return None
            with cache._lock:
                cache.queue = fitted
        featurizer, ensemble, _ = fitted
        scores = _queue_scores(project, featurizer, ensemble.weights[0], [pid])[pid]
        label = "queue model"
    else:
        raise UserError(f"Unknown model source {source!r}; use queue or reward.")
    yield Progress(1, 1, "done")
    return model_view(judgment, scores, label)


def review_list(
    project,
    *,
    source: str = "queue",
    folds: int = 5,
    limit: Optional[int] = 100,
    cache: Optional[ModelCache] = None,
    cancel: CancelToken = NEVER,
) -> Iterator[Progress]:
    """Job: the expert's current judgments the model disagrees with most (`ModelView`s, most
    disagreement first; at most `limit`). source "queue": each judgment is scored by a queue model fit
    on the other `folds - 1` folds of prompts (it never saw the judgment it scores); "reward": the
    latest reward-model run (it trained on the train split's judgments, so it is lenient there)."""
    cache = cache or ModelCache()
    judgments = [j for j in project.judgments(purpose="annotation") if j.kind != "skip"]
    by_prompt: dict[int, Any] = {}
    for j in judgments:
        by_prompt.setdefault(j.prompt_id, []).append(j)
    pids = sorted(by_prompt)
    yield Progress(0, len(pids), "reviewing judgments")
    scores: dict[int, dict[int, float]] = {}
    if source == "reward":
        run_id = latest_reward_run(project)
        if run_id is None:
            return []
        scores = _reward_scores(project, cache, run_id, pids, cancel)
        label = f"reward model run {run_id}"
    elif source == "queue":
        label = "queue model"
        all_pairs = {pid: p for pid, p in _judged_rows(project, None, limit=len(pids) + 1).items() if p}
        if len(all_pairs) < MIN_JUDGED:
            return []
        featurizer = Featurizer()
        table = yield from _load_table(project, pids, featurizer, cancel, message="reviewing judgments")
        X = table.matrix()
        rng = random.Random(0)
        fold_of = {pid: rng.randrange(folds) for pid in pids}
        for f in range(folds):
            cancel.raise_if_cancelled()
            train = {pid: p for pid, p in all_pairs.items() if fold_of[pid] != f}
            w = fit(X, _groups(table, train))
            s = X.scores(w)
            for pid in pids:
                if fold_of[pid] == f:
                    scores[pid] = {rid: float(s[row]) for rid, row in zip(table.ids[pid], table.rows[pid])}
            yield Progress(int(len(pids) * (f + 1) / folds), len(pids), "reviewing judgments")
    else:
        raise UserError(f"Unknown model source {source!r}; use queue or reward.")
    views = []
    for pid in pids:
        for j in by_prompt[pid]:
            v = model_view(j, scores.get(pid, {}), label)
            if v is not None:
                views.append(v)
    views.sort(key=lambda v: (-v.disagreement, -v.flipped, v.judgment_id))
    yield Progress(len(pids), len(pids), "done")
    return views[:limit] if limit else views
