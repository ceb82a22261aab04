"""Blind A/B evaluation of a tuned policy against its base model on the held-out prompts.

    result = run_job(prepare_blind_eval(proj, policy_run_id, cancel=token, seed=7))
    for item in evaluation_queue(proj, result.eval_run):       # what the judging view shows, in order
        record_evaluation(proj, item, "a")                      # the expert's choice: a | b | tie | both_bad

Each held-out prompt gets one response from the base model and one from the tuned model, with the same
decoding settings (greedy by default; recorded in the eval run). The responses are stored like any other
candidate; their origin ({"kind": "eval", "run": policy_run, "side": "base"|"tuned"}) is encrypted and
never shown while judging. The blind items (prompt, response A, response B, which side is tuned) live in
the eval run's encrypted config: the order of items is shuffled and exactly half of them (one more or
less when odd) show the tuned response as A, so neither position nor order gives the side away.

When both models write exactly the same text there is nothing to judge: the item is kept with
`identical: true`, never shown, and counts as a tie.

Judgments are ordinary pairwise judgments with purpose="evaluation"; they never enter training pairs.
"""

from __future__ import annotations

import gc
import random
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Iterator, Optional

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Progress

PURPOSE = "evaluation"
EVAL_KIND = "eval"


@dataclass
class EvalSettings:
    """How both models answer the held-out prompts (the same settings for both sides)."""

    max_new_tokens: int = 0
    """Most tokens per response; 0 = the policy run's own max_new_tokens."""
    temperature: float = 0.0
    """0 = greedy decoding (deterministic); > 0 samples with `sampling_seed`."""
    top_p: float = 1.0
    """Nucleus sampling when temperature > 0."""
    sampling_seed: int = 0
    """Seed for sampling (both sides use the same one)."""
    max_prompts: int = 0
    """Use at most this many held-out prompts (0 = all), chosen at random with the eval seed."""
    batch_size: int = 16
    """Prompts generated per batch."""
    device: str = "auto"
    """auto (GPU when present), cuda, mps or cpu."""
    dtype: str = "auto"
    """auto, float32, bfloat16 or float16."""

    @classmethod
    def from_dict(cls, d: dict) -> "EvalSettings":
        return cls(**{k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class BlindItem:
    """One blind pair as the judging view gets it: no side, no origin."""

    index: int
    """Position in the eval run's item list (its randomised order)."""
    prompt_id: int
    a: int
    """Response id shown as A."""
    b: int
    """Response id shown as B."""


@dataclass
class EvalPrepared:
    eval_run: int
    items: int
    """Blind pairs to judge (identical pairs excluded)."""
    identical: int
    """Prompts where base and tuned wrote the same text (counted as ties, never shown)."""


# ---- the job --------------------------------------------------------------------------------------


def policy_run_of(proj, run_id: int):
    run = proj.run(run_id)
    if run.kind != "policy":
        raise UserError(f"Run {run_id} is a {run.kind} run; choose a policy run to evaluate.")
    if "policy" not in run.config:
        raise UserError(f"Policy run {run_id} has no configuration.")
    if not (proj.has_artifact(run_id, "policy") or proj.has_artifact(run_id, "checkpoint")):
        raise UserError(f"Policy run {run_id} has no trained weights yet; train it first.")
    return run


def balanced_sides(n: int, rng: random.Random) -> list[str]:
    """n sides, "a" or "b", shuffled, with n // 2 or n - n // 2 of each (the odd one random)."""
    first = "a" if rng.random() < 0.5 else "b"
    other = "b" if first == "a" else "a"
    sides = [first] * (n - n // 2) + [other] * (n // 2)
    rng.shuffle(sides)
    return sides


def _generate(model, tokenizer, prompts, settings: EvalSettings, max_prompt_tokens: int, cancel):
    """Yields after each batch; returns one text per prompt, in order."""
    from core.models.generation import SamplingSettings, sample
    from core.models.loading import encode_batch

    sampling = SamplingSettings(
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=0,
        max_new_tokens=settings.max_new_tokens,
        seed=settings.sampling_seed,
    )
    device = next(model.parameters()).device
    texts: list[str] = []
    for i in range(0, len(prompts), settings.batch_size):
        cancel.raise_if_cancelled()
        batch = encode_batch(
            tokenizer, prompts[i : i + settings.batch_size], max_tokens=max_prompt_tokens or None, device=device
        )
        texts.extend(sample(model, tokenizer, batch["input_ids"], batch["attention_mask"], sampling).texts)
        yield
    return texts


def _free_memory() -> None:
    """Collect now (not later) so the second model never sits beside the first on the GPU."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sample_base_and_tuned(
    proj,
    run_id: int,
    base_path: str,
    texts: list,
    settings: EvalSettings,
    device,
    dtype,
    max_prompt_tokens: int,
    cancel: CancelToken,
    done: int,
    total: int,
):
    """Generator: the base model's replies to `texts`, then the tuned run's, one model in memory at a time.

    Yields Progress from `done` of `total` (one per model load and per batch); returns
    ({"base": [...], "tuned": [...]}, the tuned weights' step or None, the new `done`).
    """
    from core.training.export import load_tuned_policy
    from core.training.policy_common import load_policy_model

    outputs: dict[str, list[str]] = {}
    step = None
    for side in ("base", "tuned"):
        if side == "base":
            model, tokenizer = load_policy_model(base_path, device, dtype)
        else:
            yield Progress(done, total, "loading the tuned model")
            model, tokenizer = load_tuned_policy(proj, run_id, device=device, dtype=dtype)
            step = getattr(model, "_rlhf_step", None)
        done += 1
        gen = _generate(model, tokenizer, texts, settings, max_prompt_tokens, cancel)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                outputs[side] = stop.value
                break
            done += 1
            yield Progress(done, total, f"generating {side} responses")
        model = gen = None
        _free_memory()
    cancel.raise_if_cancelled()
    return outputs, step, done


def prepare_blind_eval(
    proj,
    run_id: int,
    *,
    cancel: CancelToken = NEVER,
    seed: Optional[int] = None,
    settings: Optional[EvalSettings | dict] = None,
) -> Iterator[Progress]:
    """A job: generate base and tuned responses for the held-out prompts and store the blind pairs in a
    new eval run. Returns `EvalPrepared`. Nothing is written until both sides are generated, so a cancel
    leaves the project as it was."""
    run = policy_run_of(proj, run_id)
    pcfg = run.config["policy"]
    s = settings if isinstance(settings, EvalSettings) else EvalSettings.from_dict(settings or {})
    if not s.max_new_tokens:
        s.max_new_tokens = int(pcfg.get("max_new_tokens") or 64)
    if s.batch_size < 1 or s.max_new_tokens < 1 or s.temperature < 0:
        raise UserError(
            "Evaluation settings: batch size and max new tokens must be at least 1, temperature at least 0."
        )
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    rng = random.Random(seed)

    prompts = proj.prompts(split="heldout")
    if not prompts:
        raise UserError(
            "The project has no held-out prompts. Mark some prompts as held-out (Data page) "
            "or import them with split 'heldout', then evaluate."
        )
    if s.max_prompts and len(prompts) > s.max_prompts:
        prompts = sorted(rng.sample(prompts, s.max_prompts), key=lambda p: p.position)
    texts_in = [p.prompt for p in prompts]
    n_batches = -(-len(prompts) // s.batch_size)
    total = 2 * n_batches + 3
    done = 0
    yield Progress(done, total, "loading the base model")

    device = None if s.device == "auto" else s.device
    dtype = None if s.dtype == "auto" else s.dtype
    max_prompt_tokens = int(pcfg.get("max_prompt_tokens") or 0)
    started = time.monotonic()
    outputs, _step, done = yield from sample_base_and_tuned(
        proj, run_id, pcfg["policy_path"], texts_in, s, device, dtype, max_prompt_tokens, cancel, done, total
    )

    # Store everything in one transaction: the eval run, the responses, the item list.
    sides = balanced_sides(len(prompts), rng)
    order = list(range(len(prompts)))
    rng.shuffle(order)
    with proj.transaction():
        eval_id = proj.create_run(EVAL_KIND, {"policy_run": run_id, "state": "preparing"}, parent=run_id)
        items = []
        identical = 0
        for slot, i in enumerate(order):
            pid = prompts[i].id
            base_rid = proj.add_response(
                pid, outputs["base"][i], origin={"kind": "eval", "run": run_id, "side": "base", "eval_run": eval_id}
            )
            tuned_rid = proj.add_response(
                pid, outputs["tuned"][i], origin={"kind": "eval", "run": run_id, "side": "tuned", "eval_run": eval_id}
            )
            tuned_side = sides[slot]
            a, b = (tuned_rid, base_rid) if tuned_side == "a" else (base_rid, tuned_rid)
            item = {"prompt": pid, "a": a, "b": b, "tuned": tuned_side}
            if base_rid == tuned_rid:  # the same text (deduplicated): nothing to judge
                item["identical"] = True
                identical += 1
            items.append(item)
        config = {
            "policy_run": run_id,
            "base_model": pcfg["policy_path"],
            "algo": pcfg.get("algo"),
            "settings": asdict(s),
            "seed": seed,
            "items": items,
            "reward_run": pcfg.get("reward_run"),
        }
        summary = {
            "items": len(items),
            "identical": identical,
            "generation_seconds": round(time.monotonic() - started, 2),
        }
        proj.update_run(eval_id, status="done", config=config, summary=summary)
    proj.audit("evaluation_prepared", run=eval_id, policy_run=run_id, items=len(items))
    done = total
    yield Progress(done, total, "blind pairs ready")
    return EvalPrepared(eval_id, len(items) - identical, identical)


# ---- the queue --------------------------------------------------------------------------------------


def eval_run_of(proj, eval_run_id: int):
    run = proj.run(eval_run_id)
    if run.kind != EVAL_KIND or "items" not in run.config:
        raise UserError(f"Run {eval_run_id} is not a prepared evaluation (a {run.kind} run).")
    return run


def current_choices(proj, run, purpose: str = PURPOSE) -> dict[int, object]:
    """{item index: its current judgment} for the judged items of a run of blind pairs (an evaluation,
    or a policy run's expert check with its own `purpose`)."""
    by_pair: dict[tuple[int, frozenset], object] = {}
    for j in proj.judgments(kind="pairwise", purpose=purpose):
        by_pair[(j.prompt_id, frozenset((j.a, j.b)))] = j  # oldest first: the last one wins
    out = {}
    for i, it in enumerate(run.config["items"]):
        if it.get("identical"):
            continue
        j = by_pair.get((it["prompt"], frozenset((it["a"], it["b"]))))
        if j is not None:
            out[i] = j
    return out


def blind_items(run, skip=()) -> list[BlindItem]:
    """The judgeable pairs of a run of blind pairs, in its randomised order (no side, no origin),
    leaving out the item indices in `skip`."""
    return [
        BlindItem(i, it["prompt"], it["a"], it["b"])
        for i, it in enumerate(run.config["items"])
        if not it.get("identical") and i not in skip
    ]


def evaluation_items(proj, eval_run_id: int) -> list[BlindItem]:
    """Every judgeable item of an eval run, in its randomised order."""
    return blind_items(eval_run_of(proj, eval_run_id))


def evaluation_queue(proj, eval_run_id: int) -> list[BlindItem]:
    """The items still to judge, in order: what the blind judging view walks through."""
    run = eval_run_of(proj, eval_run_id)
    return blind_items(run, skip=current_choices(proj, run))


def record_evaluation(
    proj,
    item: BlindItem,
    result: str,
    *,
    flags=(),
    comment: str = "",
    seconds: float = 0.0,
    purpose: str = PURPOSE,
) -> int:
    """Record the expert's choice on a blind pair ("a", "b", "tie" or "both_bad"); committed on return."""
    return proj.record_pairwise(
        item.prompt_id,
        a=item.a,
        b=item.b,
        result=result,
        flags=flags,
        comment=comment,
        seconds=seconds,
        purpose=purpose,
    )
