"""How many rankings are enough? Re-fit the reward model on growing shares of the ranked prompts and
plot held-out accuracy against the number of ranked prompts.

    curve = run_job(learning_curve(proj, base_model, cancel=token))      # LearningCurve
    curve.points          # [CurvePoint(prompts=12, pairs=70, accuracy=0.71, eval_pairs=254), ...]
    curve.advice          # "About 60 more ranked prompts (roughly 110 in all) should bring it near 90%..."

Each point trains a fresh reward model with the reward-model trainer itself (core.training.reward:
`RewardTrainer`, `step_examples`, `total_steps`, the same data and pairs) and a preset's settings from
core.training.presets for that many prompts (Quick by default: small and fast), keeping the weights of
the best validation accuracy as a real run does. Subsets are nested (the 50% subset holds the 25%
one) and drawn with a fixed seed. Accuracy is measured on the expert's held-out prompts when at least
`MIN_EVAL_PROMPTS` of them are ranked, else on a fixed share of the ranked training prompts that no
subset trains on. The curve is kept as a run (kind "curve": numbers only) so the Train page shows it
again later; nothing else is written and no model is saved.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional, Sequence

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Progress

CURVE_KIND = "curve"
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
TARGET_ACCURACY = 0.9
"""The accuracy the advice aims at (the product's bar for a reward model that learned the expert)."""
MIN_EVAL_PROMPTS = 4
"""Held-out prompts needed to measure on them; else a fixed share of the ranked training prompts."""
EVAL_SHARE = 0.2
"""That share, when the held-out split has too few ranked prompts."""
FLAT_SLOPE = 0.01
"""Accuracy gained per doubling of the prompts below which the curve counts as levelled off."""
MAX_DOUBLINGS = 3.0
"""Beyond 8× the current prompts the extrapolation is not worth a number."""


@dataclass
class CurvePoint:
    prompts: int
    """Ranked prompts the reward model was fitted on (its own validation share included)."""
    pairs: int
    """Preference pairs those prompts imply."""
    accuracy: float
    """Pairwise accuracy on the evaluation prompts."""
    eval_pairs: int
    steps: int


@dataclass
class LearningCurve:
    points: list[CurvePoint] = field(default_factory=list)
    eval_source: str = "heldout"
    """"heldout" (the expert's held-out prompts) or "validation" (a fixed share of training prompts)."""
    eval_prompts: int = 0
    ranked_prompts: int = 0
    """All ranked prompts the subsets were drawn from."""
    slope: Optional[float] = None
    """Accuracy gained per doubling of the ranked prompts, fitted on the last points."""
    more_prompts: Optional[int] = None
    """Roughly how many more ranked prompts reach TARGET_ACCURACY if the trend holds (None: no estimate)."""
    advice: str = ""
    run_id: Optional[int] = None
    preset: str = "quick"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LearningCurve":
        d = dict(d)
        points = [CurvePoint(**p) for p in d.pop("points", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(points=points, **{k: v for k, v in d.items() if k in known})


# ---- the advice (pure arithmetic) ------------------------------------------------------------------------


def slope_per_doubling(points: Sequence[CurvePoint], last: int = 3) -> Optional[float]:
    """Least-squares slope of accuracy against log2(prompts) over the last `last` points."""
    pts = [p for p in points if p.prompts > 0][-last:]
    if len(pts) < 2:
        return None
    xs = [math.log2(p.prompts) for p in pts]
    ys = [p.accuracy for p in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def _round(n: float) -> int:
    step = 5 if n < 100 else 10 if n < 1000 else 100
    return max(step, int(math.ceil(n / step) * step))


def noise_points(accuracy: float, pairs: int) -> Optional[float]:
    """Rough 95% half-width of an accuracy measured on `pairs` pairs, in percentage points (pairs of one
    prompt are not independent, so the true noise is larger)."""
    if pairs <= 0:
        return None
    return 100 * 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 0.01) / pairs)


def advise(points: Sequence[CurvePoint], target: float = TARGET_ACCURACY) -> tuple[Optional[float], Optional[int], str]:
    """(slope per doubling, more prompts to reach `target` or None, the advice in plain words)."""
    slope, more, text = _advise(points, target)
    noise = noise_points(points[-1].accuracy, points[-1].eval_pairs) if points else None
    if noise is not None and noise >= 5:
        text += (
            f" With {points[-1].eval_pairs} held-out pairs, differences under about {noise:.0f} points "
            "are within noise: ranking more held-out prompts makes the curve steadier."
        )
    return slope, more, text


def _advise(points: Sequence[CurvePoint], target: float) -> tuple[Optional[float], Optional[int], str]:
    if not points:
        return None, None, "No point yet: rank a few more prompts, then compute the curve."
    last = points[-1]
    slope = slope_per_doubling(points)
    acc = f"{100 * last.accuracy:.0f}%"
    if slope is None:
        return (
            None,
            None,
            (f"Held-out accuracy is {acc} with {last.prompts} ranked prompts; rank more to see how it grows."),
        )
    trend = f"{100 * slope:+.1f} points per doubling"
    if last.accuracy >= target:
        if slope > 3 * FLAT_SLOPE:
            return (
                slope,
                0,
                (
                    f"The reward model already agrees with you on {acc} of held-out pairs with "
                    f"{last.prompts} ranked prompts, and is still improving ({trend}): more rankings "
                    "would help a little more."
                ),
            )
        return (
            slope,
            0,
            (
                f"The reward model already agrees with you on {acc} of held-out pairs with "
                f"{last.prompts} ranked prompts, and the curve has levelled off ({trend}): more "
                "rankings of the same kind add little. Rank new kinds of prompts instead."
            ),
        )
    if slope <= FLAT_SLOPE:
        return (
            slope,
            None,
            (
                f"Accuracy has levelled off at {acc} ({trend}): more rankings like these are "
                "unlikely to help much. Check how consistent your rankings are (Evaluate page), "
                "try the Thorough preset, or a larger base model for the reward model."
            ),
        )
    doublings = (target - last.accuracy) / slope
    if doublings > MAX_DOUBLINGS:
        return (
            slope,
            None,
            (
                f"Accuracy is {acc} with {last.prompts} ranked prompts and rising slowly ({trend}): "
                f"reaching {100 * target:.0f}% this way would take more than "
                f"{_round(last.prompts * 2**MAX_DOUBLINGS)} in all. More rankings help; so may "
                "the Thorough preset or a larger base model."
            ),
        )
    total = last.prompts * 2**doublings
    more = _round(total - last.prompts)
    return (
        slope,
        more,
        (
            f"Accuracy is {acc} with {last.prompts} ranked prompts and rising ({trend}): about "
            f"{more} more ranked prompts (roughly {_round(total)} in all) should bring it near "
            f"{100 * target:.0f}%, if the trend holds. A rough guide: the figures come from "
            "small re-fits."
        ),
    )


# ---- the job ---------------------------------------------------------------------------------------------


def _split(proj, base_model: str, seed: int):
    """(pool of ranked training examples, evaluation examples, eval source), with the reward job's data."""
    from core.training.reward import RewardConfig, collect_data

    data = collect_data(proj, RewardConfig(base_model=base_model, seed=seed, device="cpu"))
    pool = sorted(data.train + data.val, key=lambda e: e.prompt_id)
    if len(data.heldout) >= MIN_EVAL_PROMPTS:
        return pool, data.heldout, "heldout"
    rng = random.Random(seed * 31 + 7)
    order = list(range(len(pool)))
    rng.shuffle(order)
    n_eval = max(2, round(EVAL_SHARE * len(pool)))
    eval_idx = set(order[:n_eval])
    return (
        [e for i, e in enumerate(pool) if i not in eval_idx],
        [e for i, e in enumerate(pool) if i in eval_idx],
        "validation",
    )


def subset_sizes(n: int, fractions: Sequence[float] = FRACTIONS, minimum: int = 4) -> list[int]:
    """Distinct subset sizes (at least `minimum` prompts, so a fit has training and validation prompts)."""
    sizes = sorted({min(n, max(minimum, round(f * n))) for f in fractions})
    return [s for s in sizes if s >= min(minimum, n) and s >= 2]


def learning_curve(
    proj,
    base_model: str,
    *,
    preset: str = "quick",
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    device: str = "auto",
    cancel: CancelToken = NEVER,
    save: bool = True,
    **overrides,
) -> Iterator[Progress]:
    """A job; returns `LearningCurve`. `overrides` go to the reward config of every fit (e.g. max_steps)."""
    import os

    import torch

    from core.training import checkpoint as ckpt
    from core.training.presets import make_config
    from core.training.reward import (
        RewardTrainer,
        _param_count,
        build_reward_model,
        resolve_device,
        split_by_prompt,
        step_examples,
        tokenize,
        total_steps,
    )

    if not base_model or not os.path.isdir(base_model):
        raise UserError(f"base model folder not found: {base_model or '(none given)'}")
    pool, eval_set, source = _split(proj, base_model, seed)
    sizes = subset_sizes(len(pool), fractions)
    if len(pool) < 4 or not eval_set or len(sizes) < 2:
        raise UserError(
            f"A learning curve needs more rankings: {len(pool)} ranked training prompts and "
            f"{len(eval_set)} to measure on. Rank at least 12 prompts (and a few held-out ones), "
            "then try again."
        )
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    shuffled = [pool[i] for i in order]
    dev = resolve_device(device)
    n_params = _param_count(base_model)
    n_resp = sum(len(e.response_ids) for e in pool) / len(pool)

    plans = []
    for size in sizes:
        subset = shuffled[:size]
        train_ids, val_ids = split_by_prompt([e.prompt_id for e in subset], 0.15, seed)
        cfg = make_config(
            base_model,
            preset,
            device_type=dev.type,
            n_params=n_params,
            n_train_prompts=max(1, len(train_ids)),
            responses_per_prompt=n_resp,
            **{"seed": seed, "device": str(dev), **overrides},
        )
        train_ids, val_ids = split_by_prompt([e.prompt_id for e in subset], cfg.val_fraction, cfg.seed)
        by_id = {e.prompt_id: e for e in subset}
        plans.append((subset, [by_id[i] for i in train_ids], [by_id[i] for i in val_ids], cfg))
    total = sum(total_steps(len(train), cfg) for _, train, _, cfg in plans) + 1
    done = 0
    curve = LearningCurve(eval_source=source, eval_prompts=len(eval_set), ranked_prompts=len(pool), preset=preset)
    yield Progress(done, total, "loading the base model")
    tokenized = False
    for k, (subset, train, val, cfg) in enumerate(plans):
        cancel.raise_if_cancelled()
        model, tokenizer = build_reward_model(cfg, dev)  # fresh weights for every point
        if not tokenized:  # one tokenizer for every fit: the same base folder
            tokenize(proj, tokenizer, pool + list(eval_set), cfg.max_length)
            tokenized = True
        steps = total_steps(len(train), cfg)
        trainer = RewardTrainer(model, tokenizer, cfg, steps, dev)
        best_acc, best, bad = -1.0, None, 0
        for step in range(steps):
            cancel.raise_if_cancelled()
            trainer.train_step([trainer.batch(exs) for exs in step_examples(train, step, cfg)], step)
            done += 1
            if val and ((step + 1) % cfg.eval_every == 0 or step + 1 == steps):
                acc = trainer.evaluate(val)["accuracy/val"]
                if acc > best_acc:
                    best_acc, bad = acc, 0
                    if cfg.restore_best:
                        best = {n: v.detach().to("cpu", copy=True) for n, v in ckpt.trainable_state(model).items()}
                else:
                    bad += 1
                    if (
                        cfg.early_stopping_patience
                        and bad >= cfg.early_stopping_patience
                        and step + 1 >= cfg.early_stopping_after * steps
                    ):
                        done += steps - step - 1
                        break
            yield Progress(done, total, f"fitting on {len(subset)} ranked prompts ({k + 1} of {len(plans)})")
        if best is not None:
            ckpt.load_trainable_state(model, best)
        ev = trainer.evaluate(list(eval_set), prefix="eval")
        point = CurvePoint(
            prompts=len(subset),
            pairs=sum(len(e.pairs) for e in subset),
            accuracy=float(ev["accuracy/eval"]),
            eval_pairs=sum(len(e.pairs) for e in eval_set),
            steps=steps,
        )
        curve.points.append(point)
        trainer = model = best = None
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        yield Progress(
            done,
            total,
            f"{len(subset)} ranked prompts: accuracy {100 * point.accuracy:.0f}%",
            metrics={"curve/prompts": float(point.prompts), "curve/accuracy": point.accuracy},
        )
    curve.slope, curve.more_prompts, curve.advice = advise(curve.points)
    if save:
        curve.run_id = proj.create_run(
            CURVE_KIND, {"base_model": base_model, "preset": preset, "seed": seed, "fractions": list(fractions)}
        )
        proj.update_run(curve.run_id, status="done", summary=curve.to_dict())
        proj.audit("learning_curve", run=curve.run_id, points=len(curve.points))
    yield Progress(total, total, "done")
    return curve


def latest_curve(proj) -> Optional[LearningCurve]:
    """The newest learning curve kept in the project (numbers only; no model)."""
    runs = [r for r in proj.runs(kind=CURVE_KIND) if r.status == "done" and (r.summary or {}).get("points")]
    if not runs:
        return None
    curve = LearningCurve.from_dict(runs[-1].summary)
    curve.run_id = runs[-1].id
    return curve
