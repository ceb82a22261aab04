"""The policy-training job: PPO, RLOO, GRPO or DPO on a project, with metrics, samples and checkpoints.

    result = run_job(train_policy(proj, PolicyConfig(algo="ppo", policy_path=..., reward_run=3),
                                  cancel=token))

Yields one `Progress` per training step with namespaced metrics (reward/mean and each reward part,
kl/mean, kl/beta, policy/entropy, loss/policy, loss/value, policy/clipfrac, policy/approx_kl,
response/length, response/eos_rate, perf/samples_per_s, and the reward-hacking monitors
monitor/length_ratio and monitor/truncated, core/training/monitors.py) and, every `log_samples_every`
steps, sample rows (prompt, response, reward parts) in `Progress.samples`. The first event carries
`run/id`; before the first step one event carries the base model's figures (monitor/base_length,
monitor/base_truncated), measured once per run and kept in the summary (`monitor_baseline`).

Cancel: a checkpoint is saved at the step boundary, the run is marked "cancelled" and `Cancelled`
propagates; `resume_run=run_id` continues it exactly (step numbers, beta, optimizer, RNG states).
Out of memory: the run is marked "failed" and a `UserError` with advice is raised; the caller stays up.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Cancelled, Progress
from core.training.hybrid_reward import HybridReward, RewardFn
from core.training.policy_common import (
    OOM_ADVICE,
    PolicyWithReference,
    batch_indices,
    is_out_of_memory,
    load_policy_model,
    preflight_memory,
)
from core.training import monitors
from core.training.policy_config import PolicyConfig

CHECKPOINT = "checkpoint"
FINAL = "policy"
DATA = "data"


@dataclass
class PolicyResult:
    run_id: int
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    """The last step's metrics."""


# --------------------------------------------------------------------------------------------------
# Data and reward
# --------------------------------------------------------------------------------------------------


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def collect_ids(proj, cfg: PolicyConfig) -> dict:
    """Which prompts (online algorithms) or pairs (DPO) this run trains on: ids only, never text."""
    if cfg.algo == "dpo":
        pairs = [[p.prompt_id, p.chosen_id, p.rejected_id] for p in proj.preference_pairs(split="train")]
        if len(pairs) < 2:
            raise UserError(
                f"DPO needs preference pairs: the project has {len(pairs)} on training prompts. "
                "Rank or compare more responses first."
            )
        prompt_ids = sorted({p[0] for p in pairs})
        return {"pairs": pairs, "prompt_ids": prompt_ids}
    prompt_ids = [p.id for p in proj.prompts(split="train")]
    if not prompt_ids:
        raise UserError("The project has no training prompts. Import or add prompts first.")
    return {"prompt_ids": prompt_ids}


AUTO_REPLY_FALLBACK = 64
"""max_new_tokens when set to automatic and the project has no candidate replies to measure."""


