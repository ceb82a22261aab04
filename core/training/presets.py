"""Quick / Balanced / Thorough: reward-model hyperparameters chosen from the device and the data size.

The expert picks a preset; this fills a `RewardConfig` (the advanced form shows and edits every field).
Rules of thumb, not magic:
- Learning rate by model size and method (small random models need large steps, 7B full fine-tunes
  small ones; LoRA tolerates ~10x the full-fine-tune rate).
- Big models on a CPU, or beyond the GPU's memory for a full fine-tune, default to LoRA.
- Few prompts -> more epochs, so even a small data set gets enough optimizer steps; a cap keeps a Quick
  run quick. Evaluations ~10 times per run; early stopping patience grows with the preset.
- Early stopping and keeping the best validation weights only when the validation split is big enough
  to choose by (VALIDATION_PROMPTS_TO_CHOOSE): on a few dozen prompts the best evaluation is mostly
  noise, and the run's last weights, at the end of the decayed learning rate, are the better pick.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Optional

from core.errors import UserError
from core.training.reward import RewardConfig, estimate_memory

PRESETS = ("quick", "balanced", "thorough")

VALIDATION_PROMPTS_TO_CHOOSE = 50
"""Validation prompts below which a run trains to its end and keeps its last weights: a pairwise accuracy
over ~20 prompts moves by several points between evaluations on chance alone."""

# name: (max_length, min_steps, max_epochs, base_epochs, patience, prompts_per_step)
_TABLE = {
    "quick": (256, 80, 8, 1.0, 3, 8),
    "balanced": (512, 160, 12, 2.0, 4, 8),
    "thorough": (1024, 300, 20, 4.0, 5, 16),
}


def _learning_rate(n_params: int, finetune: str) -> float:
    if n_params < 20e6:
        lr = 1e-3  # tiny demo/test models, trained from random weights
    elif n_params < 200e6:
        lr = 3e-5
    elif n_params < 2e9:
        lr = 1e-5
    else:
        lr = 5e-6
    return min(lr * 10, 2e-3) if finetune == "lora" else lr


def make_config(
    base_model: str,
    preset: str = "balanced",
    *,
    device_type: str = "cpu",
    n_params: int,
    n_train_prompts: int,
    responses_per_prompt: float = 4.0,
    memory_free: Optional[int] = None,
    lora: Optional[bool] = None,
    **overrides,
) -> RewardConfig:
    """A full `RewardConfig` for `preset`; keyword `overrides` win over the preset's choices."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    max_length, min_steps, max_epochs, base_epochs, patience, per_step = _TABLE[preset]
    # Method: LoRA when asked, or when a full fine-tune would not fit / would crawl on a CPU.
    if lora is None:
        full = RewardConfig(finetune="full", max_length=max_length)
        too_big = memory_free is not None and estimate_memory(n_params, full) > memory_free
        lora = too_big or (device_type == "cpu" and n_params > 300e6)
    finetune = "lora" if lora else "full"
    # Batches: a step sees `per_step` prompts (fewer on tiny data so there are still several steps an epoch).
    per_step = max(1, min(per_step, math.ceil(n_train_prompts / 4)))
    # Micro-batch by sequences in flight: on a GPU about 32 sequences of max_length, on a CPU about 16.
    seq_budget = 32 if device_type == "cuda" else 16
    if n_params > 1e9:
        seq_budget = max(1, seq_budget // 4)
    micro = max(1, min(per_step, int(seq_budget // max(1.0, responses_per_prompt))))
    accum = max(1, round(per_step / micro))
    per_step = micro * accum
    steps_per_epoch = max(1, math.ceil(n_train_prompts / per_step))
    epochs = min(float(max_epochs), max(base_epochs, min_steps / steps_per_epoch))
    total = max(1, math.ceil(epochs * steps_per_epoch))
    val_fraction = RewardConfig.val_fraction
    # n_train_prompts is what remains after the validation split: the split is val/(1-val) of it.
    choose_by_val = n_train_prompts * val_fraction / (1 - val_fraction) >= VALIDATION_PROMPTS_TO_CHOOSE
    config = RewardConfig(
        base_model=base_model,
        preset=preset,
        finetune=finetune,
        learning_rate=_learning_rate(n_params, finetune),
        epochs=epochs,
        prompts_per_micro_batch=micro,
        grad_accum_steps=accum,
        max_length=max_length,
        eval_every=max(5, total // 10),
        early_stopping_patience=patience if choose_by_val else 0,
        restore_best=choose_by_val,
        # Even a larger validation split is noisy early on: no stop in the first half of the run.
        early_stopping_after=0.5,
        checkpoint_every=max(10, total // 5),
        warmup_ratio=0.05,
        device="cuda" if device_type == "cuda" else "cpu",
        gradient_checkpointing=device_type == "cuda" and n_params > 1e9,
    )
    return replace(config, **overrides) if overrides else config


def config_for_project(
    proj, base_model: str, preset: str = "balanced", *, device: str = "auto", lora: Optional[bool] = None, **overrides
) -> RewardConfig:
    """`make_config` with the device, model size and data size read from the machine and the project."""
    from core.training.reward import _param_count, available_memory, collect_data, resolve_device

    if not os.path.isdir(base_model):
        raise UserError(f"base model folder not found: {base_model}")
    dev = resolve_device(device)
    overrides.setdefault("device", str(dev))
    data = collect_data(proj, RewardConfig(base_model=base_model, device=str(dev)))
    n_resp = sum(len(e.response_ids) for e in data.train) / max(1, len(data.train))
    return make_config(
        base_model,
        preset,
        device_type=dev.type,
        n_params=_param_count(base_model),
        n_train_prompts=max(1, len(data.train)),
        responses_per_prompt=n_resp or 4.0,
        memory_free=available_memory(dev),
        lora=lora,
        **overrides,
    )
