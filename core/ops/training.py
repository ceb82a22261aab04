"""Training operations: configs from a preset plus overrides, pre-flight checks, runs, the scoring view.

The Train page and `rlhf-studio train-reward` / `train-policy` / `learning-curve` go through these, so the
same preset and overrides give the same config in both (tests/test_ops.py).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Progress
from core.ops.format import fmt_bytes, fmt_params

# ---- configs -------------------------------------------------------------------------------------------


def reward_config(
    proj,
    base_model: str,
    preset: str = "balanced",
    overrides: Optional[dict] = None,
    *,
    device: str = "auto",
    lora: Optional[bool] = None,
):
    """(config, preset config): the preset's RewardConfig for this machine and data, then `overrides`.

    `device` and `lora` (None: the preset decides) shape the preset itself (the learning rate follows the
    method); `overrides` are field values applied on top, as the advanced form's changes are.
    """
    from core.training.presets import config_for_project
    from core.training.reward import RewardConfig

    if not base_model:
        raise UserError("Choose a base model folder (Models page, or Browse…).")
    preset_config = config_for_project(proj, base_model, preset, device=device, lora=lora)
    values = dataclasses.asdict(preset_config)
    values.update(overrides or {})
    return RewardConfig.from_dict(values), preset_config


def policy_config(
    preset_name: str, *, algo: str, policy_path: str, reward_run: Optional[int], overrides: Optional[dict] = None
):
    """(config, preset config): the preset, then the setup fields, then the overrides.

    An override of a nested config (`reward`) is merged into it field by field.
    """
    from core.training.policy_config import PolicyConfig, preset

    base = preset(preset_name, algo=algo, policy_path=policy_path, reward_run=reward_run)
    values = dataclasses.asdict(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return PolicyConfig.from_dict(values), base


def build_policy_config(inputs: dict):
    """(config, preset config) from the Train page's inputs: {"preset", "algo", "policy_path", "reward_run",
    "overrides"}."""
    return policy_config(
        inputs["preset"],
        algo=inputs["algo"],
        policy_path=inputs["policy_path"],
        reward_run=inputs["reward_run"],
        overrides=inputs.get("overrides", {}),
    )


# ---- pre-flight checks -----------------------------------------------------------------------------------


def reward_preflight_job(
    proj, base_model: str, preset: str, overrides: dict, cancel: CancelToken = NEVER
) -> Iterator[Progress]:
    """The preset's config for this machine and data, the overrides applied, and the pre-flight verdict.

    Returns {"config", "preset_config", "ok", "message"}; a failed check is a message, not an error.
    """
    from core.training.reward import collect_data, preflight, resolve_device, total_steps

    yield Progress(0, None, "checking data and memory")
    config, preset_config = reward_config(proj, base_model, preset, overrides)
    cancel.raise_if_cancelled()
    data = collect_data(proj, config)
    device = resolve_device(config.device)
    try:
        pre = preflight(config, data, device)
    except UserError as exc:
        return {"config": config, "preset_config": preset_config, "ok": False, "message": str(exc)}
    steps = total_steps(len(data.train), config)
    message = (
        f"Ready: {data.n_pairs:,} preference pairs from {len(data.train) + len(data.val):,} prompts "
        f"({len(data.train)} train, {len(data.val)} validation; {len(data.heldout)} held out). "
        f"{steps:,} steps, {config.finetune} fine-tune of {fmt_params(pre['n_params'])} parameters "
        f"on {device.type}: about {fmt_bytes(pre['memory_needed'])} of {fmt_bytes(pre['memory_free'])} free."
    )
    return {"config": config, "preset_config": preset_config, "ok": True, "message": message}


def policy_memory_estimate(cfg, device=None) -> dict:
    """Bytes a policy run needs before loading it (config only), and what is free on the device.

    The same formula as the job's own check (core.training.policy_common.estimate_training_bytes), with
    the trainable share estimated for LoRA/freeze since the model is not built yet.
    """
    import torch

    from core.models.loading import available_memory, count_parameters, load_config, pick_device, pick_dtype
    from core.training.policy_common import estimate_training_bytes

    config = load_config(cfg.policy_path)
    dev = (
        torch.device(device)
        if device is not None
        else (pick_device() if cfg.device == "auto" else pick_device(cfg.device))
    )
    dtype = pick_dtype(dev) if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    bpp = torch.empty((), dtype=dtype).element_size()
    n_params = count_parameters(config)
    layers = getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 1

    def need(mode: str, batch_size: int) -> int:
        if mode == "lora":
            share = 0.01
        elif mode == "freeze":
            share = max(0.0, 1.0 - cfg.freeze_layers / layers)
        else:
            share = 1.0
        per_prompt = cfg.rloo_k if cfg.algo in ("rloo", "grpo") else 2 if cfg.algo == "dpo" else 1
        rows = min(batch_size * per_prompt, cfg.minibatch_size * 2)
        return estimate_training_bytes(
            n_params,
            bpp,
            mode,
            n_trainable=int(n_params * share),
            batch_tokens=rows * (cfg.max_prompt_tokens + cfg.max_new_tokens),
            hidden=getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0),
            layers=layers,
            vocab=getattr(config, "vocab_size", 0),
        )

    return {
        "n_params": n_params,
        "device": dev.type,
        "need": need(cfg.mode, cfg.batch_size),
        "free": available_memory(dev),
        "need_fn": need,
    }


def policy_preflight_job(proj, inputs: dict, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Build the config and check data and memory.

    Returns {"config", "preset_config", "ok", "message", "suggestion": overrides or None}.
    """
    from core.training.policy_job import collect_ids

    yield Progress(0, None, "checking data and memory")
    cfg, preset_cfg = build_policy_config(inputs)
    out = {"config": cfg, "preset_config": preset_cfg, "ok": False, "suggestion": None}
    try:
        cfg.validate()
    except UserError as exc:
        return {**out, "message": str(exc)}
    if not cfg.policy_path:
        return {**out, "message": "Choose the policy's base model folder (Models page, or Browse…)."}
    r = cfg.reward
    auto = any(w > 0 for w in (r.length_weight, r.pattern_weight, r.repetition_weight, r.rouge_weight, r.bleu_weight))
    if cfg.algo != "dpo" and cfg.reward_run is None and not auto:
        return {
            **out,
            "message": f"{cfg.algo.upper()} needs a reward: train a reward model first (Reward model tab) "
            "and choose its run, or switch on an automatic reward term under Advanced…",
        }
    try:
        ids = collect_ids(proj, cfg)
    except UserError as exc:
        return {**out, "message": str(exc)}
    cancel.raise_if_cancelled()
    from core.training.policy_job import resolve_reply_length

    cfg = resolve_reply_length(proj, cfg)  # the concrete limit the run will use, for the memory estimate
    est = policy_memory_estimate(cfg)
    what = (
        f"{len(ids['pairs']):,} preference pairs"
        if cfg.algo == "dpo"
        else f"{len(ids['prompt_ids']):,} training prompts"
    )
    if est["need"] <= est["free"]:
        return {
            **out,
            "ok": True,
            "message": f"Ready: {what}; {cfg.total_steps:,} steps, replies up to {cfg.max_new_tokens} "
            f"tokens, {cfg.mode} on {est['device']} "
            f"({fmt_params(est['n_params'])} parameters): about {fmt_bytes(est['need'])} of "
            f"{fmt_bytes(est['free'])} free.",
        }
    # Too big: suggest LoRA first (the reference is then the same weights), else a smaller batch.
    need_fn, options = est["need_fn"], []
    suggestion: Optional[dict] = None
    if cfg.mode != "lora" and need_fn("lora", cfg.batch_size) <= est["free"]:
        suggestion = {"mode": "lora"}
        options.append(f"switch to LoRA (about {fmt_bytes(need_fn('lora', cfg.batch_size))})")
    mode = "lora" if cfg.mode != "lora" and suggestion is None else cfg.mode
    batch = cfg.batch_size
    while batch > 1 and need_fn(mode, batch) > est["free"]:
        batch //= 2
    if suggestion is None and need_fn(mode, batch) <= est["free"]:
        suggestion = {"mode": mode, "batch_size": batch, "minibatch_size": min(cfg.minibatch_size, batch)}
        options.append(
            f"use {'LoRA with ' if mode != cfg.mode else ''}batch size {batch} "
            f"(about {fmt_bytes(need_fn(mode, batch))})"
        )
    advice = " or ".join(options) if options else "choose a smaller model, or shorter responses"
    return {
        **out,
        "suggestion": suggestion,
        "message": f"Not enough memory on {est['device']}: this run needs about {fmt_bytes(est['need'])} "
        f"and {fmt_bytes(est['free'])} is free. Suggestion: {advice}.",
    }


