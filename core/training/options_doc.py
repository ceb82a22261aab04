"""Renders docs/training.md from the configuration dataclasses, so the options page cannot drift.

    python -m core.training.options_doc > docs/training.md     (a test checks the file is current)
"""
from __future__ import annotations

import dataclasses

INTRO = """# Training options

Every training run is a core job (`core/jobs.py`) that the app runs on a worker thread and the CLI
runs with a progress bar. Runs, their configuration, metrics, samples and encrypted checkpoints are
recorded in the project; a cancelled or crashed run resumes from its last checkpoint with its step
counter, metric curves, optimizer state, KL coefficient and random state carried on.

Presets fill these options from the device and the data size; the app's "Advanced…" form and the CLI
flags set any of them. This page is generated from the code (`python -m core.training.options_doc`).

## Reward model (`rlhf-studio train-reward`, Train page → Reward model)
A sequence-classification head (`num_labels=1`) on a local base model, trained with the Bradley–Terry
loss −log σ(r_chosen − r_rejected − margin) over every pair implied by each judgment (ranking tiers,
pairwise wins, ratings; ties give no pair). Each response is scored once per forward pass and all of a
prompt's pairs are formed from those scores. Training and validation are split by prompt; held-out
prompts are never trained on. The reward is read at the last non-pad token. After training, rewards are
centred (mean 0 on the training responses) and their scale is recorded.

Presets: **Quick**, **Balanced**, **Thorough** (`core/training/presets.py`) set the length, learning
rate and batch by model size and device, and switch to LoRA when a full fine-tune will not fit. A
pre-flight check refuses too little data ("only 12 pairs: rank more") or a model that will not fit.

"""

POLICY = """
## Policy (`rlhf-studio train-policy`, Train page → Policy)
One Algorithm field selects:
- **PPO** — rollouts at temperature T; reward = reward-model score at the end of the response minus a
  per-token β·KL(policy‖reference) (adaptive β after Ziegler et al., or fixed); a penalty for responses
  that never emit EOS; GAE (γ=1, λ=0.95) with whitened advantages; clipped policy (ε=0.2) and value
  losses over several epochs of minibatches; the critic is a value head on the policy or starts from
  the reward model.
- **RLOO** and **GRPO** — K samples per prompt and a group baseline (leave-one-out mean, or the group's
  mean and standard deviation); no critic.
- **DPO** — directly from the preference pairs, with reference log-probs computed once, β and optional
  label smoothing; no reward model needed.

Training modes: **LoRA** (peft; the reference is the same model with adapters disabled, so no second
copy is held), **freeze** (train the top layers), or **full**. The export (`rlhf-studio export-model`)
writes a standard Hugging Face folder, LoRA merged or as an adapter, after an explicit plaintext
confirmation.

Presets (`core/training/policy_config.py` `PRESETS`):

| preset | overrides |
| --- | --- |
"""

HYBRID = """
## Hybrid reward
The reward model's score (divided by its recorded scale) plus weighted automatic terms the expert can
switch on. Each component is logged as `reward/<name>` beside `reward/mean`.

"""

METRICS = """
## Metrics
Reward model: `loss/train`, `accuracy/train`, `margin/train`, `lr`, `grad/norm`,
`throughput/pairs_per_s`, `throughput/tokens_per_s`, and on evaluations `loss/val`, `accuracy/val`,
`margin/val`.

Policy: `reward/mean` (and each component), `kl/mean`, `kl/beta`, `policy/entropy`, `loss/policy`,
`loss/value`, `policy/clipfrac`, `policy/approx_kl`, `response/length`, `response/eos_rate`,
`perf/samples_per_s`; every few steps a table of samples (prompt, response, reward parts).
"""

PLANS = """
## Memory plans, several GPUs, faster rollouts
`quantization` and `gradient_checkpointing` (reward model and policy alike) form the run's memory plan.
With `quantization=auto` the pre-flight estimates each plan from the model's shape (nothing loads) and
takes the first that fits in 90% of the free memory: full precision; full precision + gradient
checkpointing; 4-bit NF4 base + LoRA + checkpointing (QLoRA, LoRA runs only). The run records the
concrete plan and its summary says which (`memory_plan`), so a resume loads the model the same way.
`4bit`/`8bit` need a CUDA GPU and `bitsandbytes` (`pip install 'rlhf-studio[gpu]'`); elsewhere the
pre-flight says a 4-bit plan is impossible there and, with `auto`, falls back to full precision or
refuses with what it tried. 8-bit is only used when asked for by name. `reward_device=cpu` keeps a
PPO/RLOO reward model off the GPU. Which plan for which machine: docs/models.md.

`gpus` > 1 trains the reward model or DPO data-parallel (`--gpus N`): one worker process per GPU
(NCCL), or gloo worker processes on a CPU; the losses and weights equal one process on the same global
batch. What the workers see: docs/security.md.

`rollout_engine`: `static` (default; static KV cache, CUDA-graph decode on a GPU), `compiled` (the same
decode step under `torch.compile`), or `vllm` when vLLM is installed (weights synced before every
rollout batch; CUDA only, not exercised in CI).
"""


def _table(cls, docs: dict[str, str]) -> str:
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = ""
        if dataclasses.is_dataclass(default):
            default = "see below"
        rows.append(f"| `{f.name}` | `{default!r}` | {docs.get(f.name, '').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def render() -> str:
    from core.training.hybrid_reward import HybridRewardConfig
    from core.training.policy_config import PRESETS, PolicyConfig, field_docs
    from core.training.reward import RewardConfig

    presets = "".join(
        f"| {name} | {', '.join(f'`{k}={v!r}`' for k, v in values.items())} |\n" for name, values in PRESETS.items()
    )
    return (INTRO + _table(RewardConfig, RewardConfig.field_docs()) + POLICY + presets + "\n"
            + _table(PolicyConfig, field_docs(PolicyConfig)) + HYBRID
            + _table(HybridRewardConfig, field_docs(HybridRewardConfig)) + PLANS + METRICS)


if __name__ == "__main__":
    print(render(), end="")
