"""The policy algorithms' math, on hand-made tensors: GAE, token rewards, PPO losses, RLOO/GRPO
baselines, DPO loss, KL controllers, whitening, reward terms, checkpoint round trips."""

import math
import random

import numpy as np
import pytest
import torch

from core.training.dpo import dpo_loss
from core.training.hybrid_reward import (
    HybridReward,
    HybridRewardConfig,
    RewardBatch,
    bleu,
    length_term,
    pattern_term,
    repetition_term,
    rouge_l,
    score,
)
from core.training.policy_common import (
    masked_mean,
    masked_whiten,
    optimizer_from_bytes,
    optimizer_to_bytes,
    rng_state,
    set_rng_state,
    batch_indices,
    response_mask_after_eos,
)
from core.training.policy_config import AdaptiveKLController, FixedKLController, PolicyConfig
from core.training.ppo import compute_gae, compute_gae_vectorised, ppo_losses, token_rewards
from core.training.rloo import grpo_advantages, k3_kl, rloo_advantages


def _mask(lengths, R):
    return (torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]).float()


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.9, 0.0)])
def test_gae_loop_equals_vectorised(gamma, lam):
    g = torch.Generator().manual_seed(1)
    B, R = 5, 9
    mask = _mask([9, 1, 4, 7, 3], R)
    rewards, values = torch.randn(B, R, generator=g), torch.randn(B, R, generator=g)
    a1, r1 = compute_gae(rewards, values, mask, gamma, lam)
    a2, r2 = compute_gae_vectorised(rewards, values, mask, gamma, lam)
    torch.testing.assert_close(a1, a2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r1, r2, atol=1e-5, rtol=1e-5)
    assert (a1[mask == 0] == 0).all()


def test_gae_by_hand():
    # One sequence of 3 tokens, gamma=1, lambda=0.5: A_2 = r2 - v2; A_1 = d1 + .5 A_2; A_0 = d0 + .5 A_1
    r, v = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.2, 0.4, 0.6]])
    adv, ret = compute_gae(r, v, torch.ones(1, 3), 1.0, 0.5)
    a2 = 1.0 - 0.6
    a1 = (0.0 + 0.6 - 0.4) + 0.5 * a2
    a0 = (0.0 + 0.4 - 0.2) + 0.5 * a1
    torch.testing.assert_close(adv, torch.tensor([[a0, a1, a2]]))
    torch.testing.assert_close(ret, adv + v)


def test_token_rewards_put_score_on_last_token_and_kl_everywhere():
    mask = _mask([3, 1], 4)
    lp = torch.tensor([[-1.0, -2.0, -1.0, -9.0], [-1.0, -9.0, -9.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -1.0, -1.0], [-2.0, -1.0, -1.0, -1.0]])
    rewards, kl = token_rewards(torch.tensor([2.0, -1.0]), lp, ref, mask, beta=0.1)
    expected_kl = torch.tensor([[0.5, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(kl, expected_kl)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.1, 2.0, 0.0], [-0.1 - 1.0, 0.0, 0.0, 0.0]]))


def test_ppo_losses_at_ratio_one():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(4, 6, generator=g)
    adv = torch.randn(4, 6, generator=g)
    mask = _mask([6, 2, 5, 1], 6)
    v, ret = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    out = ppo_losses(lp, lp.clone(), adv, mask, 0.2, v, v.clone(), ret, 0.2)
    assert float(out["ratio"]) == pytest.approx(1.0)
    assert float(out["approx_kl"]) == 0.0 and float(out["clipfrac"]) == 0.0
    assert float(out["pg_loss"]) == pytest.approx(float(-masked_mean(adv, mask)), abs=1e-6)
    assert float(out["vf_loss"]) == pytest.approx(float(0.5 * masked_mean((v - ret) ** 2, mask)), abs=1e-6)


