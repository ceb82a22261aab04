"""Reward model training: Bradley-Terry over every pair implied by the expert's judgments.

This file: the loss, the training step (`RewardTrainer`), the pre-flight checks and the job. The rest is
in reward_config.py (`RewardConfig`), reward_data.py (examples, pairs, encoding, batches, step order) and
reward_model.py (building, pooling, scoring, loading); every name is also importable from here.

- Pairs come from `core.training.pairs` (via `project.preference_pairs()`); a step takes a set of prompts
  with ALL their judged responses, scores each response once, and forms all of that prompt's pairs from
  those scores (InstructGPT). Each prompt weighs the same in the loss, whatever its number of pairs.
- Loss: -log sigmoid(r_w - r_l - margin).
- The reward is the score head applied to a summary of the final hidden states: by default
  (pooling="distinct_sum_last") the average of the last non-pad token and the sum over the reply's tokens
  (over a constant, SUM_DIVISOR) that do not repeat an earlier run of REPEAT_NGRAM tokens of the same
  reply (core/training/reward_model.py; docs/training.md gives the figures). "sum_last" sums every token,
  "both" averages the mean with the last token; "sum", "mean" and "last" are the single readings; runs
  saved before the option existed load as "last". Positions and the reply's span come from the attention
  mask, so left and right padding give the same reward.
- Train/validation split by prompt; prompts of the "heldout" split are never trained on (only scored).
- After training the rewards are centred (mean 0 over the training responses); offset and scale are
  stored with the weights and applied by `RewardModel.score`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Cancelled, Progress
from core.training import checkpoint as ckpt
from core.training.reward_config import POOLINGS, RewardConfig
from core.training.reward_data import (
    Batch,
    PromptExample,
    RewardData,
    collate,
    collect_data,
    with_off_topic_contrasts,
    data_snapshot_hash,
    encode_pair,
    encode_scored,
    split_by_prompt,
    step_examples,
    steps_per_epoch,
    tokenize,
    total_steps,
)
from core.training.reward_model import (
    FINAL,
    SUM_DIVISOR,
    RewardModel,
    _quiet_transformers as _quiet_transformers,
    build_reward_model,
    ensure_pad_token,
    last_token_index,
    load_reward_model,
    resolve_device,
    score,
    score_prompt,
    score_sequences,
    sequence_rewards,
)

__all__ = [
    "POOLINGS",
    "SUM_DIVISOR",
    "RewardConfig",
    "PromptExample",
    "RewardData",
    "RewardTrainer",
    "RewardModel",
    "RewardResult",
    "bradley_terry_loss",
    "last_token_index",
    "sequence_rewards",
    "split_by_prompt",
    "encode_pair",
    "encode_scored",
    "build_reward_model",
    "collect_data",
    "data_snapshot_hash",
    "preflight",
    "start_summary",
    "train_reward_model",
    "load_reward_model",
    "score",
    "score_prompt",
    # also re-exported from reward_data / reward_model, for the callers that import them from here
    "CHECKPOINT",
    "FINAL",
    "Batch",
    "collate",
    "tokenize",
    "with_off_topic_contrasts",
    "steps_per_epoch",
    "total_steps",
    "step_examples",
    "resolve_device",
    "ensure_pad_token",
    "score_sequences",
    "lr_at",
    "estimate_memory",
    "available_memory",
]

CHECKPOINT = "checkpoint"
"""The artifact of an unfinished run: weights, optimizer, state and data ids, to resume from."""


# ----------------------------------------------------------------------------------------------------
# Loss and learning rate
# ----------------------------------------------------------------------------------------------------
def bradley_terry_loss(rewards, winners, losers, margins, groups, n_groups: int):
    """Per-group mean of -log sigmoid(r_w - r_l - m).

    rewards [N]; winners, losers, groups [P] long; margins [P]. Returns (group_loss [n_groups],
    pair_loss [P], diff [P] = r_w - r_l). Each response was scored once; pairs index into the scores.
    """
    diff = rewards[winners] - rewards[losers]  # [P]
    pair_loss = -F.logsigmoid(diff - margins)  # [P]
    sums = torch.zeros(n_groups, dtype=pair_loss.dtype, device=pair_loss.device).index_add(0, groups, pair_loss)
    counts = torch.zeros(n_groups, dtype=pair_loss.dtype, device=pair_loss.device).index_add(
        0, groups, torch.ones_like(pair_loss)
    )
    return sums / counts.clamp(min=1), pair_loss, diff


def _correct(diff: torch.Tensor) -> torch.Tensor:
    """1 when the winner scores higher, 0.5 on an exact tie (a constant model scores 0.5, not 0)."""
    return (diff > 0).float() + 0.5 * (diff == 0).float()


def lr_at(step: int, total: int, config: RewardConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine/linear/constant decay."""
    peak = config.learning_rate
    warmup = int(round(config.warmup_ratio * total))
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if config.lr_schedule == "constant":
        return peak
    low = peak * config.min_lr_ratio
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.lr_schedule == "linear":
        return peak - (peak - low) * progress
    return low + (peak - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------------
# The training step (shared by the job and bench/reward.py)
# ----------------------------------------------------------------------------------------------------
class RewardTrainer:
    """Model + optimizer + the step. Knows nothing about the project."""

    def __init__(self, model, tokenizer, config: RewardConfig, total_steps: int, device: torch.device):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device = device
        self.total_steps = max(1, total_steps)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        # Keep parameter order == self.names order so optimizer state maps back by name.
        order = {id(p): i for i, p in enumerate(params)}
        self.names = [self.names[order[id(p)]] for p in decay + no_decay]
        self.params = decay + no_decay
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
            fused=device.type == "cuda",
        )
        self.autocast = device.type == "cuda" and config.bf16
        self.pad_id = tokenizer.pad_token_id

    def _autocast(self):
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batch(self, examples: Sequence[PromptExample]) -> Batch:
        return collate(examples, self.pad_id, self.device)

    def rewards(self, b: Batch) -> torch.Tensor:
        return sequence_rewards(self.model, b.input_ids, b.attention_mask, b.starts, self.config.pooling)

    def train_step(self, micro_batches: Sequence[Batch], step: int) -> dict[str, float]:
        """One optimizer step over the micro-batches (gradient accumulation); returns step metrics."""
        self.model.train()
        lr = lr_at(step, self.total_steps, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_prompts = sum(b.n_prompts for b in micro_batches)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        diff_sum = torch.zeros((), device=self.device)
        n_pairs = 0
        for b in micro_batches:
            with self._autocast():
                rewards = self.rewards(b)  # [N]
            group_loss, _, diff = bradley_terry_loss(rewards, b.winners, b.losers, b.margins, b.groups, b.n_prompts)
            loss = group_loss.sum() / n_prompts  # every prompt weighs the same in the step
            loss.backward()
            loss_sum += loss.detach()
            correct += _correct(diff.detach()).sum()
            diff_sum += diff.detach().sum()
            n_pairs += b.n_pairs
        if self.config.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in self.params if p.grad is not None])
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.stack([loss_sum, correct / max(1, n_pairs), diff_sum / max(1, n_pairs), grad_norm.float()])
        loss_v, acc_v, margin_v, gn_v = stats.tolist()  # one device sync per step
        return {"loss/train": loss_v, "accuracy/train": acc_v, "margin/train": margin_v, "grad/norm": gn_v, "lr": lr}

    @torch.no_grad()
    def evaluate(self, examples: Sequence[PromptExample], prefix: str = "val") -> dict[str, float]:
        """Prompt-weighted loss (as in training), pairwise accuracy and mean margin r_w - r_l."""
        self.model.eval()
        if not examples:
            return {}
        size = self.config.prompts_per_micro_batch
        loss_sum, correct, diff_sum, n_pairs = 0.0, 0.0, 0.0, 0
        for i in range(0, len(examples), size):
            b = self.batch(examples[i : i + size])
            with self._autocast():
                rewards = self.rewards(b)
            group_loss, _, diff = bradley_terry_loss(rewards, b.winners, b.losers, b.margins, b.groups, b.n_prompts)
            loss_sum += float(group_loss.sum())
            correct += float(_correct(diff).sum())
            diff_sum += float(diff.sum())
            n_pairs += b.n_pairs
        return {
            f"loss/{prefix}": loss_sum / len(examples),
            f"accuracy/{prefix}": correct / max(1, n_pairs),
            f"margin/{prefix}": diff_sum / max(1, n_pairs),
        }

    def raw_scores(self, examples: Sequence[PromptExample], batch_size: int = 32) -> list[float]:
        """Uncentred rewards of every response of the examples, in order."""
        seqs = [t for ex in examples for t in ex.tokens]
        starts = [s for ex in examples for s in (ex.starts or [0] * len(ex.tokens))]
        return score_sequences(
            self.model,
            seqs,
            self.pad_id,
            self.device,
            self.autocast,
            batch_size,
            starts=starts,
            pooling=self.config.pooling,
        )


