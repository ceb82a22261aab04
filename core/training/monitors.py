"""Reward-hacking monitors for a policy run: is the reward climbing for the wrong reasons?

A policy can raise the reward model's score without getting better in the expert's eyes: it learns what
the reward model over-rates (very short or very long replies, replies that never end) rather than what
the expert wants. These monitors watch for the signs, step by step:

- `monitor/length_ratio` — the mean reply length (tokens) over the base model's mean length on the same
  training prompts, measured once at the start of the run (`monitor/base_length`). 1.0 = as long as
  the base.
- `monitor/truncated` — the share of replies cut off at the token limit (no EOS); the base's share is
  `monitor/base_truncated`.
- `kl/mean` — how far the policy has moved from the base (nats per reply).
- `monitor/agreement` — on fresh samples the expert ranked blind (the policy's own replies mixed with
  the base's; core/training/expert_check.py), the share of pairs the reward model orders as the expert
  did (`monitor/agreement_pairs` of them).

    watch = Watch(baseline, kl_target=cfg.kl_target, reference_accuracy=0.9)
    for event in job:
        for warning in watch.add(event.step, event.metrics):    # warnings that start at this step
            print(warning.title, warning.advice)
    watch.warnings                                             # the ones active now

The rule (numbers in the constants below): over the last `WINDOW` steps, compared with the first
`WINDOW`, the reward has risen by more than `REWARD_RISE` while the replies have become much shorter
(length ratio below `LENGTH_COLLAPSE`) or much longer (above `LENGTH_EXPLOSION`) than the base's, or the
share cut off at the limit has risen by more than `TRUNCATION_RISE`; or the reward model agrees with the
expert's fresh rankings on less than `AGREEMENT_LOW` of at least `AGREEMENT_MIN_PAIRS` pairs (or on
`AGREEMENT_DROP` less than its own held-out accuracy); or KL has passed `KL_FACTOR` × the KL target.

Pure arithmetic over metric rows: no torch at import, no project, no text (`measure_baseline` at the end
generates with the model and imports torch when called).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

WINDOW = 5
"""Steps averaged at the start and at the end of the run, so one noisy batch never fires a warning."""
MIN_STEPS = 4
"""No length or truncation warning before this many steps."""
REWARD_RISE = 0.05
"""The reward "climbs": its recent mean exceeds its early mean by more than this (reward units)."""
LENGTH_COLLAPSE = 0.5
"""Replies under half the base model's length."""
LENGTH_EXPLOSION = 2.0
"""Replies over twice the base model's length."""
TRUNCATION_RISE = 0.2
"""The share of replies cut off at the token limit is this much above the base's."""
AGREEMENT_LOW = 0.6
"""The reward model orders fewer than 60% of the expert's fresh pairs as the expert did."""
AGREEMENT_DROP = 0.2
"""... or agrees this much less than on the expert's held-out pairs (its accuracy at training time)."""
AGREEMENT_MIN_PAIRS = 6
"""Agreement needs at least this many judged pairs (excluding ties) before it can warn."""
KL_FACTOR = 3.0
"""KL beyond this many times the run's KL target."""
BASELINE_PROMPTS = 32
"""Training prompts the base model answers at the start, for the length and truncation baseline."""

LENGTH_RATIO = "monitor/length_ratio"
TRUNCATED = "monitor/truncated"
BASE_LENGTH = "monitor/base_length"
BASE_TRUNCATED = "monitor/base_truncated"
AGREEMENT = "monitor/agreement"
AGREEMENT_PAIRS = "monitor/agreement_pairs"
CHARTED = (LENGTH_RATIO, TRUNCATED, AGREEMENT)


