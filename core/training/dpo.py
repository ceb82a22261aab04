"""DPO (Rafailov et al. 2023) from the project's preference pairs, in one file.

loss = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h),
h = [log pi(chosen) - log pi(rejected)] - [log ref(chosen) - log ref(rejected)]
with eps the label smoothing (cDPO; 0 = plain DPO). Sequence log-probs are sums over response tokens.
The reference log-probs are computed once before training: the reference never changes, so there is
no need to keep running it (or, with LoRA, to switch adapters off at every step).
Every `dpo_eval_every` steps the policy samples on training prompts so the reward and KL charts have
points, as for PPO.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from core.errors import UserError
from core.training.policy_common import (
    PolicyWithReference,
    TrainerBase,
    batch_indices,
    batched_forward,
    clip_and_step,
    forward_response,
    prompt_budget,
)


@dataclass
class PairText:
    prompt: object  # str or chat messages
    chosen: str
    rejected: str


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> dict:
    """All (B,) sequence log-probs -> loss (scalar) and the implicit rewards."""
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    chosen_r, rejected_r = beta * (policy_chosen - ref_chosen), beta * (policy_rejected - ref_rejected)
    return {"loss": losses.mean(), "chosen": chosen_r.detach(), "rejected": rejected_r.detach()}


def encode_pairs(
    tokenizer, pairs: Sequence[PairText], max_prompt_tokens: int, max_response_tokens: int, device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(2N, P + R) ids and mask: rows 0..N-1 chosen, N..2N-1 rejected, in the rollout layout.

    Each response gets EOS appended (a finished answer), then is cut to max_response_tokens.
    """
    from core.models.loading import prompt_token_ids

    prompts = [prompt_token_ids(tokenizer, p.prompt, max_prompt_tokens or None) for p in pairs]
    responses = []
    for side in ("chosen", "rejected"):
        for p in pairs:
            ids = tokenizer(getattr(p, side), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            responses.append(ids[:max_response_tokens])
    prompts = prompts + prompts
    P = max(len(p) for p in prompts)
    R = max(1, max(len(r) for r in responses))
    n = len(prompts)
    ids = torch.full((n, P + R), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, P + R), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, P - len(p) : P] = torch.tensor(p, dtype=torch.long)
        mask[i, P - len(p) : P] = 1
        ids[i, P : P + len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, P : P + len(r)] = 1
    return ids.to(device), mask.to(device), P


def sequence_logprobs(model, ids, mask, P) -> torch.Tensor:
    """(B, P + R) -> (B,) sum of the response tokens' log-probs (temperature 1)."""
    out = forward_response(model, ids, mask, P, 1.0)
    return (out.logprobs * mask[:, P:]).sum(1)


class DPOTrainer(TrainerBase):
    def __init__(
        self,
        policy: PolicyWithReference,
        tokenizer,
        cfg,
        pairs: Sequence[PairText],
        reward_fn=None,
        eval_prompts: Optional[list] = None,
        eval_references: Optional[list] = None,
    ):
        super().__init__(policy, tokenizer, cfg, reward_fn)
        if len(pairs) < 2:
            raise UserError(f"DPO needs preference pairs: the project has {len(pairs)}. Rank more responses.")
        self.pairs = list(pairs)
        self.eval_prompts = eval_prompts or [p.prompt for p in self.pairs]
        self.eval_references = eval_references or [None] * len(self.eval_prompts)
        self.optimizer = self.make_optimizer()
        self.ref_chosen, self.ref_rejected = self._reference_logprobs()

    @torch.no_grad()
    def _reference_logprobs(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, n = self.cfg, len(self.pairs)

        def one(s):
            ids, mask, P = encode_pairs(
                self.tokenizer, self.pairs[s], prompt_budget(self.policy.model, cfg), cfg.max_new_tokens, self.device
            )
            with self.policy.reference() as ref:
                lp = sequence_logprobs(ref, ids, mask, P)
            k = len(lp) // 2
            return lp[:k], lp[k:]

        parts = batched_forward(one, n, cfg.forward_batch_size)
        return torch.cat([c for c, _ in parts]), torch.cat([r for _, r in parts])

    def step(self, prompts=None, references=None):
        """One optimizer step on `batch_size` pairs (accumulated over minibatches)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        idx = batch_indices(len(self.pairs), cfg.batch_size, self.step_count, cfg.seed)
        stats = {"loss": 0.0, "chosen": [], "rejected": []}
        for i in range(0, len(idx), cfg.minibatch_size):
            mb = idx[i : i + cfg.minibatch_size]
            ids, mask, P = encode_pairs(
                self.tokenizer,
                [self.pairs[j] for j in mb],
                prompt_budget(self.policy.model, cfg),
                cfg.max_new_tokens,
                self.device,
            )
            lp = sequence_logprobs(self.policy.model, ids, mask, P)
            k = len(mb)
            out = dpo_loss(
                lp[:k], lp[k:], self.ref_chosen[mb], self.ref_rejected[mb], cfg.dpo_beta, cfg.label_smoothing
            )
            (out["loss"] * k / len(idx)).backward()  # accumulate: the mean over the whole batch
            stats["loss"] += float(out["loss"].detach()) * k / len(idx)
            stats["chosen"].append(out["chosen"])
            stats["rejected"].append(out["rejected"])
        grad_norm = clip_and_step(self.optimizer, self.params, cfg.max_grad_norm)
        train_s = time.perf_counter() - t0
        chosen, rejected = torch.cat(stats["chosen"]), torch.cat(stats["rejected"])
        self.step_count += 1
        metrics = {
            "loss/policy": stats["loss"],
            "dpo/reward_chosen": float(chosen.mean()),
            "dpo/reward_rejected": float(rejected.mean()),
            "dpo/reward_margin": float((chosen - rejected).mean()),
            "dpo/accuracy": float((chosen > rejected).float().mean()),
            "policy/grad_norm": float(grad_norm),
            "kl/beta": cfg.dpo_beta,
            "perf/train_s": train_s,
            "perf/samples_per_s": len(idx) / max(train_s, 1e-9),
        }
        exp = None
        if cfg.dpo_eval_every and (self.step_count % cfg.dpo_eval_every == 0 or self.step_count == 1):
            exp = self.evaluate()
            metrics.update(self.experience_metrics(exp))
            metrics["kl/beta"] = cfg.dpo_beta
            if self.reward_fn is None:
                metrics.pop("reward/mean"), metrics.pop("reward/std")
        return metrics, exp

    def evaluate(self):
        """Sample on a batch of training prompts: reward (if there is one), KL, length, EOS rate."""
        cfg = self.cfg
        idx = batch_indices(len(self.eval_prompts), cfg.batch_size, self.step_count, cfg.seed + 1)
        prompts = [self.eval_prompts[i] for i in idx]
        references = [self.eval_references[i] for i in idx]
        return self.collect(prompts, references)
