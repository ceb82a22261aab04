"""Learning on CPU with a tiny model and the test's own rule rewards: the mean reward rises clearly while
the KL to the reference stays bounded, for PPO, RLOO, GRPO and DPO."""

import pytest
import torch

from core.training.dpo import DPOTrainer, PairText
from core.training.policy_common import PolicyWithReference, encode_prompts, generate_rollout, load_policy_model
from core.training.policy_config import PolicyConfig
from core.training.ppo import PPOTrainer
from core.training.rloo import GroupTrainer
from tests.policy_fixtures import low_id_share, one_thread, policy_gpt2, token_set_share  # noqa: F401

pytestmark = pytest.mark.slow
PROMPTS = [f"Customer question {i}" for i in range(16)]


def _run(trainer, steps, batch):
    curve = []
    for s in range(steps):
        prompts = [PROMPTS[(s * batch + i) % len(PROMPTS)] for i in range(batch)]
        metrics, _ = trainer.step(prompts, [None] * batch)
        curve.append(metrics)
    return curve


def _mean(curve, key, sl):
    vals = [m[key] for m in curve[sl]]
    return sum(vals) / len(vals)


def test_ppo_learns_rule_reward(policy_gpt2, one_thread):
    model, tok = load_policy_model(policy_gpt2, "cpu", "float32")
    cfg = PolicyConfig(
        algo="ppo",
        mode="full",
        batch_size=16,
        minibatch_size=8,
        ppo_epochs=4,
        max_new_tokens=10,
        temperature=1.0,
        missing_eos_penalty=None,
        learning_rate=2e-3,
        kl_coef=0.02,
        seed=0,
    )
    trainer = PPOTrainer(PolicyWithReference(model, "full"), tok, cfg, low_id_share)
    curve = _run(trainer, 30, 16)
    start, end = _mean(curve, "reward/mean", slice(0, 3)), _mean(curve, "reward/mean", slice(-3, None))
    assert end > start + 0.15, (start, end)
    assert max(m["kl/mean"] for m in curve) < 25.0
    assert all(
        k in curve[-1]
        for k in (
            "loss/policy",
            "loss/value",
            "policy/entropy",
            "policy/clipfrac",
            "policy/approx_kl",
            "kl/beta",
            "response/eos_rate",
        )
    )


@pytest.mark.parametrize("algo", ["rloo", "grpo"])
def test_group_algorithms_learn_rule_reward(policy_gpt2, algo, one_thread):
    model, tok = load_policy_model(policy_gpt2, "cpu", "float32")
    cfg = PolicyConfig(
        algo=algo,
        mode="full",
        batch_size=4,
        rloo_k=4,
        minibatch_size=8,
        ppo_epochs=2,
        max_new_tokens=10,
        temperature=1.0,
        missing_eos_penalty=None,
        learning_rate=2e-3,
        kl_coef=0.02,
        seed=0,
    )
    trainer = GroupTrainer(PolicyWithReference(model, "full"), tok, cfg, low_id_share)
    curve = _run(trainer, 30, 4)
    start, end = _mean(curve, "reward/mean", slice(0, 3)), _mean(curve, "reward/mean", slice(-3, None))
    assert end > start + 0.15, (start, end)
    assert max(m["kl/mean"] for m in curve) < 25.0


def test_dpo_learns_from_pairs(policy_gpt2, one_thread):
    """The 'expert' prefers answers that say "refund"; pairs: such an answer vs a base-model sample."""
    model, tok = load_policy_model(policy_gpt2, "cpu", "float32")
    target = tok("refund refund", add_special_tokens=False)["input_ids"]
    reward = token_set_share(target)
    prompts = [f"question {i}" for i in range(32)]
    ids, mask = encode_prompts(tok, prompts, 64, "cpu")
    base = generate_rollout(model, tok, ids, mask, temperature=1.0, max_new_tokens=12, seed=0).texts
    g = torch.Generator().manual_seed(0)
    pairs = [
        PairText(p, " ".join(["refund"] * int(torch.randint(2, 6, (1,), generator=g))), base[i])
        for i, p in enumerate(prompts)
    ]
    cfg = PolicyConfig(
        algo="dpo",
        mode="full",
        batch_size=16,
        minibatch_size=16,
        max_new_tokens=12,
        temperature=1.0,
        learning_rate=5e-3,
        dpo_beta=0.1,
        dpo_eval_every=10,
        missing_eos_penalty=None,
        seed=0,
    )
    trainer = DPOTrainer(PolicyWithReference(model, "full"), tok, cfg, pairs, reward_fn=reward, eval_prompts=prompts)
    curve = [trainer.step()[0] for _ in range(30)]
    evals = [m for m in curve if "reward/mean" in m]
    assert len(evals) == 4  # steps 1, 10, 20, 30
    assert curve[0]["loss/policy"] == pytest.approx(0.693, abs=1e-3)  # policy == reference at the start
    assert evals[-1]["reward/mean"] > evals[0]["reward/mean"] + 0.1, [m["reward/mean"] for m in evals]
    assert max(m["kl/mean"] for m in evals) < 30.0
    assert curve[-1]["dpo/accuracy"] == 1.0
