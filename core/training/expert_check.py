"""Check with the expert: does the reward model still judge the policy's new replies the way the expert does?

During or after a policy run, the expert ranks a few fresh samples blind: for each of a few training
prompts, one reply sampled from the policy (its latest checkpoint) and one from the base model, shown as
A and B in random order, the source hidden. The choices are ordinary pairwise judgments
(purpose "annotation"), so they also teach the next reward model. Agreement is the share of those pairs
that the reward model orders as the expert did (core/training/monitors.py `agreement`); a falling
agreement means a rising reward no longer means better replies.

    prepared = run_job(prepare_expert_check(proj, policy_run, n_prompts=8, cancel=token))
    for item in check_queue(proj, prepared.check_run):      # what the judging view walks through
        record_check(proj, item, "a")                        # a | b | tie | both_bad
    result = run_job(expert_agreement(proj, policy_run))     # CheckAgreement; also kept in each check run

The check run (kind "check", parent = the policy run) holds the items (prompt, A, B, which side is the
policy's) in its encrypted config; the responses' origin ({"kind": "check", "side": ...}) is encrypted
and never shown while judging.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass, field
from typing import Iterator, Optional

from core.errors import UserError
from core.evaluation.blind import BlindItem, blind_items, current_choices, record_evaluation
from core.jobs import NEVER, CancelToken, Progress
from core.training import monitors

CHECK_KIND = "check"
PURPOSE = "annotation"  # ordinary judgments: they train the next reward model too
DEFAULT_PROMPTS = 8


@dataclass
class CheckPrepared:
    check_run: int
    items: int
    """Blind pairs to judge."""
    identical: int
    """Prompts where the policy and the base wrote the same text (nothing to judge)."""
    step: Optional[int]
    """The training step of the policy weights sampled."""


@dataclass
class CheckAgreement:
    agreement: monitors.Agreement
    """Over every judged check of the run."""
    by_check: list[dict] = field(default_factory=list)
    """[{"check_run", "step", "agreed", "pairs", "rate"}] in order."""
    expert_prefers_policy: Optional[float] = None
    """Share of the judged pairs (with a preference) where the expert chose the policy's reply."""
    reward_run: Optional[int] = None

    def metrics(self) -> dict[str, float]:
        return self.agreement.metrics()


# ---- preparing a check ---------------------------------------------------------------------------------


def _policy_run(proj, run_id: int):
    run = proj.run(run_id)
    if run.kind != "policy" or "policy" not in run.config:
        raise UserError(f"Run {run_id} is a {run.kind} run; choose a policy run to check.")
    if not (proj.has_artifact(run_id, "policy") or proj.has_artifact(run_id, "checkpoint")):
        raise UserError(
            f"Policy run {run_id} has no checkpoint yet: wait for its first checkpoint "
            "(every checkpoint_every steps), then check."
        )
    return run


def checks_of(proj, policy_run: int) -> list:
    return [r for r in proj.runs(kind=CHECK_KIND) if r.config.get("policy_run") == policy_run]


def _training_prompt_ids(proj, run) -> list[int]:
    if proj.has_artifact(run.id, "data"):
        ids = json.loads(proj.load_artifact(run.id, "data")["data.json"]).get("prompt_ids") or []
        if ids:
            return list(ids)
    return proj.prompt_ids(split="train")