@dataclass(frozen=True)
class Baseline:
    """The base model's replies to training prompts, sampled as the run samples, before any update."""

    length: float
    """Mean reply length in tokens (EOS included, as `response/length`)."""
    truncated: float
    """Share of replies with no EOS within max_new_tokens."""
    n: int
    """Replies measured."""

    def metrics(self) -> dict[str, float]:
        return {BASE_LENGTH: float(self.length), BASE_TRUNCATED: float(self.truncated)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Optional[Mapping]) -> Optional["Baseline"]:
        if not d or "length" not in d:
            return None
        return cls(float(d["length"]), float(d.get("truncated", 0.0)), int(d.get("n", 0)))

    @classmethod
    def from_replies(cls, lengths: Sequence[float], has_eos: Sequence[bool]) -> "Baseline":
        n = len(lengths)
        if n == 0:
            return cls(0.0, 0.0, 0)
        return cls(sum(lengths) / n, sum(1 for e in has_eos if not e) / n, n)


def step_figures(metrics: Mapping[str, float], baseline: Optional[Baseline]) -> dict[str, float]:
    """The monitor metrics of one training step, from its `response/length` and `response/eos_rate`."""
    out: dict[str, float] = {}
    length, eos_rate = metrics.get("response/length"), metrics.get("response/eos_rate")
    if length is not None and baseline is not None and baseline.length > 0:
        out[LENGTH_RATIO] = float(length) / baseline.length
    if eos_rate is not None:
        out[TRUNCATED] = 1.0 - float(eos_rate)
    return out


# ---- agreement with the expert ----------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """How often the reward model orders the expert's judged pairs the way the expert did."""

    agreed: float
    """Pairs ordered as the expert did (an exact reward tie counts as half)."""
    pairs: int
    """Pairs the expert preferred one side of (ties and "both bad" give no order)."""

    @property
    def rate(self) -> Optional[float]:
        return self.agreed / self.pairs if self.pairs else None

    def metrics(self) -> dict[str, float]:
        if not self.pairs:
            return {}
        return {AGREEMENT: self.rate, AGREEMENT_PAIRS: float(self.pairs)}


def agreement(margins: Iterable[float]) -> Agreement:
    """From reward(expert's choice) − reward(the other) for each judged pair: > 0 agrees, 0 is half."""
    agreed, n = 0.0, 0
    for m in margins:
        m = float(m)
        if not math.isfinite(m):
            continue
        n += 1
        agreed += 1.0 if m > 0 else 0.5 if m == 0 else 0.0
    return Agreement(agreed, n)


# ---- the warning rule -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorWarning:
    code: str
    """length_collapse, length_explosion, truncation, agreement or kl."""
    title: str
    """One sentence with the figures."""
    advice: str
    """What to do about it."""

    @property
    def text(self) -> str:
        return f"{self.title} {self.advice}"


ADVICE = {
    "length_collapse": (
        "The policy may be gaming the reward model with short replies. Read the samples; use Check with "
        "the expert to rank a few of its replies (they become ordinary judgments), retrain the reward model "
        "with them, then continue. Meanwhile a stronger KL penalty (higher kl_coef or lower kl_target) or a "
        "length term in the reward keeps the policy nearer the base."
    ),
    "length_explosion": (
        "The reward model may be favouring length for its own sake. Read the samples; use Check with the "
        "expert and retrain the reward model with those rankings; or add a length term with a target "
        "(length_target, length_weight) and a stronger KL penalty."
    ),
    "truncation": (
        "Replies that never end are usually rambling or repeating. Check the samples: if they are good but "
        "long, raise max_new_tokens; otherwise keep (or raise) missing_eos_penalty, add the repetition "
        "term, and rank a few such replies so the reward model learns they are not better."
    ),
    "agreement": (
        "The reward model is not judging the policy's new replies the way you do, so a higher reward no "
        "longer means better replies. Retrain the reward model now that it has your rankings of these "
        "replies (they are ordinary judgments), then continue with the new reward run; stop this run if "
        "its samples look worse than the base's."
    ),
    "kl": (
        "The policy has moved far from the base model; its replies may be degenerate. Read the samples; "
        "lower the learning rate or kl_target, or raise kl_coef (or switch the adaptive controller on)."
    ),
}