def test_ppo_policy_loss_clips():
    # ratio e^0.5 > 1.2 with positive advantage: the clipped term (1.2 * A) is the one used
    lp_old, lp_new = torch.zeros(1, 1), torch.full((1, 1), 0.5)
    out = ppo_losses(lp_new, lp_old, torch.ones(1, 1), torch.ones(1, 1), 0.2)
    assert float(out["pg_loss"]) == pytest.approx(-1.2)
    assert float(out["clipfrac"]) == 1.0
    # with a negative advantage the unclipped (worse) term wins
    out = ppo_losses(lp_new, lp_old, -torch.ones(1, 1), torch.ones(1, 1), 0.2)
    assert float(out["pg_loss"]) == pytest.approx(math.exp(0.5))


def test_rloo_baseline_by_hand():
    rewards = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])  # two prompts, k = 3
    adv = rloo_advantages(rewards, 3)
    expected = [1 - (2 + 6) / 2, 2 - (1 + 6) / 2, 6 - (1 + 2) / 2, 0 - (0 + 3) / 2, 0 - (0 + 3) / 2, 3 - 0]
    torch.testing.assert_close(adv, torch.tensor(expected))


def test_grpo_advantages_by_hand():
    s = torch.tensor([1.0, 3.0, 2.0, 2.0])
    adv = grpo_advantages(s, 2, eps=0.0)
    std = float(torch.tensor([1.0, 3.0]).std())
    torch.testing.assert_close(adv, torch.tensor([-1 / std, 1 / std, float("nan"), float("nan")]), equal_nan=True)
    adv = grpo_advantages(s, 2)  # with eps, a tied group gets 0, not NaN
    assert adv[2] == 0 and adv[3] == 0


def test_k3_kl_is_zero_at_equality_and_positive_otherwise():
    lp = torch.tensor([-1.0, -2.0])
    assert torch.all(k3_kl(lp, lp) == 0)
    assert torch.all(k3_kl(lp, lp + torch.tensor([0.3, -0.4])) > 0)


def test_dpo_loss_is_log2_when_policy_equals_reference():
    lp_c, lp_r = torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -3.0])
    out = dpo_loss(lp_c, lp_r, lp_c.clone(), lp_r.clone(), beta=0.1)
    assert float(out["loss"]) == pytest.approx(math.log(2))
    assert float(dpo_loss(lp_c, lp_r, lp_c, lp_r, beta=0.5, label_smoothing=0.2)["loss"]) == pytest.approx(math.log(2))


def test_dpo_loss_closed_form():
    pc, pr, rc, rr = torch.tensor([-4.0]), torch.tensor([-6.0]), torch.tensor([-5.0]), torch.tensor([-5.5])
    h = (-4 + 6) - (-5 + 5.5)  # 1.5

    def sig(x):
        return 1 / (1 + math.exp(-x))

    assert float(dpo_loss(pc, pr, rc, rr, beta=0.2)["loss"]) == pytest.approx(-math.log(sig(0.2 * h)))
    smoothed = -(0.9 * math.log(sig(0.3)) + 0.1 * math.log(sig(-0.3)))
    assert float(dpo_loss(pc, pr, rc, rr, beta=0.2, label_smoothing=0.1)["loss"]) == pytest.approx(smoothed)


def test_adaptive_kl_controller_follows_formula():
    c = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    c.update(current_kl=9.0, n_steps=64)  # error 0.5 clipped to 0.2
    assert c.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10000))
    c.update(current_kl=5.4, n_steps=100)  # error -0.1
    assert c.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10000) * (1 - 0.1 * 100 / 10000))
    c.update(current_kl=0.0, n_steps=10000)  # error -1 clipped to -0.2
    assert c.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10000) * (1 - 0.1 * 100 / 10000) * 0.8)
    f = FixedKLController(0.05)
    f.update(100.0, 1000)
    assert f.value == 0.05