# ---- runs ----------------------------------------------------------------------------------------------


def policy_train_job(proj, config, resume_run: Optional[int], cancel: CancelToken = NEVER):
    """core.training.policy_job.train_policy, imported on the worker."""
    from core.training.policy_job import train_policy

    return (yield from train_policy(proj, config, cancel=cancel, resume_run=resume_run))


def reward_train_job(proj, config, resume_run: Optional[int], cancel: CancelToken = NEVER):
    """core.training.reward.train_reward_model, imported on the worker."""
    from core.training.reward import train_reward_model

    return (yield from train_reward_model(proj, config, cancel=cancel, resume_run=resume_run))


def learning_curve_job(proj, base_model: str, cancel: CancelToken = NEVER, **options) -> Iterator[Progress]:
    """core.training.learning_curve.learning_curve (re-fits on growing shares of the ranked prompts), imported
    on the worker; `options` are its keywords (preset, seed, device, max_steps...)."""
    from core.training.learning_curve import learning_curve

    return (yield from learning_curve(proj, base_model, cancel=cancel, **options))


# ---- the reward model's scoring view ---------------------------------------------------------------------


def prompt_choices_job(proj, limit: int = 2000, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """[(prompt id, label)] of prompts with at least two candidates (the first `limit`), for the scoring view."""
    from core.search import prompt_text

    yield Progress(0, None, "listing prompts")
    rows = [(pid, pos, split) for pid, pos, split, _status, n, _f in proj.prompt_status() if n >= 2][:limit]
    cancel.raise_if_cancelled()
    by_id = {p.id: p for p in proj.prompts(ids=[r[0] for r in rows])} if rows else {}
    out = []
    for pid, pos, split in rows:
        text = " ".join(prompt_text(by_id[pid].prompt).split())
        out.append((pid, f"#{pos} {'(held out) ' if split == 'heldout' else ''}{text[:90]}"))
    return out


def score_prompt_job(proj, run_id: int, prompt_id: int, model=None, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """What a reward model thinks of a prompt's candidates, beside the expert's own ranking.

    Returns {"model", "prompt", "rows": [(reward, expert tier or None, text)] best first}.
    """
    from core.search import prompt_text
    from core.training.reward import load_reward_model, score_prompt

    if model is None:
        yield Progress(0, 2, "loading the reward model")
        model = load_reward_model(proj, run_id)
    cancel.raise_if_cancelled()
    yield Progress(1, 2, "scoring")
    rewards = score_prompt(proj, run_id, prompt_id, model=model)
    tier_of: dict[int, int] = {}
    for j in proj.judgments(prompt_id=prompt_id, kind="ranking"):
        for t, tier in enumerate(j.tiers or []):
            for rid in tier:
                tier_of[rid] = t + 1
    texts = {r.id: r.text for r in proj.responses(prompt_id)}
    rows = sorted(((v, tier_of.get(rid), texts[rid]) for rid, v in rewards.items()), key=lambda r: -r[0])
    yield Progress(2, 2, "done")
    return {"model": model, "prompt": prompt_text(proj.prompt(prompt_id).prompt), "rows": rows}