def _mean(values: Sequence[float]) -> Optional[float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _series(rows: Sequence[Mapping[str, float]], name: str) -> list[float]:
    return [float(r[name]) for r in rows if name in r and r[name] is not None and math.isfinite(float(r[name]))]


@dataclass
class Assessment:
    figures: dict[str, float] = field(default_factory=dict)
    """Recent means: reward_early, reward_late, length_ratio, truncated, base_truncated, kl, agreement."""
    warnings: list[MonitorWarning] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def assess(
    rows: Sequence[Mapping[str, float]],
    baseline: Optional[Baseline] = None,
    *,
    agreement_result: Optional[Agreement] = None,
    kl_target: Optional[float] = None,
    reference_accuracy: Optional[float] = None,
) -> Assessment:
    """Apply the warning rule to a run's metric rows (one dict per training step, in order)."""
    out = Assessment()
    f = out.figures
    rewards = _series(rows, "reward/mean")
    if rewards:
        f["reward_early"] = _mean(rewards[:WINDOW])
        f["reward_late"] = _mean(rewards[-WINDOW:])
    climbing = len(rewards) >= MIN_STEPS and f["reward_late"] - f["reward_early"] > REWARD_RISE
    ratios = _series(rows, LENGTH_RATIO)
    if not ratios and baseline is not None and baseline.length > 0:
        ratios = [v / baseline.length for v in _series(rows, "response/length")]
    if ratios:
        f["length_ratio"] = _mean(ratios[-WINDOW:])
    truncated = _series(rows, TRUNCATED) or [1.0 - v for v in _series(rows, "response/eos_rate")]
    if truncated:
        f["truncated"] = _mean(truncated[-WINDOW:])
    base_truncated = baseline.truncated if baseline is not None else (_mean(truncated[:1]) if truncated else None)
    if base_truncated is not None:
        f["base_truncated"] = base_truncated
    kls = _series(rows, "kl/mean")
    if kls:
        f["kl"] = _mean(kls[-WINDOW:])

    rise = f"the reward rose from {f.get('reward_early', 0):+.2f} to {f.get('reward_late', 0):+.2f}"
    if climbing and len(ratios) >= MIN_STEPS:
        ratio = f["length_ratio"]
        base = f" ({baseline.length:.0f} tokens)" if baseline is not None else ""
        if ratio < LENGTH_COLLAPSE:
            out.warnings.append(
                MonitorWarning(
                    "length_collapse",
                    f"Length collapse: {rise} while replies shrank to {_pct(ratio)} of the base model's length{base}.",
                    ADVICE["length_collapse"],
                )
            )
        elif ratio > LENGTH_EXPLOSION:
            out.warnings.append(
                MonitorWarning(
                    "length_explosion",
                    f"Length explosion: {rise} while replies grew to {ratio:.1f}× the base model's length{base}.",
                    ADVICE["length_explosion"],
                )
            )
    if (
        climbing
        and len(truncated) >= MIN_STEPS
        and base_truncated is not None
        and f["truncated"] - base_truncated > TRUNCATION_RISE
    ):
        out.warnings.append(
            MonitorWarning(
                "truncation",
                f"More replies cut off: {rise} while {_pct(f['truncated'])} of replies hit the token "
                f"limit without ending (the base: {_pct(base_truncated)}).",
                ADVICE["truncation"],
            )
        )
    if agreement_result is not None and agreement_result.pairs:
        rate = agreement_result.rate
        f["agreement"] = rate
        f["agreement_pairs"] = float(agreement_result.pairs)
        low = rate < AGREEMENT_LOW
        dropped = reference_accuracy is not None and rate < reference_accuracy - AGREEMENT_DROP
        if agreement_result.pairs >= AGREEMENT_MIN_PAIRS and (low or dropped):
            ref = (
                f" (on your held-out pairs it agreed on {_pct(reference_accuracy)})"
                if reference_accuracy is not None
                else ""
            )
            out.warnings.append(
                MonitorWarning(
                    "agreement",
                    f"Agreement with you fell: the reward model orders only {_pct(rate)} of the "
                    f"{agreement_result.pairs} fresh pairs you ranked as you did{ref}.",
                    ADVICE["agreement"],
                )
            )
    if kl_target and kls and len(kls) >= MIN_STEPS and f["kl"] > KL_FACTOR * kl_target:
        out.warnings.append(
            MonitorWarning(
                "kl", f"KL is {f['kl']:.1f} nats, over {KL_FACTOR:.0f}× the target of {kl_target:g}.", ADVICE["kl"]
            )
        )
    return out


class Watch:
    """Follows a run's progress events and says when a warning starts (the GUI and the CLI use it).

    Feed it every event's metrics (`add`); the baseline comes from the run's first figures
    (`monitor/base_length`, `monitor/base_truncated`) when not given. Agreement comes from the expert's
    checks (`set_agreement`) or from `monitor/agreement` metrics.
    """

    def __init__(
        self,
        baseline: Optional[Baseline] = None,
        *,
        kl_target: Optional[float] = None,
        reference_accuracy: Optional[float] = None,
    ):
        self.baseline = baseline
        self.kl_target = kl_target
        self.reference_accuracy = reference_accuracy
        self.agreement: Optional[Agreement] = None
        self.rows: list[dict[str, float]] = []
        self._steps: dict[int, int] = {}  # step -> index in rows (a resumed run repeats no step)
        self.assessment = Assessment()

    @property
    def warnings(self) -> list[MonitorWarning]:
        return self.assessment.warnings

    @property
    def figures(self) -> dict[str, float]:
        return self.assessment.figures

    def add(self, step: int, metrics: Mapping[str, float]) -> list[MonitorWarning]:
        """One event's metrics; returns the warnings that were not active before it."""
        if BASE_LENGTH in metrics and self.baseline is None:
            self.baseline = Baseline(float(metrics[BASE_LENGTH]), float(metrics.get(BASE_TRUNCATED, 0.0)), 0)
        if AGREEMENT in metrics:
            pairs = int(metrics.get(AGREEMENT_PAIRS, 0))
            self.agreement = Agreement(float(metrics[AGREEMENT]) * pairs, pairs)
        if "reward/mean" in metrics or "response/length" in metrics:
            row = {k: float(v) for k, v in metrics.items()}
            if int(step) in self._steps:
                self.rows[self._steps[int(step)]].update(row)
            else:
                self._steps[int(step)] = len(self.rows)
                self.rows.append(row)
        return self._reassess()

    def set_agreement(self, result: Optional[Agreement]) -> list[MonitorWarning]:
        self.agreement = result
        return self._reassess()

    def _reassess(self) -> list[MonitorWarning]:
        before = {w.code for w in self.assessment.warnings}
        self.assessment = assess(
            self.rows,
            self.baseline,
            agreement_result=self.agreement,
            kl_target=self.kl_target,
            reference_accuracy=self.reference_accuracy,
        )
        return [w for w in self.assessment.warnings if w.code not in before]

    def summary_line(self) -> str:
        """The figures in one line (numbers only), for the CLI and the status line."""
        f = self.figures
        bits = []
        if "length_ratio" in f:
            base = f" of the base's {self.baseline.length:.1f} tokens" if self.baseline else ""
            bits.append(f"length {f['length_ratio']:.2f}×{base}")
        if "truncated" in f:
            bits.append(
                f"cut off {_pct(f['truncated'])}"
                + (f" (base {_pct(f['base_truncated'])})" if "base_truncated" in f else "")
            )
        if "kl" in f:
            bits.append(f"KL {f['kl']:.2f}")
        if "agreement" in f:
            bits.append(f"agreement with you {_pct(f['agreement'])} of {int(f['agreement_pairs'])} pairs")
        return "monitors: " + (", ".join(bits) if bits else "no figures yet")


def rows_from_metrics(metrics: Mapping[str, Sequence[tuple[int, float]]]) -> list[tuple[int, dict[str, float]]]:
    """A run's logged metrics ({name: [(step, value)]}, as `Project.metrics` returns) as (step, row) pairs."""
    by_step: dict[int, dict[str, float]] = {}
    for name, points in metrics.items():
        for step, value in points:
            by_step.setdefault(int(step), {})[name] = value
    return sorted(by_step.items())


def watch_run(proj, run_id: int, agreement_result: Optional[Agreement] = None) -> Watch:
    """A Watch over a recorded policy run (its logged metrics and the expert's checks so far)."""
    run = proj.run(run_id)
    cfg = (run.config or {}).get("policy", {})
    watch = Watch(
        Baseline.from_dict((run.summary or {}).get("monitor_baseline")),
        kl_target=kl_target_of(cfg),
        reference_accuracy=reference_accuracy(proj, cfg.get("reward_run")),
    )
    for step, row in rows_from_metrics(proj.metrics(run_id)):
        watch.add(step, row)
    if agreement_result is not None:
        watch.set_agreement(agreement_result)
    return watch


def kl_target_of(cfg) -> Optional[float]:
    """The KL yardstick of a run's config (a PolicyConfig or its dict): its target when the adaptive
    controller steers towards it, else none (a fixed beta has no target to compare with)."""
    get = cfg.get if isinstance(cfg, Mapping) else (lambda k, d=None: getattr(cfg, k, d))
    if not get("adaptive_kl", True) or get("algo") == "dpo":
        return None
    value = get("kl_target")
    return float(value) if value else None


def reference_accuracy(proj, reward_run: Optional[int]) -> Optional[float]:
    """The reward model's accuracy on the expert's held-out (else validation) pairs, from its summary."""
    if reward_run is None:
        return None
    try:
        s = proj.run(reward_run).summary or {}
    except Exception:  # noqa: BLE001 - a deleted run: no reference
        return None
    value = s.get("final/accuracy/heldout", s.get("final/accuracy/val"))
    return float(value) if value is not None else None


# ---- measuring the base (torch; called by the policy job before the first update) ---------------------


def baseline_prompts(n_prompts: int, seed: int, limit: int = BASELINE_PROMPTS) -> list[int]:
    """Which training prompts (indices) the base answers for the baseline: a seeded sample."""
    import random

    idx = list(range(n_prompts))
    random.Random(seed * 7919 + 17).shuffle(idx)
    return sorted(idx[:limit])


def measure_baseline(policy, tokenizer, prompts: Sequence, cfg, *, batch_size: int = 16) -> Baseline:
    """The base model's (the reference's) reply lengths and truncation on `prompts`, sampled with the
    run's own temperature and token limit. A private seeded generator: the run's RNG is not touched."""
    from core.training.policy_common import encode_prompts, generate_rollout, prompt_budget

    model = policy.model
    device = next(model.parameters()).device
    lengths: list[float] = []
    has_eos: list[bool] = []
    with policy.reference() as ref:
        for i in range(0, len(prompts), batch_size):
            ids, mask = encode_prompts(tokenizer, prompts[i : i + batch_size], prompt_budget(model, cfg), device)
            ro = generate_rollout(
                ref,
                tokenizer,
                ids,
                mask,
                temperature=cfg.temperature,
                max_new_tokens=cfg.max_new_tokens,
                seed=cfg.seed * 1_000_003 + 999_983 + i,
            )
            lengths += ro.response_mask.sum(1).float().tolist()
            has_eos += ro.has_eos.tolist()
    return Baseline.from_replies(lengths, has_eos)