def auto_reply_length(proj, policy_path: str, max_prompts: int = 400) -> int:
    """A reply limit that the project's own candidate replies fit under: their 95th percentile in the
    policy's tokens, plus room for EOS, rounded up to 16 (32 to 512).

    Why: a limit below what the expert's candidates need cuts good replies off, and the missing-EOS
    penalty then teaches the policy that short is better (the demo's 64-token preset cut a quarter of its
    candidates). Reads at most `max_prompts` training prompts, spread over the project.
    """
    from core.models.loading import load_tokenizer

    ids = proj.prompt_ids(split="train")
    if len(ids) > max_prompts:
        ids = ids[:: max(1, len(ids) // max_prompts)][:max_prompts]
    texts = [r.text for pid in ids for r in proj.responses(pid)]
    if not texts:
        return AUTO_REPLY_FALLBACK
    tokenizer = load_tokenizer(policy_path)  # a folder that is not a model: a UserError that says so
    lengths = sorted(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    return int(min(512, max(32, -(-(p95 + 8) // 16) * 16)))


def resolve_reply_length(proj, cfg: PolicyConfig) -> PolicyConfig:
    """`cfg` with max_new_tokens = 0 (automatic) replaced by `auto_reply_length`; a run records the number."""
    if cfg.max_new_tokens == 0 and cfg.policy_path:
        try:
            cfg = dataclasses.replace(cfg, max_new_tokens=auto_reply_length(proj, cfg.policy_path))
        except UserError:
            pass  # not a model folder: loading the model says so, inside the run, where the user sees it
    return cfg


CRITIC_COPY_MAX_PARAMS = 300_000_000
"""value_init=auto copies the reward model into the critic up to this size: the copy trains in full (weights,
gradients and Adam moments, ~16 bytes a parameter), which beside a LoRA policy is affordable for small
models and not for billions of parameters."""


def resolve_value_init(cfg: PolicyConfig, reward_model, tokenizer) -> PolicyConfig:
    """`cfg` with PPO's critic made concrete. auto: the reward model's copy (InstructGPT's critic, which
    starts knowing what the reward favours instead of learning it from scratch while the policy moves) when
    there is a reward model that reads the policy's tokens, sits on its device and is at most
    CRITIC_COPY_MAX_PARAMS; otherwise a value head on the policy. reward: the copy, or a UserError saying
    why it cannot be. The same models give the same choice, so a resumed run rebuilds the critic its
    checkpoint holds."""
    if cfg.value_init == "head" or (cfg.value_init == "reward" and cfg.algo != "ppo"):
        return cfg  # only PPO has a critic; auto still records "head" for the others
    # The critic reads the policy's token ids, so it must share the policy's vocabulary.
    same_tokens = reward_model is not None and getattr(reward_model, "_rlhf_vocab", None) == tokenizer.get_vocab()
    if cfg.value_init == "reward":
        if reward_model is None:
            raise UserError("value_init=reward needs a reward-model run; use value_init=head.")
        if not same_tokens:
            raise UserError(
                "The reward model was trained on a base with another tokenizer, so it "
                "cannot start the critic; use value_init=head."
            )
        return cfg
    copy_fits = (
        cfg.algo == "ppo"
        and same_tokens
        and cfg.reward_device in ("auto", "", cfg.device)
        and sum(p.numel() for p in reward_model.parameters()) <= CRITIC_COPY_MAX_PARAMS
    )
    return dataclasses.replace(cfg, value_init="reward" if copy_fits else "head")


def build_reward(proj, cfg: PolicyConfig, device: torch.device, reward_fn: Optional[RewardFn]):
    """(reward callable or None, reward model or None). The reward model is optional for DPO."""
    model_fn, scale, reward_model = reward_fn, 1.0, None
    if model_fn is None and cfg.reward_run is not None:
        from core.training.reward import load_reward_model

        run = proj.run(cfg.reward_run)
        if run.kind != "reward":
            raise UserError(f"Run {cfg.reward_run} is a {run.kind} run, not a reward-model run.")
        rm = load_reward_model(
            proj, cfg.reward_run, device=str(device) if cfg.reward_device in ("auto", "") else cfg.reward_device
        )
        model_fn, scale, reward_model = rm, float(rm.scale or 1.0), rm.model
        reward_model._rlhf_vocab = rm.tokenizer.get_vocab()  # checked before it becomes the critic
    if model_fn is None and not HybridReward._any_auto(cfg.reward):
        if cfg.algo == "dpo":
            return None, None
        raise UserError(
            f"{cfg.algo.upper()} needs a reward: choose a reward-model run (--reward RUN) "
            "or switch on an automatic reward term."
        )
    return HybridReward(cfg.reward, model_fn=model_fn, model_scale=scale), reward_model


def _dpo_pairs(proj, pairs_ids):
    from core.training.dpo import PairText

    prompts, texts = {}, {}
    out = []
    for pid, cid, rid in pairs_ids:
        if pid not in prompts:
            prompts[pid] = proj.prompt(pid).prompt
        for r in (cid, rid):
            if r not in texts:
                texts[r] = proj.response(r).text
        out.append(PairText(prompts[pid], texts[cid], texts[rid]))
    return out


def make_trainer(
    cfg: PolicyConfig,
    policy: PolicyWithReference,
    tokenizer,
    reward,
    *,
    reward_model=None,
    pairs=None,
    eval_prompts=None,
    eval_references=None,
):
    if cfg.algo == "ppo":
        from core.training.ppo import PPOTrainer

        return PPOTrainer(policy, tokenizer, cfg, reward, reward_model=reward_model)
    if cfg.algo in ("rloo", "grpo"):
        from core.training.rloo import GroupTrainer

        return GroupTrainer(policy, tokenizer, cfg, reward)
    from core.training.dpo import DPOTrainer

    return DPOTrainer(
        policy, tokenizer, cfg, pairs, reward_fn=reward, eval_prompts=eval_prompts, eval_references=eval_references
    )


def build_policy(cfg: PolicyConfig) -> tuple[PolicyWithReference, Any]:
    from core.training.quantization import prepare_policy_base

    model, tokenizer = load_policy_model(cfg.policy_path, cfg.device, cfg.dtype, quantization=cfg.quantization)
    model = prepare_policy_base(model, cfg)  # 4-/8-bit base for QLoRA, gradient checkpointing
    torch.manual_seed(cfg.seed)  # LoRA's initialisation
    policy = PolicyWithReference(
        model, cfg.mode, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, freeze_layers=cfg.freeze_layers
    )
    return policy, tokenizer


# --------------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------------


def train_policy(
    proj,
    config: PolicyConfig | dict,
    *,
    cancel: CancelToken = NEVER,
    resume_run: Optional[int] = None,
    reward_fn: Optional[RewardFn] = None,
) -> Iterator[Progress]:
    """Train a policy on the project; returns `PolicyResult`. See the module docstring.

    reward_fn: use this callable as the reward (instead of `config.reward_run`'s model), e.g. a rule.
    DPO with `gpus` > 1 trains data-parallel in worker processes (core/training/distributed.py).
    """
    from core.training import distributed

    if reward_fn is None and distributed.wants_data_parallel(config, proj, resume_run, key="policy"):
        return (yield from distributed.train_dpo_dp(proj, config, cancel=cancel, resume_run=resume_run))
    if resume_run is not None:
        run = proj.run(resume_run)
        if run.kind != "policy":
            raise UserError(f"Run {resume_run} is a {run.kind} run, not a policy run.")
        if run.status == "done":
            raise UserError(f"Run {resume_run} has already finished; start a new run instead.")
        cfg = PolicyConfig.from_dict(run.config["policy"])
        run_id = resume_run
        ids = json.loads(proj.load_artifact(run_id, DATA)["data.json"])
    else:
        cfg = (PolicyConfig.from_dict(config) if isinstance(config, dict) else config).validate()
        if not cfg.policy_path:
            raise UserError("Choose the policy's base model folder (policy_path).")
        from core.training.quantization import resolve_policy_plan

        cfg = resolve_reply_length(proj, cfg)
        cfg, plan = resolve_policy_plan(cfg, proj)  # concrete quantization/checkpointing, or a UserError
        ids = collect_ids(proj, cfg)
        provenance = {
            "data_hash": _hash(ids),
            "n_prompts": len(ids["prompt_ids"]),
            "n_pairs": len(ids.get("pairs", [])),
            "reward_run": cfg.reward_run,
            "reward_function": "custom" if reward_fn is not None else None,
            "memory_plan": plan.describe() if plan else None,
        }
        if cfg.reward_run is not None:
            rrun = proj.run(cfg.reward_run)
            provenance["reward_data_hash"] = rrun.summary.get("data_hash")
        run_id = proj.create_run("policy", {"policy": cfg.to_dict(), "provenance": provenance}, parent=cfg.reward_run)
        proj.save_artifact(run_id, DATA, {"data.json": json.dumps(ids).encode()})

    summary = dict(proj.run(run_id).summary or {})
    trainer = None
    try:
        proj.update_run(run_id, status="running", summary=summary)
        yield Progress(0, cfg.total_steps, "loading the models", metrics={"run/id": float(run_id)})
        policy, tokenizer = build_policy(cfg)
        device = next(policy.model.parameters()).device
        n_trainable = sum(p.numel() for _, p in policy.trainable_named_parameters())
        rows = cfg.batch_size * (cfg.rloo_k if cfg.algo in ("rloo", "grpo") else 2 if cfg.algo == "dpo" else 1)
        if cfg.quantization in ("none", "auto"):  # quantized: the plan above is the estimate
            summary["memory"] = preflight_memory(
                policy.model,
                device,
                cfg.mode,
                batch_size=min(rows, cfg.minibatch_size * 2),
                seq_len=cfg.max_prompt_tokens + cfg.max_new_tokens,
                n_trainable=n_trainable,
            )
        reward, reward_model = build_reward(proj, cfg, device, reward_fn)
        cfg = resolve_value_init(cfg, reward_model, tokenizer)
        if cfg.algo == "ppo":
            summary["critic"] = "reward-model copy" if cfg.value_init == "reward" else "value head"
        cancel.raise_if_cancelled()

        prompt_rows = proj.prompts(ids=ids["prompt_ids"]) if ids["prompt_ids"] else []
        by_id = {p.id: p for p in prompt_rows}
        prompts = [by_id[i].prompt for i in ids["prompt_ids"]]
        references = [by_id[i].reference for i in ids["prompt_ids"]]
        pairs = _dpo_pairs(proj, ids["pairs"]) if cfg.algo == "dpo" else None
        yield Progress(0, cfg.total_steps, "preparing", metrics={"run/id": float(run_id)})
        trainer = make_trainer(
            cfg,
            policy,
            tokenizer,
            reward,
            reward_model=reward_model,
            pairs=pairs,
            eval_prompts=prompts,
            eval_references=references,
        )
        if resume_run is not None and proj.has_artifact(run_id, CHECKPOINT):
            trainer.restore(proj.load_artifact(run_id, CHECKPOINT))
            proj.truncate_metrics(run_id, trainer.step_count)  # steps logged after the checkpoint
        elif resume_run is not None:
            proj.truncate_metrics(run_id, 0)
        saved_step = trainer.step_count
        baseline = yield from _monitor_baseline(proj, run_id, cfg, policy, tokenizer, prompts, summary, cancel)
        watch = monitors.Watch(baseline, kl_target=monitors.kl_target_of(cfg))

        metrics: dict[str, float] = {}
        while trainer.step_count < cfg.total_steps:
            cancel.raise_if_cancelled()
            step = trainer.step_count  # 0-based index of the step about to run
            if cfg.algo == "dpo":
                metrics, exp = trainer.step()
            else:
                idx = batch_indices(len(prompts), cfg.batch_size, step, cfg.seed)
                metrics, exp = trainer.step([prompts[i] for i in idx], [references[i] for i in idx])
            n = trainer.step_count
            metrics.update(monitors.step_figures(metrics, baseline))  # monitor/length_ratio, monitor/truncated
            watch.add(n, metrics)
            summary["monitors"] = _monitor_summary(watch)
            proj.log_metrics(run_id, n, metrics)
            samples = []
            if exp is not None and cfg.log_samples_every and (n % cfg.log_samples_every == 0 or n == 1):
                samples = trainer.sample_rows(exp, cfg.samples_shown)
                proj.log_samples(run_id, n, samples)
            if cfg.checkpoint_every and n % cfg.checkpoint_every == 0 and n < cfg.total_steps:
                proj.save_artifact(run_id, CHECKPOINT, trainer.checkpoint_files())
                saved_step = n
            yield Progress(n, cfg.total_steps, f"{cfg.algo} step {n}", metrics=metrics, samples=samples)

        proj.save_artifact(run_id, CHECKPOINT, trainer.checkpoint_files())
        proj.save_artifact(run_id, FINAL, final_files(cfg, trainer))
        summary.update({"steps": trainer.step_count, "final": metrics})
        proj.update_run(run_id, status="done", summary=summary)
        proj.audit("trained", run=run_id, kind="policy", algo=cfg.algo)
        return PolicyResult(run_id, trainer.step_count, metrics)
    except (Cancelled, GeneratorExit):  # GeneratorExit: the caller dropped the job mid-run
        if trainer is not None and trainer.step_count > saved_step:
            proj.save_artifact(run_id, CHECKPOINT, trainer.checkpoint_files())
        summary["steps"] = trainer.step_count if trainer is not None else 0
        proj.update_run(run_id, status="cancelled", summary=summary)
        raise
    except BaseException as exc:
        oom = is_out_of_memory(exc)
        summary["error"] = "out_of_memory" if oom else type(exc).__name__  # never the message: user text
        trainer = None  # drop the graph and the tensors before anything else
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        try:
            proj.update_run(run_id, status="failed", summary=summary)
        except Exception:
            pass
        if oom:
            raise UserError(OOM_ADVICE) from None
        raise


def _monitor_baseline(proj, run_id, cfg, policy, tokenizer, prompts, summary, cancel):
    """The base model's reply length and truncation on training prompts, measured once per run (before
    the first update, from the reference) and kept in the run's summary and as step-0 metrics."""
    baseline = monitors.Baseline.from_dict(summary.get("monitor_baseline"))
    if baseline is None and prompts:
        cancel.raise_if_cancelled()
        yield Progress(0, cfg.total_steps, "measuring the base model's replies")
        chosen = monitors.baseline_prompts(len(prompts), cfg.seed)
        baseline = monitors.measure_baseline(
            policy, tokenizer, [prompts[i] for i in chosen], cfg, batch_size=cfg.forward_batch_size
        )
        summary["monitor_baseline"] = baseline.to_dict()
        proj.update_run(run_id, summary=summary)
        proj.log_metrics(run_id, 0, baseline.metrics())
    if baseline is not None:
        yield Progress(0, cfg.total_steps, "base model measured", metrics=baseline.metrics())
    return baseline


def _monitor_summary(watch) -> dict:
    return {
        "warnings": [w.code for w in watch.warnings],
        **{k: round(v, 4) for k, v in watch.figures.items() if v is not None},
    }


def final_files(cfg: PolicyConfig, trainer) -> dict[str, bytes]:
    """The tuned policy: its trainable weights plus what export needs to rebuild the model."""
    from core.training.policy_common import _st_save, trainable_state

    meta = {
        "policy_path": cfg.policy_path,
        "mode": cfg.mode,
        "lora_r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "freeze_layers": cfg.freeze_layers,
        "algo": cfg.algo,
        "step": trainer.step_count,
    }
    return {
        "policy.safetensors": _st_save(trainable_state(trainer.policy.model)),
        "policy.json": json.dumps(meta).encode(),
    }
