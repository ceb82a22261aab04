"""PPO for language models (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022), in one file.

One training step:
1. Sample responses to a batch of prompts (temperature T, top-k 0, top-p 1).
2. Score: the reward at the response's last token, and -beta * KL(policy || reference) at every token.
3. GAE (gamma=1, lambda=0.95) on those token rewards with the critic's values; whiten the advantages.
4. Several epochs of minibatches: clipped policy loss + vf_coef * clipped value loss, gradient clipping.
5. Update beta with the adaptive KL controller.

The critic is a value head on the policy (cheap) or a copy of the reward model (InstructGPT).
"""

from __future__ import annotations

import time
from typing import Optional

import torch

from core.training.policy_common import (
    Experience,
    PolicyWithReference,
    TrainerBase,
    ValueHead,
    ValueModel,
    clip_and_step,
    forward_response,
    entropy_from_logits,
    masked_mean,
    masked_whiten,
    minibatches,
    padding_slices,
    stats_to_floats,
    sync,
    value_model_values,
)

# --------------------------------------------------------------------------------------------------
# The math, as plain functions on tensors (tested directly)
# --------------------------------------------------------------------------------------------------


def token_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,), (B, R) x3 -> rewards (B, R), kl (B, R).

    Every token pays -beta * (log pi - log ref); the score is added at the last real token.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    last = (mask.sum(1) - 1).clamp(min=0).long()  # index of the last response token (EOS or cut)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards * mask, kl


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, the backward loop. (B, R) x3 -> advantages, returns (B, R).

    Values and rewards are zero after the response, so the bootstrap past the last token is 0.
    """
    values, rewards = values * mask, rewards * mask
    R = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(R)):
        next_value = values[:, t + 1] if t + 1 < R else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        advantages[:, t] = last_gae
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def compute_gae_vectorised(rewards, values, mask, gamma: float, lam: float):
    """The same as `compute_gae` as one matrix product: A_t = sum_l (gamma lam)^l delta_{t+l}."""
    values, rewards = values * mask, rewards * mask
    R = rewards.shape[1]
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], 1)
    deltas = rewards + gamma * next_values - values  # (B, R)
    t = torch.arange(R, dtype=rewards.dtype)
    power = t[None, :] - t[:, None]  # (R, R): s - t
    discount = torch.where(power >= 0, (gamma * lam) ** power.clamp(min=0), torch.zeros(()))
    advantages = deltas @ discount.T * mask
    return advantages, (advantages + values) * mask


def ppo_losses(
    new_logprobs,
    old_logprobs,
    advantages,
    mask,
    cliprange: float,
    new_values=None,
    old_values=None,
    returns=None,
    cliprange_value: float = 0.2,
) -> dict:
    """Clipped surrogate policy loss and clipped value loss, masked token means. All (B, R)."""
    log_ratio = (new_logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses_clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    out = {
        "pg_loss": masked_mean(torch.max(pg_losses, pg_losses_clipped), mask),
        "clipfrac": masked_mean((pg_losses_clipped > pg_losses).float(), mask),
        "approx_kl": 0.5 * masked_mean(log_ratio**2, mask),
        "ratio": masked_mean(ratio, mask),
    }
    if new_values is not None:
        v_clipped = old_values + torch.clamp(new_values - old_values, -cliprange_value, cliprange_value)
        vf1, vf2 = (new_values - returns) ** 2, (v_clipped - returns) ** 2
        out["vf_loss"] = 0.5 * masked_mean(torch.max(vf1, vf2), mask)
        out["vf_clipfrac"] = masked_mean((vf2 > vf1).float(), mask)
    return out


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------


class PPOTrainer(TrainerBase):
    def __init__(
        self, policy: PolicyWithReference, tokenizer, cfg, reward_fn, reward_model: Optional[torch.nn.Module] = None
    ):
        super().__init__(policy, tokenizer, cfg, reward_fn)
        model = policy.model
        if cfg.value_init == "reward" and reward_model is not None:
            self.value_head = None
            self.value_model = ValueModel.from_reward_model(reward_model).to(self.device)
            self.extra_modules = [self.value_model]
        else:
            hidden = model.get_output_embeddings().weight.shape[1]
            torch.manual_seed(cfg.seed)  # the same critic init on every run with this seed
            self.value_head = ValueHead(hidden).to(self.device)
            self.value_model = None
            self.extra_modules = [self.value_head]
        self.optimizer = self.make_optimizer()

    def _values(self, seq, am, P):
        return value_model_values(self.value_model, seq, am, P)

    def step(self, prompts: list, references: list) -> tuple[dict, Experience]:
        """One PPO iteration on a batch of prompts; returns its metrics and the experience."""
        exp = self.collect(prompts, references, value_fn=self._values if self.value_model else None)
        return self.update(exp), exp

    def update(self, exp: Experience) -> dict:
        """Advantages from one batch of experience, then the PPO epochs; returns the step's metrics."""
        cfg = self.cfg
        n = len(exp.prompts)
        beta = self.kl_ctl.value
        mask = exp.mask.float()
        rewards, kl = token_rewards(exp.scores, exp.logprobs, exp.ref_logprobs, mask, beta)
        advantages, returns = compute_gae(rewards, exp.values, mask, cfg.gamma, cfg.lam)
        advantages = masked_whiten(advantages, mask)

        sync(self.device)
        t0 = time.perf_counter()
        seq, am, P = exp.rollout.sequences, exp.rollout.attention_mask, exp.rollout.prompt_len
        self.minibatch_stats = []
        for _epoch in range(cfg.ppo_epochs):
            for mb in minibatches(n, cfg.minibatch_size, self.minibatch_gen):
                mb = mb.to(self.device)
                cols, resp, mb_P = padding_slices(am[mb], P)
                mb_seq, mb_am = seq[mb][:, cols], am[mb][:, cols]
                out = forward_response(
                    self.policy.model,
                    mb_seq,
                    mb_am,
                    mb_P,
                    cfg.temperature,
                    value_head=self.value_head,
                    keep_logits=True,
                )
                vpred = out.values if self.value_model is None else self._values(mb_seq, mb_am, mb_P)
                m = mask[mb][:, resp]
                losses = ppo_losses(
                    out.logprobs,
                    exp.logprobs[mb][:, resp],
                    advantages[mb][:, resp],
                    m,
                    cfg.cliprange,
                    vpred,
                    exp.values[mb][:, resp],
                    returns[mb][:, resp],
                    cfg.cliprange_value,
                )
                loss = losses["pg_loss"] + cfg.vf_coef * losses["vf_loss"]
                loss.backward()
                grad_norm = clip_and_step(self.optimizer, self.params, cfg.max_grad_norm)
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(out.logits), m)
                self.minibatch_stats.append(
                    {k: v.detach() for k, v in losses.items()} | {"grad_norm": grad_norm, "entropy": entropy}
                )
        sync(self.device)
        self.minibatch_stats = stats_to_floats(self.minibatch_stats)
        train_s = time.perf_counter() - t0

        mean_kl = float(kl.sum(1).mean())
        self.kl_ctl.update(mean_kl, n)
        self.step_count += 1
        metrics = self.experience_metrics(exp)
        metrics["kl/beta"] = beta
        metrics["reward/with_kl"] = float(rewards.sum(1).mean())
        metrics.update(
            _mean_stats(
                self.minibatch_stats,
                {
                    "pg_loss": "loss/policy",
                    "vf_loss": "loss/value",
                    "clipfrac": "policy/clipfrac",
                    "approx_kl": "policy/approx_kl",
                    "vf_clipfrac": "value/clipfrac",
                    "grad_norm": "policy/grad_norm",
                    "ratio": "policy/ratio",
                },
            )
        )
        metrics["policy/entropy"] = sum(s["entropy"] for s in self.minibatch_stats) / len(self.minibatch_stats)
        metrics["value/mean"] = float(masked_mean(exp.values, mask))
        metrics["perf/generate_s"] = exp.timings["generate"]
        metrics["perf/score_s"] = exp.timings["score"]
        metrics["perf/train_s"] = train_s
        total = exp.timings["generate"] + exp.timings["score"] + train_s
        metrics["perf/samples_per_s"] = n / max(total, 1e-9)
        return metrics


def _mean_stats(stats: list[dict], names: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, name in names.items():
        vals = [s[key] for s in stats if key in s]
        if vals:
            out[name] = sum(vals) / len(vals)
    return out
