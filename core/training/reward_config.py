"""The reward model's hyperparameters (`RewardConfig`): one dataclass, each field with its one-line docstring
(read by `field_docs` for the advanced form, `--help` texts and docs/training.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from core.errors import UserError

POOLINGS = ("distinct_sum_last", "both", "sum_last", "sum", "mean", "last")
"""What the reward model's score head may read (core/training/reward_model.py::sequence_rewards)."""

__all__ = ["RewardConfig"]


@dataclass
class RewardConfig:
    base_model: str = ""
    """Local Hugging Face folder of the base model (the policy's base or another causal LM)."""
    preset: str = "custom"
    """Which preset filled these values (quick / balanced / thorough / custom); informational."""
    finetune: Literal["full", "lora", "freeze"] = "full"
    """full: train every weight; lora: low-rank adapters (peft) + head; freeze: bottom layers frozen."""
    freeze_layers: int = 0
    """With finetune="freeze": how many bottom transformer layers (and the embeddings) stay frozen."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_target_modules: str = "all-linear"
    """Which linear layers get adapters: "all-linear" or a comma-separated list of module names."""
    learning_rate: float = 1e-5
    """Peak learning rate after warmup."""
    min_lr_ratio: float = 0.1
    """Learning rate at the end of the decay, as a fraction of the peak."""
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup."""
    warmup_ratio: float = 0.05
    """Fraction of the steps spent warming the learning rate up linearly."""
    weight_decay: float = 0.0
    """AdamW weight decay, applied to matrices only (not biases, norms)."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.95
    """AdamW beta2."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    epochs: float = 1.0
    """Passes over the training prompts (fractions allowed); ignored when max_steps > 0."""
    max_steps: int = 0
    """Optimizer steps in all; 0 means from epochs."""
    prompts_per_micro_batch: int = 4
    """Prompts (each with all its judged responses) scored in one forward pass."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step (prompts per step = micro batch x this)."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm); 0 turns clipping off."""
    max_length: int = 512
    """Tokens per prompt+response; longer ones keep their end (the response and EOS)."""
    pooling: Literal["distinct_sum_last", "both", "sum_last", "sum", "mean", "last"] = "distinct_sum_last"
    """What the score head reads: the sum (distinct: repeats left out) or mean of the reply, its last token, or both."""
    margin_mode: Literal["none", "tier_distance"] = "none"
    """Margin in the loss: none, or the judged distance (tiers apart / rating difference)."""
    margin_scale: float = 1.0
    """Multiplier applied to the judged distance when margin_mode="tier_distance"."""
    off_topic_pairs: int = 2
    """Extra pairs per training prompt: its best reply beats an unrelated request's best reply (0 = none)."""
    val_fraction: float = 0.10
    """Share of the training-split prompts kept aside for validation (whole prompts)."""
    eval_every: int = 20
    """Evaluate on the validation prompts every this many steps (and at the end)."""
    early_stopping_patience: int = 3
    """Stop after this many evaluations without a better validation accuracy; 0 turns it off."""
    early_stopping_after: float = 0.3
    """Early stopping may only stop after this fraction of the steps (early evaluations are noisy)."""
    restore_best: bool = True
    """At the end, keep the weights of the best validation accuracy rather than the last ones."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every this many steps (also on cancel and at the end)."""
    min_pairs: int = 20
    """Pre-flight: refuse to train on fewer pairs than this."""
    seed: int = 0
    """Seed for the split, the data order and the head's initialisation."""
    device: str = "auto"
    """auto (CUDA when present), cuda, cuda:N or cpu."""
    bf16: bool = True
    """bf16 autocast on CUDA (weights and optimizer stay fp32)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (slower)."""
    quantization: Literal["auto", "none", "8bit", "4bit"] = "auto"
    """Base weights: auto (pre-flight picks full precision, else 4-bit QLoRA if that fits), none, 8bit, 4bit."""
    gpus: int = 1
    """Data-parallel processes (one per GPU, NCCL; gloo processes on a CPU); 1 = this process only."""

    def __post_init__(self) -> None:
        if self.quantization not in ("auto", "none", "8bit", "4bit"):
            raise UserError(f"quantization must be auto, none, 8bit or 4bit, not {self.quantization!r}")
        if self.gpus < 1:
            raise UserError("gpus must be at least 1")
        if self.finetune not in ("full", "lora", "freeze"):
            raise UserError(f"finetune must be full, lora or freeze, not {self.finetune!r}")
        if self.lr_schedule not in ("cosine", "linear", "constant"):
            raise UserError(f"lr_schedule must be cosine, linear or constant, not {self.lr_schedule!r}")
        if self.margin_mode not in ("none", "tier_distance"):
            raise UserError(f"margin_mode must be none or tier_distance, not {self.margin_mode!r}")
        if self.prompts_per_micro_batch < 1 or self.grad_accum_steps < 1:
            raise UserError("prompts_per_micro_batch and grad_accum_steps must be at least 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError("val_fraction must be between 0 and 1")
        if self.max_length < 8:
            raise UserError("max_length must be at least 8 tokens")
        if self.pooling not in POOLINGS:
            raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "RewardConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_saved(cls, values: dict) -> "RewardConfig":
        """A config stored with a run; runs saved before `pooling` existed read the last token."""
        return cls.from_dict({"pooling": "last", **values})

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """{field: its one-line docstring}, for the advanced form and `--help` texts."""
        from core.training.policy_config import field_docs

        return field_docs(cls)

    @property
    def prompts_per_step(self) -> int:
        return self.prompts_per_micro_batch * self.grad_accum_steps