# ----------------------------------------------------------------------------------------------------
# Pre-flight
# ----------------------------------------------------------------------------------------------------
def _param_count(path: str) -> int:
    from core.models.loading import count_parameters, load_config

    return count_parameters(load_config(path))


def available_memory(device: torch.device) -> int:
    from core.models.loading import available_memory as free_bytes

    return free_bytes(device)


def estimate_memory(n_params: int, config: RewardConfig) -> int:
    """Bytes for weights + grads + AdamW state, plus a rough activation allowance."""
    if config.finetune == "lora":
        train_frac = 0.02
    elif config.finetune == "freeze":
        train_frac = 0.5
    else:
        train_frac = 1.0
    weights = 4 * n_params
    training = 12 * n_params * train_frac  # fp32 grad + two Adam moments
    activations = 2 * n_params**0.5 * config.max_length * config.prompts_per_micro_batch * 4 * 64
    return int(weights + training + activations)


def preflight(config: RewardConfig, data: RewardData, device: torch.device) -> dict:
    """Refuse early, with a plain message, when the data or the memory cannot give a useful model."""
    n_pairs = data.n_pairs
    n_prompts = len(data.train) + len(data.val)
    if n_pairs < config.min_pairs:
        raise UserError(
            f"only {n_pairs} preference pairs from {n_prompts} prompts: rank more "
            f"(at least {config.min_pairs} pairs are needed to train a reward model)"
        )
    if len(data.train) < 1 or len(data.val) < 1:
        raise UserError(
            f"only {n_prompts} prompts have judgments: rank candidates for at least 2 training prompts "
            "(whole prompts are kept aside for validation)"
        )
    n_params = _param_count(config.base_model)
    from core.training.quantization import plan_for_reward

    # The memory plan (quantization, checkpointing) that fits, or a UserError saying what was tried.
    plan = plan_for_reward(config, device, n_params, available_memory(device))
    return {"n_params": n_params, "memory_needed": plan.need_bytes, "memory_free": plan.free_bytes, **plan.as_dict()}


