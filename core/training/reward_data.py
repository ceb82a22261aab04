"""Reward model data: prompts with their judged responses and pairs, their encoding, batches and the order
of the training steps.

Pairs come from `core.training.pairs` (via `project.preference_pairs()`); a step takes a set of prompts with
ALL their judged responses (`PromptExample`), scores each response once, and forms all of that prompt's pairs
from those scores (InstructGPT). Train/validation split by prompt; prompts of the "heldout" split are never
trained on (only scored). Ids only until `tokenize`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from core.errors import UserError
from core.training.reward_config import RewardConfig

__all__ = [
    "PromptExample",
    "RewardData",
    "Batch",
    "split_by_prompt",
    "data_snapshot_hash",
    "collect_data",
    "encode_pair",
    "encode_scored",
    "tokenize",
    "collate",
    "steps_per_epoch",
    "total_steps",
    "step_examples",
    "with_off_topic_contrasts",
]


# ----------------------------------------------------------------------------------------------------
# Prompts with their judged responses and pairs (ids only until tokenized)
# ----------------------------------------------------------------------------------------------------
@dataclass
class PromptExample:
    """One prompt, the responses that appear in its pairs, and its pairs as local indices."""

    prompt_id: int
    response_ids: list[int]
    pairs: list[tuple[int, int, float]]
    """(winner index, loser index, margin) into response_ids."""
    tokens: list[list[int]] = field(default_factory=list)
    """Token ids of prompt+response+EOS per response, filled by `tokenize`."""
    starts: list[int] = field(default_factory=list)
    """Index in each token list where the response begins (0 when unknown: the whole sequence)."""


@dataclass
class RewardData:
    train: list[PromptExample]
    val: list[PromptExample]
    heldout: list[PromptExample]
    snapshot_hash: str

    @property
    def n_pairs(self) -> int:
        return sum(len(e.pairs) for e in self.train + self.val)

    def ids(self) -> dict:
        """JSON-able description (ids and margins only) to rebuild the same data on resume."""

        def rows(exs):
            return [[e.prompt_id, e.response_ids, [list(p) for p in e.pairs]] for e in exs]

        return {
            "train": rows(self.train),
            "val": rows(self.val),
            "heldout": rows(self.heldout),
            "snapshot_hash": self.snapshot_hash,
        }

    @classmethod
    def from_ids(cls, d: dict) -> "RewardData":
        def exs(rows):
            return [
                PromptExample(pid, list(rids), [(int(w), int(l), float(m)) for w, l, m in pairs])
                for pid, rids, pairs in rows
            ]

        return cls(exs(d["train"]), exs(d["val"]), exs(d["heldout"]), d["snapshot_hash"])


def split_by_prompt(prompt_ids: Sequence[int], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Whole prompts to train or validation (never both); at least one of each when there are two."""
    ids = sorted(set(prompt_ids))
    random.Random(seed).shuffle(ids)
    if len(ids) < 2:
        return ids, []
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    return sorted(ids[n_val:]), sorted(ids[:n_val])


def _examples(grouped: dict[int, list[tuple[int, int, float]]], prompt_ids: Iterable[int]) -> list[PromptExample]:
    out = []
    for pid in prompt_ids:
        rids: list[int] = []
        index: dict[int, int] = {}
        local = []
        for w, l, m in grouped[pid]:
            for r in (w, l):
                if r not in index:
                    index[r] = len(rids)
                    rids.append(r)
            local.append((index[w], index[l], float(m)))
        out.append(PromptExample(pid, rids, local))
    return out


