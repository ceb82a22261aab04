"""Hyperparameters of a policy run (PPO, RLOO, GRPO, DPO), its presets and the KL controllers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal, Optional

from core.errors import UserError
from core.training.hybrid_reward import HybridRewardConfig

ALGOS = ("ppo", "rloo", "grpo", "dpo")
MODES = ("lora", "freeze", "full")


@dataclass
class PolicyConfig:
    algo: Literal["ppo", "rloo", "grpo", "dpo"] = "ppo"
    """Algorithm: PPO (critic), RLOO or GRPO (group baselines, no critic), DPO (from the pairs)."""
    policy_path: str = ""
    """The base model folder (a local Hugging Face causal LM)."""
    reward_run: Optional[int] = None
    """The reward-model run to optimise against (not needed for DPO or rule-only rewards)."""
    mode: Literal["lora", "freeze", "full"] = "lora"
    """lora: adapters (reference = adapters off); freeze: train the top layers; full: every weight."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    freeze_layers: int = 0
    """With mode=freeze: how many bottom blocks (plus embeddings) stay frozen."""
    device: str = "auto"
    """cuda, mps, cpu or auto."""
    dtype: str = "auto"
    """bfloat16 where supported, else float32 (auto); or name one."""
    quantization: Literal["auto", "none", "8bit", "4bit"] = "auto"
    """Base weights: auto (pre-flight picks full precision, else 4-bit QLoRA if that fits), none, 8bit, 4bit."""
    gradient_checkpointing: bool = False
    """Recompute each block's activations in the backward pass to save memory (slower)."""
    reward_device: str = "auto"
    """Where the reward model scores: auto (the policy's device) or cpu (frees GPU memory; slower)."""
    rollout_engine: Literal["static", "compiled", "vllm"] = "static"
    """Rollout sampler: static-KV-cache loop, the same under torch.compile, or vLLM when installed."""
    gpus: int = 1
    """DPO data-parallel processes (one per GPU, NCCL; gloo processes on a CPU); 1 = this process only."""
    seed: int = 0
    """Seeds sampling, minibatch order and initialisation."""

    total_steps: int = 100
    """Training steps: rollout batches (PPO/RLOO/GRPO) or optimizer steps (DPO)."""
    batch_size: int = 16
    """Prompts per step (RLOO/GRPO sample k responses for each) or pairs per DPO step."""
    minibatch_size: int = 8
    """Samples per gradient step inside a PPO epoch."""
    ppo_epochs: int = 4
    """Passes over each rollout batch (PPO, RLOO, GRPO)."""
    learning_rate: float = 1e-4
    """AdamW learning rate (LoRA likes ~1e-4; full fine-tuning ~1e-5)."""
    adam_eps: float = 1e-5
    """AdamW epsilon (CleanRL's choice for PPO)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""

    temperature: float = 0.7
    """Sampling temperature; the log-probs use the same scaling."""
    max_new_tokens: int = 0
    """Response length limit in tokens; 0 = automatic: fits 95% of the project's candidate replies."""
    max_prompt_tokens: int = 256
    """Longer prompts keep their last tokens."""
    missing_eos_penalty: Optional[float] = 1.0
    """Subtracted from the score of a response that never emits EOS (None = off)."""

    kl_coef: float = 0.01
    """Initial beta: weight of the per-token KL(policy || reference) penalty."""
    adaptive_kl: bool = True
    """Adapt beta towards kl_target (Ziegler et al. 2019); False keeps beta fixed."""
    kl_target: float = 6.0
    """Target KL per response (nats) for the adaptive controller."""
    kl_horizon: int = 10000
    """Controller horizon in samples: bigger = slower beta changes."""

    gamma: float = 1.0
    """GAE discount."""
    lam: float = 0.95
    """GAE lambda."""
    cliprange: float = 0.2
    """PPO ratio clip epsilon."""
    cliprange_value: float = 0.2
    """Value clip range around the rollout values."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    value_init: Literal["auto", "head", "reward"] = "auto"
    """PPO critic: a reward-model copy, a value head on the policy, or auto (the copy when small enough)."""

    rloo_k: int = 4
    """RLOO/GRPO: responses sampled per prompt (the group)."""
    normalize_advantages: bool = True
    """RLOO: whiten advantages over the batch."""

    dpo_beta: float = 0.1
    """DPO beta: strength of the implicit KL constraint."""
    label_smoothing: float = 0.0
    """DPO conservative label smoothing (0 = plain DPO)."""
    dpo_eval_every: int = 10
    """DPO: sample and score responses every N steps (for reward/KL charts); 0 = never."""

    reward: HybridRewardConfig = field(default_factory=HybridRewardConfig)
    """Reward model weight and automatic terms."""

    log_samples_every: int = 10
    """Store a table of sample responses every N steps."""
    samples_shown: int = 4
    """Rows in each sample table."""
    checkpoint_every: int = 10
    """Save a resumable checkpoint every N steps (and at the end or on cancel)."""
    forward_batch_size: int = 16
    """Rows per no-grad forward pass when scoring rollouts."""

    def validate(self) -> "PolicyConfig":
        if self.algo not in ALGOS:
            raise UserError(f"Unknown algorithm {self.algo!r}; choose one of {', '.join(ALGOS)}.")
        if self.mode not in MODES:
            raise UserError(f"Unknown training mode {self.mode!r}; choose one of {', '.join(MODES)}.")
        if self.quantization not in ("auto", "none", "8bit", "4bit"):
            raise UserError(f"quantization must be auto, none, 8bit or 4bit, not {self.quantization!r}.")
        if self.rollout_engine not in ("static", "compiled", "vllm"):
            raise UserError(f"rollout_engine must be static, compiled or vllm, not {self.rollout_engine!r}.")
        if self.gpus < 1 or (self.gpus > 1 and self.algo != "dpo"):
            raise UserError("gpus must be 1, or more for DPO (data-parallel PPO/RLOO/GRPO is not supported).")
        if self.value_init not in ("auto", "head", "reward"):
            raise UserError(f"value_init must be auto, head or reward, not {self.value_init!r}.")
        if self.value_init == "reward" and self.reward_device not in ("auto", "", self.device):
            raise UserError(
                "value_init=reward copies the reward model into the critic, so it must be on the "
                "policy's device: keep reward_device=auto or use value_init=head."
            )
        if self.algo in ("rloo", "grpo") and self.rloo_k < 2:
            raise UserError("RLOO and GRPO need at least 2 samples per prompt (rloo_k).")
        for name in ("total_steps", "batch_size", "minibatch_size", "ppo_epochs"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1.")
        if self.max_new_tokens < 0:
            raise UserError("max_new_tokens must be at least 1, or 0 for automatic.")
        if self.temperature <= 0:
            raise UserError("temperature must be above 0 (the policy's log-probs are divided by it).")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        d = dict(d)
        reward = HybridRewardConfig(**d.pop("reward", {}) or {})
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(reward=reward, **{k: v for k, v in d.items() if k in known})


PRESETS: dict[str, dict] = {
    # A first look in minutes: few steps, small batches (enough steps that the model visibly moves).
    "quick": dict(
        total_steps=40, batch_size=8, minibatch_size=4, ppo_epochs=4, log_samples_every=5, checkpoint_every=10
    ),
    # The default trade-off.
    "balanced": dict(total_steps=100, batch_size=16, minibatch_size=8, ppo_epochs=4),
    # Longer, more samples per step, more conservative updates.
    "thorough": dict(
        total_steps=400,
        batch_size=32,
        minibatch_size=8,
        ppo_epochs=4,
        learning_rate=5e-5,
        checkpoint_every=20,
        log_samples_every=20,
    ),
}


# A preset's learning rate is RLOO's; PPO's is scaled. A PPO step makes ppo_epochs x batch/minibatch = 8
# optimizer steps on its 16 rollouts where RLOO makes 32 on its 16 x rloo_k = 64, so at RLOO's rate PPO
# moves the policy too little in the same steps (bench/eval_loop.py --defaults, demo expert: PPO's blind
# win 0.896 at 1e-4, 1.000 at 2e-4, as RLOO's).
ALGO_LEARNING_RATE_SCALE = {"ppo": 2.0}

# PPO samples one reply a prompt where RLOO samples rloo_k = 4, so at the same batch it sees a quarter of
# the replies and finds less of what the reward model likes (bench/eval_loop.py --defaults, Balanced: PPO's
# blind win for no_filler 0.823 at 16 prompts a step, 1.000 at 32, as RLOO's; warm 0.938 -> 1.000). Twice
# the batch costs about twice the policy stage, so Quick keeps its speed and Thorough (already 32) its
# memory.
ALGO_PRESET_OVERRIDES = {"ppo": {"balanced": {"batch_size": 32}}}


def preset(name: str, **overrides) -> PolicyConfig:
    """The preset's config for `algo` (PPO's learning rate scaled, its Balanced batch doubled), then any
    other overrides."""
    if name not in PRESETS:
        raise UserError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    cfg = PolicyConfig(**PRESETS[name])
    algo = overrides.get("algo") or cfg.algo
    cfg.learning_rate *= ALGO_LEARNING_RATE_SCALE.get(algo, 1.0)
    for key, value in ALGO_PRESET_OVERRIDES.get(algo, {}).get(name, {}).items():
        setattr(cfg, key, value)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


# --------------------------------------------------------------------------------------------------
# KL coefficient controllers
# --------------------------------------------------------------------------------------------------


class FixedKLController:
    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state(self) -> dict:
        return {"value": self.value}


class AdaptiveKLController:
    """Ziegler et al. 2019: beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon."""

    def __init__(self, value: float, target: float, horizon: int):
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon

    def state(self) -> dict:
        return {"value": self.value}


def kl_controller(cfg: PolicyConfig):
    if cfg.adaptive_kl:
        return AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    return FixedKLController(cfg.kl_coef)


def finite(x: float) -> float:
    return float(x) if math.isfinite(float(x)) else float("nan")


def field_docs(cls=PolicyConfig) -> dict[str, str]:
    """{field: its one-line docstring}, for the GUI's advanced form (tooltips) and `--help` texts."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = nxt.value.value.strip()
    return docs