# ----------------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------------
@dataclass
class RewardResult:
    run_id: int
    steps: int
    stopped_early: bool
    offset: float
    scale: float
    metrics: dict[str, float]
    """Final figures: accuracy/val (held-out validation prompts), loss/val, margin/val, and
    accuracy/heldout when heldout-split prompts have judgments."""

    @property
    def heldout_accuracy(self) -> Optional[float]:
        return self.metrics.get("accuracy/heldout", self.metrics.get("accuracy/val"))


def _save_checkpoint(
    proj, run_id: int, trainer: RewardTrainer, state: dict, data: RewardData, best: Optional[dict[str, torch.Tensor]]
) -> None:
    tensors = dict(ckpt.trainable_state(trainer.model))
    tensors.update(ckpt.rng_state())
    if best is not None and state["best_step"] != state["step"]:  # else the weights above are the best
        tensors.update({f"best::{k}": v for k, v in best.items()})
    opt_bytes, opt_meta = ckpt.optimizer_to_files(trainer.optimizer, trainer.names)
    proj.save_artifact(
        run_id,
        CHECKPOINT,
        {
            "model.safetensors": ckpt.tensors_to_bytes(tensors),
            "optimizer.safetensors": opt_bytes,
            "optimizer.json": ckpt.json_bytes(opt_meta),
            "state.json": ckpt.json_bytes(state),
            "data.json": ckpt.json_bytes(data.ids()),
        },
    )


def start_summary(data: RewardData, pre: dict, **extra) -> dict:
    """What a reward run records when it starts: its data snapshot, split sizes and memory plan."""
    return {
        "data_hash": data.snapshot_hash,
        "pairs_train": sum(len(e.pairs) for e in data.train),
        "pairs_val": sum(len(e.pairs) for e in data.val),
        "prompts_train": len(data.train),
        "prompts_val": len(data.val),
        "prompts_heldout": len(data.heldout),
        "n_params": pre["n_params"],
        "memory_plan": pre["plan"],
        **extra,
    }