def prepare_expert_check(
    proj,
    policy_run: int,
    *,
    n_prompts: int = DEFAULT_PROMPTS,
    seed: Optional[int] = None,
    cancel: CancelToken = NEVER,
    device: Optional[str] = None,
) -> Iterator[Progress]:
    """A job: sample one reply from the policy and one from the base for `n_prompts` training prompts
    (fresh ones first: not used by an earlier check of this run) and store them as a blind check.
    Returns `CheckPrepared`. Nothing is written until both sides are sampled."""
    from core.evaluation.blind import EvalSettings, balanced_sides, sample_base_and_tuned

    if n_prompts < 1:
        raise UserError("A check needs at least one prompt.")
    run = _policy_run(proj, policy_run)
    pcfg = run.config["policy"]
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    rng = random.Random(seed)
    pool = _training_prompt_ids(proj, run)
    used = {it["prompt"] for r in checks_of(proj, policy_run) for it in r.config.get("items", [])}
    fresh = [p for p in pool if p not in used]
    rng.shuffle(fresh)
    chosen = fresh[:n_prompts]
    if len(chosen) < n_prompts:  # every prompt was checked before: reuse some (new samples all the same)
        rest = [p for p in pool if p not in set(chosen)]
        rng.shuffle(rest)
        chosen += rest[: n_prompts - len(chosen)]
    if not chosen:
        raise UserError("The run has no training prompts to sample from.")
    by_id = {p.id: p for p in proj.prompts(ids=chosen)}
    texts_in = [by_id[i].prompt for i in chosen]
    settings = EvalSettings(
        temperature=float(pcfg.get("temperature") or 0.7),
        max_new_tokens=int(pcfg.get("max_new_tokens") or 64),
        sampling_seed=seed,
        batch_size=16,
        device=device or "auto",
    )
    max_prompt_tokens = int(pcfg.get("max_prompt_tokens") or 0)
    n_batches = -(-len(chosen) // settings.batch_size)
    total, done = 2 * n_batches + 3, 0
    dev = None if settings.device == "auto" else settings.device
    yield Progress(done, total, "loading the base model")
    outputs, step, done = yield from sample_base_and_tuned(
        proj, policy_run, pcfg["policy_path"], texts_in, settings, dev, None, max_prompt_tokens, cancel, done, total
    )
    outputs["policy"] = outputs.pop("tuned")

    sides = balanced_sides(len(chosen), rng)
    order = list(range(len(chosen)))
    rng.shuffle(order)
    with proj.transaction():
        check_id = proj.create_run(CHECK_KIND, {"policy_run": policy_run, "state": "preparing"}, parent=policy_run)
        items, identical = [], 0
        for slot, i in enumerate(order):
            pid = chosen[i]
            origin = {"kind": "check", "run": policy_run, "check_run": check_id}
            base_rid = proj.add_response(pid, outputs["base"][i], origin={**origin, "side": "base"})
            pol_rid = proj.add_response(pid, outputs["policy"][i], origin={**origin, "side": "policy"})
            policy_side = sides[slot]
            a, b = (pol_rid, base_rid) if policy_side == "a" else (base_rid, pol_rid)
            item = {"prompt": pid, "a": a, "b": b, "policy": policy_side}
            if a == b:  # the same text: nothing to judge
                item["identical"] = True
                identical += 1
            items.append(item)
        config = {
            "policy_run": policy_run,
            "step": step,
            "reward_run": pcfg.get("reward_run"),
            "seed": seed,
            "settings": {"temperature": settings.temperature, "max_new_tokens": settings.max_new_tokens},
            "items": items,
        }
        proj.update_run(check_id, status="done", config=config, summary={"items": len(items), "identical": identical})
    proj.audit("expert_check_prepared", run=check_id, policy_run=policy_run, items=len(items))
    yield Progress(total, total, "blind pairs ready")
    return CheckPrepared(check_id, len(items) - identical, identical, step)


# ---- judging ------------------------------------------------------------------------------------------


def _check_run(proj, check_run: int):
    run = proj.run(check_run)
    if run.kind != CHECK_KIND or "items" not in run.config:
        raise UserError(f"Run {check_run} is not a prepared check (a {run.kind} run).")
    return run


def _judged(proj, run) -> dict[int, object]:
    """{item index: the current pairwise judgment of that pair} for the judged items of a check run."""
    return current_choices(proj, run, purpose=PURPOSE)


def check_items(proj, check_run: int) -> list[BlindItem]:
    """Every judgeable pair of a check, in its shuffled order (no side, no origin)."""
    return blind_items(_check_run(proj, check_run))


def check_queue(proj, check_run: int) -> list[BlindItem]:
    """The pairs of a check still to judge, in order."""
    run = _check_run(proj, check_run)
    return blind_items(run, skip=_judged(proj, run))


def record_check(proj, item: BlindItem, result: str, *, flags=(), comment: str = "", seconds: float = 0.0) -> int:
    """The expert's choice on a check pair ("a", "b", "tie" or "both_bad"): an ordinary pairwise judgment."""
    return record_evaluation(proj, item, result, flags=flags, comment=comment, seconds=seconds, purpose=PURPOSE)


def judged_pairs(proj, policy_run: int) -> list[dict]:
    """The run's judged check pairs with a preference: {"check_run", "step", "prompt", "chosen", "rejected",
    "policy_chosen"} (ties and "both bad" give no order and are left out)."""
    out = []
    for run in checks_of(proj, policy_run):
        items = run.config.get("items", [])
        for i, j in sorted(_judged(proj, run).items()):
            if j.choice not in ("a", "b"):
                continue
            it = items[i]
            winner = j.a if j.choice == "a" else j.b
            loser = j.b if winner == j.a else j.a
            policy_rid = it["a"] if it["policy"] == "a" else it["b"]
            out.append(
                {
                    "check_run": run.id,
                    "step": run.config.get("step"),
                    "prompt": it["prompt"],
                    "chosen": winner,
                    "rejected": loser,
                    "policy_chosen": winner == policy_rid,
                }
            )
    return out


def expert_agreement(
    proj,
    policy_run: int,
    *,
    reward_run: Optional[int] = None,
    cancel: CancelToken = NEVER,
    device: Optional[str] = None,
    model=None,
) -> Iterator[Progress]:
    """A job: score the expert's judged check pairs with the reward model; returns `CheckAgreement` and
    keeps each check's figures in its summary (numbers only)."""
    from core.training.reward import load_reward_model

    run = proj.run(policy_run)
    rm_id = reward_run if reward_run is not None else (run.config.get("policy") or {}).get("reward_run")
    if rm_id is None:
        raise UserError(
            f"Policy run {policy_run} was not trained against a reward model, so there is no agreement to measure."
        )
    pairs = judged_pairs(proj, policy_run)
    yield Progress(0, 3, "collecting your judgments")
    if not pairs:
        return CheckAgreement(monitors.agreement([]), [], None, rm_id)
    if model is None:
        yield Progress(1, 3, "loading the reward model")
        model = load_reward_model(proj, rm_id, device=device)
    cancel.raise_if_cancelled()
    yield Progress(2, 3, "scoring the checked replies")
    texts: dict[int, str] = {}
    prompts: dict[int, object] = {}
    for p in pairs:
        prompts.setdefault(p["prompt"], proj.prompt(p["prompt"]).prompt)
        for rid in (p["chosen"], p["rejected"]):
            if rid not in texts:
                texts[rid] = proj.response(rid).text
    ids = sorted(texts)
    owner = {rid: p["prompt"] for p in pairs for rid in (p["chosen"], p["rejected"])}
    scores = dict(zip(ids, model.score([(prompts[owner[r]], texts[r]) for r in ids])))
    margins = [scores[p["chosen"]] - scores[p["rejected"]] for p in pairs]
    by_check = []
    for check_id in dict.fromkeys(p["check_run"] for p in pairs):
        sub = [m for m, p in zip(margins, pairs) if p["check_run"] == check_id]
        a = monitors.agreement(sub)
        step = next(p["step"] for p in pairs if p["check_run"] == check_id)
        by_check.append({"check_run": check_id, "step": step, "agreed": a.agreed, "pairs": a.pairs, "rate": a.rate})
        summary = dict(proj.run(check_id).summary or {})
        summary.update({"agreement": a.rate, "agreed": a.agreed, "pairs": a.pairs, "reward_run": rm_id})
        proj.update_run(check_id, summary=summary)
    overall = monitors.agreement(margins)
    prefers = sum(1 for p in pairs if p["policy_chosen"]) / len(pairs)
    yield Progress(3, 3, "done", metrics=overall.metrics())
    return CheckAgreement(overall, by_check, prefers, rm_id)


def recorded_agreement(proj, policy_run: int) -> tuple[Optional[monitors.Agreement], list[dict]]:
    """What the last `expert_agreement` kept in the check runs (no model): (overall, per check)."""
    rows = []
    for run in checks_of(proj, policy_run):
        s = run.summary or {}
        if s.get("pairs"):
            rows.append(
                {
                    "check_run": run.id,
                    "step": run.config.get("step"),
                    "agreed": s["agreed"],
                    "pairs": s["pairs"],
                    "rate": s["agreement"],
                }
            )
    if not rows:
        return None, []
    return monitors.Agreement(sum(r["agreed"] for r in rows), sum(r["pairs"] for r in rows)), rows
