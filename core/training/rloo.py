"""RLOO (Ahmadian et al. 2024) and GRPO (Shao et al. 2024): critic-free policy gradients, one file.

Both sample k responses per prompt and use the group as the baseline, so no value model is needed.
- RLOO: the reward is the score minus beta * KL summed over the response; each sample's baseline is the
  mean reward of the *other* k - 1 samples of the same prompt (leave-one-out, unbiased).
- GRPO: the advantage is the score standardised within its group; the KL to the reference is a loss
  term (the k3 estimator, per token) instead of a reward penalty.
The update is PPO's clipped surrogate with the sequence advantage on every token.
"""

from __future__ import annotations

import time

import torch

from core.training.policy_common import (
    PolicyWithReference,
    TrainerBase,
    clip_and_step,
    entropy_from_logits,
    forward_response,
    masked_mean,
    minibatches,
    padding_slices,
    stats_to_floats,
    sync,
)
from core.training.ppo import _mean_stats, ppo_losses

# --------------------------------------------------------------------------------------------------
# The math
# --------------------------------------------------------------------------------------------------


def rloo_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """(B*k,) prompt-major rewards -> (B*k,) reward minus the mean of the other k-1 in its group."""
    r = rewards.view(-1, k)  # (B, k)
    baseline = (r.sum(1, keepdim=True) - r) / (k - 1)
    return (r - baseline).reshape(-1)


def grpo_advantages(scores: torch.Tensor, k: int, eps: float = 1e-4) -> torch.Tensor:
    """(B*k,) -> (B*k,) score standardised within its group of k."""
    s = scores.view(-1, k)
    return ((s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + eps)).reshape(-1)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token unbiased, non-negative KL estimate exp(ref - pi) - (ref - pi) - 1 (Schulman 2020)."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1.0


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------


class GroupTrainer(TrainerBase):
    """RLOO when cfg.algo == "rloo", GRPO when cfg.algo == "grpo"."""

    def __init__(self, policy: PolicyWithReference, tokenizer, cfg, reward_fn):
        super().__init__(policy, tokenizer, cfg, reward_fn)
        self.optimizer = self.make_optimizer()

    def step(self, prompts: list, references: list):
        cfg, k = self.cfg, self.cfg.rloo_k
        # Prompt-major layout: rows i*k .. i*k+k-1 are the k samples of prompt i.
        group_prompts = [p for p in prompts for _ in range(k)]
        group_refs = [r for r in references for _ in range(k)]
        exp = self.collect(group_prompts, group_refs)
        mask = exp.mask.float()
        beta = self.kl_ctl.value
        seq_kl = exp.kl.sum(1)  # (B*k,)
        if cfg.algo == "rloo":
            rewards = exp.scores - beta * seq_kl
            adv = rloo_advantages(rewards, k)
            if cfg.normalize_advantages and len(adv) > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        else:
            rewards = exp.scores
            adv = grpo_advantages(exp.scores, k)
        advantages = adv[:, None] * mask  # (B*k, R): the sequence's advantage on each of its tokens

        sync(self.device)
        t0 = time.perf_counter()
        seq, am, P = exp.rollout.sequences, exp.rollout.attention_mask, exp.rollout.prompt_len
        self.minibatch_stats = []
        n = len(group_prompts)
        for _epoch in range(cfg.ppo_epochs):
            for mb in minibatches(n, cfg.minibatch_size, self.minibatch_gen):
                mb = mb.to(self.device)
                cols, resp, mb_P = padding_slices(am[mb], P)
                m = mask[mb][:, resp]
                out = forward_response(
                    self.policy.model, seq[mb][:, cols], am[mb][:, cols], mb_P, cfg.temperature, keep_logits=True
                )
                losses = ppo_losses(out.logprobs, exp.logprobs[mb][:, resp], advantages[mb][:, resp], m, cfg.cliprange)
                loss = losses["pg_loss"]
                if cfg.algo == "grpo":
                    losses["kl_loss"] = masked_mean(k3_kl(out.logprobs, exp.ref_logprobs[mb][:, resp]), m)
                    loss = loss + beta * losses["kl_loss"]
                loss.backward()
                grad_norm = clip_and_step(self.optimizer, self.params, cfg.max_grad_norm)
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(out.logits), m)
                self.minibatch_stats.append(
                    {k_: v.detach() for k_, v in losses.items()} | {"grad_norm": grad_norm, "entropy": entropy}
                )
        sync(self.device)
        self.minibatch_stats = stats_to_floats(self.minibatch_stats)
        train_s = time.perf_counter() - t0

        self.kl_ctl.update(float(seq_kl.mean()), n)
        self.step_count += 1
        metrics = self.experience_metrics(exp)
        metrics["kl/beta"] = beta
        metrics["reward/with_kl"] = float((exp.scores - beta * seq_kl).mean())
        metrics.update(
            _mean_stats(
                self.minibatch_stats,
                {
                    "pg_loss": "loss/policy",
                    "kl_loss": "loss/kl",
                    "clipfrac": "policy/clipfrac",
                    "approx_kl": "policy/approx_kl",
                    "grad_norm": "policy/grad_norm",
                    "ratio": "policy/ratio",
                },
            )
        )
        metrics["policy/entropy"] = sum(s["entropy"] for s in self.minibatch_stats) / len(self.minibatch_stats)
        metrics["policy/advantage_std"] = float(adv.std()) if n > 1 else 0.0
        metrics["perf/generate_s"] = exp.timings["generate"]
        metrics["perf/score_s"] = exp.timings["score"]
        metrics["perf/train_s"] = train_s
        total = exp.timings["generate"] + exp.timings["score"] + train_s
        metrics["perf/samples_per_s"] = n / max(total, 1e-9)
        return metrics, exp
