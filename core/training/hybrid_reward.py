"""Rewards for policy training: the reward model (normalised) plus automatic terms the expert switches on.

A reward is any callable `fn(batch: RewardBatch)` that returns either a sequence of floats (B,) or a
`(total, parts)` pair where parts maps a metric name (`reward/length`...) to (B,) values. Tests pass
plain rule functions; the job builds a `HybridReward`. Every part is logged separately, so the expert can
see which term moved.

ROUGE-L and BLEU are small hand-written implementations (whitespace tokens): about 40 lines here instead
of a new dependency (rouge-score pulls nltk; sacrebleu pulls more) for a reward term.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where used: the CLI reads configs without loading it
    import torch


@dataclass
class RewardBatch:
    prompts: list  # str or chat message lists; user text, never logged
    responses: list[str]
    response_ids: list[list[int]]  # the response tokens up to and including EOS
    references: list[Optional[str]]  # a prompt's gold answer, when it has one
    has_eos: list[bool] = field(default_factory=list)


RewardFn = Callable[[RewardBatch], Any]


def score(fn: RewardFn, batch: RewardBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Call any reward and normalise its answer to (total (B,), {name: (B,)})."""
    out = fn(batch)
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        total, parts = out
    else:
        total, parts = out, {}
    import torch

    total = torch.as_tensor(total, dtype=torch.float32).reshape(-1).cpu()
    parts = {k: torch.as_tensor(v, dtype=torch.float32).reshape(-1).cpu() for k, v in parts.items()}
    if total.numel() != len(batch.responses):
        raise ValueError(f"reward returned {total.numel()} values for {len(batch.responses)} responses")
    return total, parts


# --------------------------------------------------------------------------------------------------
# Automatic terms, each (B,) with no weight applied
# --------------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def length_term(responses: Sequence[str], target: Optional[int], *, per_word: float = 0.0) -> list[float]:
    """-|words - target| / target with a target, else -per_word * words (a plain length penalty)."""
    out = []
    for r in responses:
        n = len(r.split())
        out.append(-abs(n - target) / max(1, target) if target else -per_word * n)
    return out


def pattern_term(
    responses: Sequence[str], required: Sequence[str], forbidden: Sequence[str], regex: bool = False
) -> list[float]:
    """+1 for each required word/pattern present, -1 for each forbidden one, averaged over the rules."""

    def found(p: str, text: str) -> bool:
        if regex:
            return re.search(p, text, flags=re.IGNORECASE) is not None
        return re.search(r"\b" + re.escape(p.lower()) + r"\b", text.lower()) is not None

    n_rules = max(1, len(required) + len(forbidden))
    return [(sum(found(p, r) for p in required) - sum(found(p, r) for p in forbidden)) / n_rules for r in responses]


def repetition_term(responses: Sequence[str], n: int = 3) -> list[float]:
    """Minus the share of repeated word n-grams (0 for text with no repeats, towards -1 for loops)."""
    out = []
    for r in responses:
        toks = _words(r)
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        out.append(-(1.0 - len(set(grams)) / len(grams)) if grams else 0.0)
    return out


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over word tokens (longest common subsequence)."""
    c, r = _words(candidate), _words(reference)
    if not c or not r:
        return 0.0
    prev = [0] * (len(r) + 1)
    for tc in c:
        cur = [0] * (len(r) + 1)
        for j, tr in enumerate(r, 1):
            cur[j] = prev[j - 1] + 1 if tc == tr else max(prev[j], cur[j - 1])
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return 2 * p * rec / (p + rec)


def bleu(candidate: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU with add-one smoothing for n > 1 (Lin & Och 2004) and the brevity penalty."""
    c, r = _words(candidate), _words(reference)
    if not c or not r:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        cg = Counter(tuple(c[i : i + n]) for i in range(len(c) - n + 1))
        rg = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
        match, total = sum((cg & rg).values()), max(0, len(c) - n + 1)
        if n > 1:
            match, total = match + 1, total + 1
        if match == 0 or total == 0:
            return 0.0
        log_p += math.log(match / total) / max_n
    bp = 1.0 if len(c) > len(r) else math.exp(1 - len(r) / len(c))
    return bp * math.exp(log_p)