def data_snapshot_hash(judgment_ids: Iterable[int], pairs: Iterable[tuple[int, int, int, float]]) -> str:
    """Plain SHA-256 over ids and margins only (never text): which judgments and pairs a run saw."""
    payload = {
        "judgments": sorted(int(j) for j in judgment_ids),
        "pairs": sorted([int(p), int(w), int(l), float(m)] for p, w, l, m in pairs),
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def collect_data(proj, config: RewardConfig) -> RewardData:
    """Pairs from the project's current judgments, split by prompt; heldout-split prompts kept apart."""
    rows = [
        (p.prompt_id, p.chosen_id, p.rejected_id, float(p.margin) * config.margin_scale)
        for p in proj.preference_pairs(margin_mode=config.margin_mode)
    ]
    grouped: dict[int, list[tuple[int, int, float]]] = {}
    for p, w, l, m in rows:
        grouped.setdefault(p, []).append((w, l, m))
    split_of = {p.id: p.split for p in proj.prompts()}
    heldout_ids = sorted(p for p in grouped if split_of.get(p) == "heldout")
    train_ids, val_ids = split_by_prompt(
        [p for p in grouped if split_of.get(p) != "heldout"], config.val_fraction, config.seed
    )
    judgment_ids = [j.id for j in proj.judgments(purpose="annotation")]
    return RewardData(
        _examples(grouped, train_ids),
        _examples(grouped, val_ids),
        _examples(grouped, heldout_ids),
        data_snapshot_hash(judgment_ids, rows),
    )


def encode_pair(tokenizer, prompt, response: str, max_length: int) -> list[int]:
    """Token ids of prompt+response ending with EOS (see `encode_scored`)."""
    return encode_scored(tokenizer, prompt, response, max_length)[0]


def encode_scored(tokenizer, prompt, response: str, max_length: int) -> tuple[list[int], int]:
    """(token ids of prompt+response ending with EOS, index where the response begins).

    The prompt is formatted exactly as the policy sees it (`core.models.loading.format_prompt`), so the
    reward model scores the policy's own token stream. Too long: keep the end, where the response and the
    EOS are. The start comes from the formatted prompt's own token count (a merge across the boundary can
    shift it by a token, which the mean over the response hardly notices).
    """
    from core.models.loading import format_prompt

    templated = isinstance(prompt, list) or bool(getattr(tokenizer, "chat_template", None))
    prefix = format_prompt(tokenizer, prompt)
    ids = tokenizer(prefix + response, add_special_tokens=not templated)["input_ids"]
    start = len(tokenizer(prefix, add_special_tokens=not templated)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids = ids + [tokenizer.eos_token_id]
    start = min(start, len(ids) - 1)  # at least the EOS counts as response
    cut = max(0, len(ids) - max_length)
    return ids[cut:], max(0, start - cut)


def tokenize(proj, tokenizer, examples: Iterable[PromptExample], max_length: int) -> None:
    for ex in examples:
        prompt = proj.prompt(ex.prompt_id).prompt
        texts = {r.id: r.text for r in proj.responses(ex.prompt_id)}
        missing = [r for r in ex.response_ids if r not in texts]
        if missing:
            raise UserError(f"response {missing[0]} of prompt {ex.prompt_id} is no longer in the project")
        encoded = [encode_scored(tokenizer, prompt, texts[r], max_length) for r in ex.response_ids]
        ex.tokens = [ids for ids, _ in encoded]
        ex.starts = [start for _, start in encoded]


# ----------------------------------------------------------------------------------------------------
# Batches: several prompts' responses padded together
# ----------------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """Several prompts' responses padded together, and their pairs as indices into the rows."""

    input_ids: torch.Tensor  # [N, T]
    attention_mask: torch.Tensor  # [N, T]
    starts: torch.Tensor  # [N] where each response begins (attended-token index; 0 when unknown)
    winners: torch.Tensor  # [P]
    losers: torch.Tensor  # [P]
    margins: torch.Tensor  # [P]
    groups: torch.Tensor  # [P] prompt index within the batch
    n_prompts: int
    n_tokens: int

    @property
    def n_pairs(self) -> int:
        return int(self.winners.shape[0])


def collate(examples: Sequence[PromptExample], pad_id: int, device, padding_side: str = "right") -> Batch:
    seqs: list[list[int]] = []
    starts: list[int] = []
    w, l, m, g = [], [], [], []
    for gi, ex in enumerate(examples):
        base = len(seqs)
        seqs.extend(ex.tokens)
        starts.extend(ex.starts if len(ex.starts) == len(ex.tokens) else [0] * len(ex.tokens))
        for wi, li, mi in ex.pairs:
            w.append(base + wi)
            l.append(base + li)
            m.append(mi)
            g.append(gi)
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        if padding_side == "right":
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        else:
            ids[i, T - len(s) :] = torch.tensor(s)
            mask[i, T - len(s) :] = 1
    nb = device.type == "cuda"
    return Batch(
        ids.to(device, non_blocking=nb),
        mask.to(device, non_blocking=nb),
        torch.tensor(starts, dtype=torch.long).to(device),
        torch.tensor(w, dtype=torch.long).to(device),
        torch.tensor(l, dtype=torch.long).to(device),
        torch.tensor(m, dtype=torch.float32).to(device),
        torch.tensor(g, dtype=torch.long).to(device),
        len(examples),
        sum(len(s) for s in seqs),
    )


# ----------------------------------------------------------------------------------------------------
# Steps: how many, and which prompts each one takes
# ----------------------------------------------------------------------------------------------------
def steps_per_epoch(n_prompts: int, config: RewardConfig) -> int:
    return max(1, math.ceil(n_prompts / config.prompts_per_step))


def total_steps(n_prompts: int, config: RewardConfig) -> int:
    if config.max_steps > 0:
        return config.max_steps
    return max(1, math.ceil(config.epochs * steps_per_epoch(n_prompts, config)))


def step_examples(train: Sequence[PromptExample], step: int, config: RewardConfig) -> list[list[PromptExample]]:
    """The micro-batches of optimizer step `step`: a deterministic function of (seed, step), so a resumed
    run sees exactly the data it would have seen."""
    spe = steps_per_epoch(len(train), config)
    epoch, index = divmod(step, spe)
    order = list(range(len(train)))
    random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
    chosen = order[index * config.prompts_per_step : (index + 1) * config.prompts_per_step]
    size = config.prompts_per_micro_batch
    return [[train[i] for i in chosen[j : j + size]] for j in range(0, len(chosen), size)]


# ----------------------------------------------------------------------------------------------------
# Off-topic contrasts: a reply to another request is worse than the expert's best reply to this one
# ----------------------------------------------------------------------------------------------------
def _best_index(ex: PromptExample) -> int | None:
    """The response that wins at least one pair and loses none (the expert's first tier), if one exists."""
    losers = {l for _, l, _ in ex.pairs}
    winners = [w for w, _, _ in ex.pairs if w not in losers]
    return min(winners) if winners else None


def _words(text) -> set[str]:
    return set(str(text).lower().split())


def with_off_topic_contrasts(
    proj, tokenizer, train: Sequence[PromptExample], config: RewardConfig
) -> list[PromptExample]:
    """Copies of the tokenized training prompts, each with `config.off_topic_pairs` extra pairs: its best reply
    beats the best reply of an unrelated training prompt (the least word overlap among a few drawn by seed),
    scored under this prompt. The one assumption is that any expert prefers an answer to the request asked
    over an answer to a different request; it teaches the reward model to read the request at all, which
    a few hundred judged pairs of replies to the same request hardly do. Validation and held-out prompts
    never get these pairs, so their accuracy stays the expert's own."""
    n = config.off_topic_pairs
    if n <= 0 or len(train) < 3:
        return list(train)
    prompts = {ex.prompt_id: proj.prompt(ex.prompt_id).prompt for ex in train}
    words = {pid: _words(p) for pid, p in prompts.items()}
    best = {ex.prompt_id: _best_index(ex) for ex in train}
    donors = [ex for ex in train if best[ex.prompt_id] is not None]
    out = []
    for ex in train:
        top = best[ex.prompt_id]
        others = [d for d in donors if d.prompt_id != ex.prompt_id]
        if top is None or len(others) < n:
            out.append(ex)
            continue
        rng = random.Random(config.seed * 1_000_003 + ex.prompt_id)
        drawn = rng.sample(others, min(len(others), 4 * n))
        mine = words[ex.prompt_id]
        drawn.sort(key=lambda d: len(mine & words[d.prompt_id]) / max(1, len(mine | words[d.prompt_id])))
        tokens, starts, pairs = list(ex.tokens), list(ex.starts), list(ex.pairs)
        for donor in drawn[:n]:
            texts = {r.id: r.text for r in proj.responses(donor.prompt_id)}
            ids, start = encode_scored(
                tokenizer, prompts[ex.prompt_id], texts[donor.response_ids[best[donor.prompt_id]]], config.max_length
            )
            pairs.append((top, len(tokens), 0.0))
            tokens.append(ids)
            starts.append(start)
        out.append(PromptExample(ex.prompt_id, ex.response_ids, pairs, tokens, starts))
    return out