def test_masked_whiten_ignores_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = masked_whiten(x, mask)
    assert float(masked_mean(w, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(w[0, 3]) == 0.0
    assert float(w[0, 2]) == pytest.approx(1.0, abs=1e-4)  # (3-2)/std([1,2,3], unbiased=1)


def test_response_mask_keeps_first_eos_and_handles_pad_equal_to_sampled_token():
    ids = torch.tensor([[5, 1, 0, 7], [0, 0, 9, 9], [1, 5, 1, 5]])  # eos=1; 0 (pad) is a real token in row 1
    mask, has_eos = response_mask_after_eos(ids, [1])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]


def test_batch_indices_are_a_function_of_step():
    a = [batch_indices(10, 4, s, seed=3) for s in range(6)]
    b = [batch_indices(10, 4, s, seed=3) for s in range(6)]
    assert a == b
    assert sorted(a[0] + a[1]) == sorted(set(a[0] + a[1]))  # no repeats inside an epoch
    assert batch_indices(3, 5, 0, seed=0).__len__() == 5


# ---- rewards ------------------------------------------------------------------------------------


def test_rouge_l_and_bleu_by_hand():
    assert rouge_l("the cat sat", "the cat sat") == pytest.approx(1.0)
    # LCS("a b c d", "a c e") = 2 ("a c"): P = 2/4, R = 2/3, F = 2PR/(P+R) = 4/7
    assert rouge_l("a b c d", "a c e") == pytest.approx(4 / 7)
    assert rouge_l("x y", "a b") == 0.0
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert bleu("dog", "the cat sat on the mat") == 0.0
    assert 0.0 < bleu("the cat sat on a mat", "the cat sat on the mat") < 1.0


def test_automatic_terms():
    assert length_term(["a b c", "a b c d e f"], target=3) == [0.0, -1.0]
    assert length_term(["a b"], target=None, per_word=0.5) == [-1.0]
    assert pattern_term(["please refund now", "no"], ["refund"], ["now"]) == [0.0, 0.0]
    assert pattern_term(["please refund", "buy now"], ["refund"], ["now"]) == [0.5, -0.5]
    assert pattern_term(["order 1234"], [r"\d{4}"], [], regex=True) == [1.0]
    assert repetition_term(["a b c d"]) == [0.0]
    assert repetition_term(["a b c a b c a b c"])[0] < -0.5


def _batch(responses, refs=None):
    return RewardBatch(
        prompts=["p"] * len(responses),
        responses=responses,
        response_ids=[[1]] * len(responses),
        references=refs or [None] * len(responses),
    )


def test_hybrid_reward_logs_each_part_and_sums_weights():
    cfg = HybridRewardConfig(model_weight=2.0, length_weight=1.0, length_target=2, rouge_weight=0.5)
    rm = lambda b: [3.0 for _ in b.responses]  # noqa: E731 - a plain callable reward model
    reward = HybridReward(cfg, model_fn=rm, model_scale=1.5, model_shift=0.0)
    total, parts = score(reward, _batch(["a b", "a b c d"], ["a b", None]))
    assert set(parts) == {"reward/model", "reward/length", "reward/rouge"}
    torch.testing.assert_close(parts["reward/model"], torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(parts["reward/length"], torch.tensor([0.0, -1.0]))
    torch.testing.assert_close(parts["reward/rouge"], torch.tensor([1.0, 0.0]))  # no reference: 0
    torch.testing.assert_close(total, torch.tensor([2 * 2.0 + 0 + 0.5, 2 * 2.0 - 1.0]))


def test_plain_callables_are_rewards():
    total, parts = score(lambda b: [len(r) for r in b.responses], _batch(["ab", "abc"]))
    assert total.tolist() == [2.0, 3.0] and parts == {}
    with pytest.raises(ValueError):
        score(lambda b: [1.0], _batch(["ab", "abc"]))
    with pytest.raises(ValueError):
        HybridReward(HybridRewardConfig())  # nothing switched on and no model


# ---- config and checkpoints --------------------------------------------------------------------


def test_config_round_trip_and_validation():
    cfg = PolicyConfig(algo="grpo", reward=HybridRewardConfig(required=["x"], pattern_weight=1.0))
    again = PolicyConfig.from_dict(cfg.to_dict())
    assert again == cfg
    from core.errors import UserError

    with pytest.raises(UserError):
        PolicyConfig(algo="nope").validate()
    with pytest.raises(UserError):
        PolicyConfig(algo="rloo", rloo_k=1).validate()


def test_optimizer_and_rng_round_trip_without_pickle():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_bytes(opt)
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=5.0)
    optimizer_from_bytes(opt2, tensors, meta)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 1e-2
    for k in s1["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(torch.as_tensor(s1["state"][k][name]), torch.as_tensor(s2["state"][k][name]))
    meta_rng, t_rng = rng_state()
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(meta_rng, t_rng)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == a


def test_every_config_field_has_a_docstring():
    import dataclasses

    from core.training.hybrid_reward import HybridRewardConfig
    from core.training.policy_config import PRESETS, field_docs, preset

    for cls in (PolicyConfig, HybridRewardConfig):
        docs = field_docs(cls)
        assert set(docs) == {f.name for f in dataclasses.fields(cls)}, cls
    for name in PRESETS:
        assert preset(name, algo="rloo").validate().algo == "rloo"


def test_ppo_presets_scale_the_learning_rate_and_an_explicit_one_wins():
    """PPO makes a quarter of RLOO's optimizer steps per step, so its presets take a higher rate; a rate
    the user sets (the advanced form or --lr) is kept as given, through the same path the app and CLI use."""
    from core.ops.training import policy_config
    from core.training.policy_config import ALGO_LEARNING_RATE_SCALE, PRESETS, preset

    for name in PRESETS:
        rloo, ppo = preset(name, algo="rloo").learning_rate, preset(name, algo="ppo").learning_rate
        assert ppo == rloo * ALGO_LEARNING_RATE_SCALE["ppo"] > rloo
        assert preset(name).learning_rate == ppo  # PPO is the default algorithm
        assert preset(name, algo="ppo", learning_rate=1e-4).learning_rate == 1e-4
    cfg, base = policy_config("balanced", algo="ppo", policy_path="/m", reward_run=1)
    assert cfg.learning_rate == base.learning_rate == preset("balanced", algo="ppo").learning_rate
    cfg, _ = policy_config("balanced", algo="ppo", policy_path="/m", reward_run=1, overrides={"learning_rate": 5e-5})
    assert cfg.learning_rate == 5e-5
    cfg, _ = policy_config("balanced", algo="rloo", policy_path="/m", reward_run=1)
    assert cfg.learning_rate == preset("balanced", algo="rloo").learning_rate


def test_ppo_on_balanced_samples_twice_the_prompts_a_step_and_an_explicit_batch_wins():
    """PPO samples one reply a prompt where RLOO samples four: on Balanced it takes twice the batch."""
    from core.ops.training import policy_config
    from core.training.policy_config import PRESETS, preset

    assert preset("balanced", algo="ppo").batch_size == 2 * PRESETS["balanced"]["batch_size"] == 32
    assert preset("balanced").batch_size == 32  # PPO is the default algorithm
    assert preset("balanced", algo="rloo").batch_size == PRESETS["balanced"]["batch_size"]
    for name in ("quick", "thorough"):
        unchanged = PRESETS[name]["batch_size"]
        assert preset(name, algo="ppo").batch_size == preset(name, algo="rloo").batch_size == unchanged
    assert preset("balanced", algo="ppo", batch_size=8).batch_size == 8
    cfg, _ = policy_config("balanced", algo="ppo", policy_path="/m", reward_run=1, overrides={"batch_size": 16})
    assert cfg.batch_size == 16