# --------------------------------------------------------------------------------------------------
# The hybrid reward
# --------------------------------------------------------------------------------------------------


@dataclass
class HybridRewardConfig:
    model_weight: float = 1.0
    """Weight of the (normalised) reward-model score."""
    length_weight: float = 0.0
    """Weight of the length term (0 = off)."""
    length_target: Optional[int] = None
    """Target length in words; None makes the length term a plain per-word penalty."""
    length_per_word: float = 0.01
    """Penalty per word when there is no target."""
    pattern_weight: float = 0.0
    """Weight of the required/forbidden words term (0 = off)."""
    required: list[str] = field(default_factory=list)
    """Words (or regexes) a good response contains."""
    forbidden: list[str] = field(default_factory=list)
    """Words (or regexes) a good response avoids."""
    patterns_are_regex: bool = False
    """Treat required/forbidden as regular expressions rather than whole words."""
    repetition_weight: float = 0.0
    """Weight of the repeated-trigram penalty (0 = off)."""
    rouge_weight: float = 0.0
    """Weight of ROUGE-L F1 against the prompt's reference answer, when it has one."""
    bleu_weight: float = 0.0
    """Weight of sentence BLEU against the prompt's reference answer, when it has one."""


class HybridReward:
    """total = w_model * normalised RM score + sum of weighted automatic terms; parts logged apart.

    `model_fn(batch) -> (B,)` is the reward model's scorer (or None); `scale` divides its score so the
    weights mean the same whatever the reward model's raw scale (the reward run records its std).
    """

    def __init__(
        self,
        config: HybridRewardConfig,
        model_fn: Optional[RewardFn] = None,
        model_scale: float = 1.0,
        model_shift: float = 0.0,
    ):
        if model_fn is None and not self._any_auto(config):
            raise ValueError("a reward needs the reward model or at least one automatic term")
        self.config, self.model_fn = config, model_fn
        self.scale, self.shift = max(model_scale, 1e-6), model_shift

    @staticmethod
    def _any_auto(c: HybridRewardConfig) -> bool:
        return any(w for w in (c.length_weight, c.pattern_weight, c.repetition_weight, c.rouge_weight, c.bleu_weight))

    def __call__(self, batch: RewardBatch):
        c, B = self.config, len(batch.responses)
        import torch

        parts: dict[str, torch.Tensor] = {}
        total = torch.zeros(B)
        terms = []
        if self.model_fn is not None and c.model_weight:
            raw, _ = score(self.model_fn, batch)
            terms.append(("model", c.model_weight, (raw - self.shift) / self.scale))
        if c.length_weight:
            terms.append(
                ("length", c.length_weight, length_term(batch.responses, c.length_target, per_word=c.length_per_word))
            )
        if c.pattern_weight:
            terms.append(
                (
                    "patterns",
                    c.pattern_weight,
                    pattern_term(batch.responses, c.required, c.forbidden, c.patterns_are_regex),
                )
            )
        if c.repetition_weight:
            terms.append(("repetition", c.repetition_weight, repetition_term(batch.responses)))
        for name, weight, metric in (("rouge", c.rouge_weight, rouge_l), ("bleu", c.bleu_weight, bleu)):
            if weight:  # prompts without a reference get 0, so they are neither helped nor hurt
                terms.append(
                    (
                        name,
                        weight,
                        [metric(r, ref) if ref else 0.0 for r, ref in zip(batch.responses, batch.references)],
                    )
                )
        for name, weight, values in terms:
            values = torch.as_tensor(values, dtype=torch.float32)
            parts[f"reward/{name}"] = values
            total = total + weight * values
        return total, parts