def train_reward_model(
    proj, config: RewardConfig | dict, *, cancel: CancelToken = NEVER, resume_run: Optional[int] = None
) -> Iterator[Progress]:
    """Train a reward model on the project's judgments; returns `RewardResult`.

    Yields one Progress per optimizer step: step/total for ETA, metrics `loss/train`, `accuracy/train`,
    `margin/train`, `grad/norm`, `lr`, plus `loss/val`, `accuracy/val`, `margin/val` on evaluation
    steps. The first event carries `run/id`. Cancel: a checkpoint is saved at the step boundary, the run
    is marked "cancelled" and `Cancelled` propagates; `resume_run=run_id` continues from it.
    With `gpus` > 1 the same run trains data-parallel in worker processes (core/training/distributed.py).
    """
    from core.training import distributed

    if distributed.wants_data_parallel(config, proj, resume_run):
        return (yield from distributed.train_reward_model_dp(proj, config, cancel=cancel, resume_run=resume_run))
    resume_state: Optional[dict] = None
    resume_files: Optional[dict] = None
    if resume_run is not None:
        run = proj.run(resume_run)
        if run.kind != "reward":
            raise UserError(f"run {resume_run} is a {run.kind} run, not a reward-model run")
        if run.status == "done":
            raise UserError(f"run {resume_run} has already finished; start a new run instead")
        config = RewardConfig.from_saved(run.config)
        run_id = resume_run
        if proj.has_artifact(run_id, CHECKPOINT):
            resume_files = proj.load_artifact(run_id, CHECKPOINT)
            resume_state = ckpt.json_load(resume_files["state.json"])
            data = RewardData.from_ids(ckpt.json_load(resume_files["data.json"]))
        else:  # stopped before its first checkpoint: start over inside the same run
            data = collect_data(proj, config)
        device = resolve_device(config.device)
    else:
        if isinstance(config, dict):
            config = RewardConfig.from_dict(config)
        device = resolve_device(config.device)
        data = collect_data(proj, config)
        pre = preflight(config, data, device)
        # The run records the concrete plan (never "auto"), so a resume loads the model the same way.
        config = dataclasses.replace(
            config, quantization=pre["quantization"], gradient_checkpointing=pre["gradient_checkpointing"]
        )
        run_id = proj.create_run("reward", asdict(config))
        proj.update_run(run_id, status="running", summary=start_summary(data, pre))

    total = total_steps(len(data.train), config)
    start = resume_state["step"] if resume_state else 0
    summary = dict(proj.run(run_id).summary or {})
    summary.pop("error", None)
    try:
        proj.update_run(run_id, status="running", summary=summary)
        yield Progress(start, total, "loading the base model", metrics={"run/id": float(run_id)})
        model, tokenizer = build_reward_model(config, device)
        cancel.raise_if_cancelled()
        yield Progress(start, total, "tokenizing", metrics={"run/id": float(run_id)})
        tokenize(proj, tokenizer, data.train + data.val + data.heldout, config.max_length)
        train = with_off_topic_contrasts(proj, tokenizer, data.train, config)
        trainer = RewardTrainer(model, tokenizer, config, total, device)

        state = {"step": 0, "best_acc": -1.0, "best_step": 0, "bad_evals": 0, "stopped_early": False}
        best: Optional[dict[str, torch.Tensor]] = None
        if resume_state is not None:
            tensors = ckpt.bytes_to_tensors(resume_files["model.safetensors"])
            ckpt.load_trainable_state(model, {k: v for k, v in tensors.items() if "::" not in k})
            best = {k[len("best::") :]: v for k, v in tensors.items() if k.startswith("best::")} or None
            if best is None and config.restore_best and resume_state["best_step"] == resume_state["step"] > 0:
                best = {k: v.detach().to("cpu", copy=True) for k, v in ckpt.trainable_state(model).items()}
            ckpt.set_rng_state(tensors)
            ckpt.optimizer_from_files(
                trainer.optimizer,
                trainer.names,
                resume_files["optimizer.safetensors"],
                ckpt.json_load(resume_files["optimizer.json"]),
            )
            state = resume_state
            proj.truncate_metrics(run_id, state["step"])  # steps after the checkpoint are redone
            proj.audit("training resumed", run=run_id)
        else:
            proj.truncate_metrics(run_id, 0)
            proj.audit("training started", run=run_id)

        step = state["step"]
        t0, tokens_seen, pairs_seen = time.monotonic(), 0, 0
        while step < total and not state["stopped_early"]:
            try:
                cancel.raise_if_cancelled()
            except Cancelled:
                _save_checkpoint(proj, run_id, trainer, state, data, best)
                raise
            micro = [trainer.batch(exs) for exs in step_examples(train, step, config)]
            metrics = trainer.train_step(micro, step)
            step += 1
            tokens_seen += sum(b.n_tokens for b in micro)
            pairs_seen += sum(b.n_pairs for b in micro)
            elapsed = max(1e-9, time.monotonic() - t0)
            metrics["throughput/pairs_per_s"] = pairs_seen / elapsed
            metrics["throughput/tokens_per_s"] = tokens_seen / elapsed
            metrics["progress/epoch"] = step / steps_per_epoch(len(data.train), config)
            if step % config.eval_every == 0 or step == total:
                val = trainer.evaluate(data.val)
                metrics.update(val)
                if val["accuracy/val"] > state["best_acc"]:
                    state.update(best_acc=val["accuracy/val"], best_step=step, bad_evals=0)
                    if config.restore_best:  # CPU copy, so a later, worse evaluation can roll back
                        best = {k: v.detach().to("cpu", copy=True) for k, v in ckpt.trainable_state(model).items()}
                else:
                    state["bad_evals"] += 1
                    if (
                        config.early_stopping_patience
                        and state["bad_evals"] >= config.early_stopping_patience
                        and step >= config.early_stopping_after * total
                    ):
                        state["stopped_early"] = True
            state["step"] = step
            proj.log_metrics(run_id, step, metrics)
            if config.checkpoint_every > 0 and step % config.checkpoint_every == 0 and step < total:
                _save_checkpoint(proj, run_id, trainer, state, data, best)
            yield Progress(step, total, "training", metrics=metrics)

        # Finish: best weights, centring, final figures, the "final" artifact (short; not cancellable).
        if config.restore_best and best is not None and state["best_step"] != step:
            ckpt.load_trainable_state(model, best)
        final = trainer.evaluate(data.val)
        if data.heldout:
            final.update(trainer.evaluate(data.heldout, prefix="heldout"))
        raw = trainer.raw_scores(data.train)
        offset = float(sum(raw) / len(raw))
        scale = float((sum((r - offset) ** 2 for r in raw) / max(1, len(raw) - 1)) ** 0.5) or 1.0
        meta = {
            "base_model": config.base_model,
            "config": asdict(config),
            "offset": offset,
            "scale": scale,
            "pad_token_id": tokenizer.pad_token_id,
            "steps": step,
            "best_step": state["best_step"],
        }
        proj.save_artifact(
            run_id,
            FINAL,
            {
                "model.safetensors": ckpt.tensors_to_bytes(ckpt.trainable_state(model)),
                "reward.json": ckpt.json_bytes(meta),
            },
        )
        proj.log_metrics(run_id, step, {f"final/{k}": v for k, v in final.items()})
        summary.update({f"final/{k}": v for k, v in final.items()})
        summary.update(
            {
                "steps": step,
                "total_steps": total,
                "stopped_early": state["stopped_early"],
                "best_step": state["best_step"],
                "reward_offset": offset,
                "reward_scale": scale,
                "data_hash": data.snapshot_hash,
            }
        )
        proj.update_run(run_id, status="done", summary=summary)
        proj.audit("trained", run=run_id)
        # The bar ends full even after an early stop; `final/steps` says how many steps were run.
        yield Progress(
            total,
            total,
            "stopped early" if state["stopped_early"] else "done",
            metrics={"final/steps": float(step), **{f"final/{k}": v for k, v in final.items()}},
        )
        return RewardResult(run_id, step, state["stopped_early"], offset, scale, final)
    except Cancelled:
        proj.update_run(run_id, status="cancelled", summary=summary)
        raise
    except BaseException as exc:  # a crash: mark it, keep the last checkpoint for resume
        summary["error"] = type(exc).__name__  # the type only: messages may quote user text
        try:
            proj.update_run(run_id, status="failed", summary=summary)
        except Exception:
            pass
        raise
