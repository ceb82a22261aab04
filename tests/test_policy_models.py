"""Policy infrastructure on real tiny transformers: padding/batching invariance, temperature-consistent
log-probs, PPO's first ratio, which parameters train, LoRA reference, pre-flight memory check."""

import copy

import pytest
import torch

from core.errors import UserError
from core.training.policy_common import (
    PolicyWithReference,
    ValueHead,
    encode_prompts,
    forward_response,
    generate_rollout,
    load_policy_model,
    padding_slices,
    preflight_memory,
)
from core.training.policy_config import PolicyConfig
from core.training.ppo import PPOTrainer
from tests.policy_fixtures import low_id_share, one_thread, policy_gpt2, policy_qwen2  # noqa: F401

PROMPTS = ["Hi", "Where is my refund? It has been a week.", "Please restart the router"]


def _layout(tokenizer, prompts, responses):
    """Batch rows in the rollout layout: left-padded prompts, right-padded responses."""
    ids, mask = encode_prompts(tokenizer, prompts, 64, "cpu")
    R = max(len(r) for r in responses)
    resp = torch.full((len(prompts), R), tokenizer.pad_token_id)
    rmask = torch.zeros((len(prompts), R), dtype=torch.long)
    for i, r in enumerate(responses):
        resp[i, : len(r)] = torch.tensor(r)
        rmask[i, : len(r)] = 1
    return torch.cat([ids, resp], 1), torch.cat([mask, rmask], 1), ids.shape[1], rmask


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
@pytest.mark.parametrize("lora", [False, True])
def test_logprobs_and_values_batched_equal_single(arch, lora, request, one_thread):
    path = request.getfixturevalue(f"policy_{arch}")
    model, tok = load_policy_model(path, "cpu", "float32")
    if lora:
        model = PolicyWithReference(model, "lora", lora_r=4, lora_alpha=8).model
        with torch.no_grad():  # non-zero adapters, so the LoRA path actually changes the numbers
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
    torch.manual_seed(0)
    head = ValueHead(model.get_output_embeddings().weight.shape[1])
    g = torch.Generator().manual_seed(0)
    responses = [torch.randint(4, 400, (n,), generator=g).tolist() for n in (5, 2, 7)]
    responses[1].append(tok.eos_token_id)
    seq, am, P, rmask = _layout(tok, PROMPTS, responses)
    with torch.no_grad():
        batched = forward_response(model, seq, am, P, temperature=0.7, value_head=head, with_entropy=True)
        for i, prompt in enumerate(PROMPTS):
            s1, a1, P1, m1 = _layout(tok, [prompt], [responses[i]])
            assert a1.all()  # alone: no padding at all
            single = forward_response(model, s1, a1, P1, temperature=0.7, value_head=head, with_entropy=True)
            n = len(responses[i])
            torch.testing.assert_close(batched.logprobs[i, :n], single.logprobs[0, :n], atol=1e-4, rtol=0)
            torch.testing.assert_close(batched.values[i, :n], single.values[0, :n], atol=1e-4, rtol=0)
            torch.testing.assert_close(batched.entropy[i, :n], single.entropy[0, :n], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_a_minibatch_trimmed_to_its_padding_bounds_gives_the_same_logprobs(arch, request, one_thread):
    """PPO/RLOO minibatches drop the columns that are padding in all their rows: the bounds are those
    columns, and the trimmed forward gives the full one's figures on every real token."""
    model, tok = load_policy_model(request.getfixturevalue(f"policy_{arch}"), "cpu", "float32")
    g = torch.Generator().manual_seed(1)
    responses = [torch.randint(4, 400, (n,), generator=g).tolist() for n in (3, 9, 4)]
    seq, am, P, rmask = _layout(tok, PROMPTS, responses)
    rows = torch.tensor([0, 2])  # the two shortest prompts and replies: both kinds of padding to drop
    cols, resp, kept_P = padding_slices(am[rows], P)
    lead, width = cols.start, resp.stop
    assert lead == P - int(am[rows, :P].sum(1).max()) > 0 and width == 4
    assert cols.stop == P + width and kept_P == P - lead
    assert not am[rows, :lead].any() and not am[rows, P + width :].any()
    with torch.no_grad():
        full = forward_response(model, seq[rows], am[rows], P, temperature=0.7, with_entropy=True)
        cut = forward_response(model, seq[rows][:, cols], am[rows][:, cols], kept_P, 0.7, with_entropy=True)
    m = rmask[rows, :width].bool()
    torch.testing.assert_close(cut.logprobs[m], full.logprobs[:, :width][m], atol=1e-5, rtol=0)
    torch.testing.assert_close(cut.entropy[m], full.entropy[:, :width][m], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_logprobs_use_the_sampling_temperature(arch, request, one_thread):
    """The recomputed log-probs equal the sampler's own (temperature-scaled, full-distribution) ones."""
    from core.models.generation import SamplingSettings, sample

    model, tok = load_policy_model(request.getfixturevalue(f"policy_{arch}"), "cpu", "float32")
    ids, mask = encode_prompts(tok, PROMPTS, 64, "cpu")
    out = sample(
        model,
        tok,
        ids,
        mask,
        SamplingSettings(temperature=0.6, top_p=1.0, top_k=0, max_new_tokens=8, seed=3),
        return_logprobs=True,
    )
    seq = torch.cat([ids, out.response_ids], 1)
    am = torch.cat([mask, out.response_mask], 1)
    with torch.no_grad():
        lp = forward_response(model, seq, am, ids.shape[1], temperature=0.6).logprobs
    m = out.response_mask.bool()
    torch.testing.assert_close(lp[m], out.logprobs[m], atol=1e-4, rtol=0)
    with torch.no_grad():
        lp1 = forward_response(model, seq, am, ids.shape[1], temperature=1.0).logprobs
    assert (lp1[m] - out.logprobs[m]).abs().max() > 1e-2  # T=1 would be a different distribution


def _cfg(**kw):
    base = dict(
        batch_size=8,
        minibatch_size=4,
        ppo_epochs=2,
        max_new_tokens=8,
        temperature=0.9,
        missing_eos_penalty=None,
        learning_rate=1e-3,
    )
    base.update(kw)
    return PolicyConfig(**base)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_first_minibatch_ratio_is_one(policy_qwen2, mode, one_thread):
    model, tok = load_policy_model(policy_qwen2, "cpu", "float32")
    pol = PolicyWithReference(model, mode, lora_r=4, lora_alpha=8)
    tr = PPOTrainer(pol, tok, _cfg(), low_id_share)
    tr.step((PROMPTS * 3)[:8], [None] * 8)
    first = tr.minibatch_stats[0]
    assert first["ratio"] == pytest.approx(1.0, abs=1e-5)
    assert first["approx_kl"] < 1e-8
    assert first["clipfrac"] == 0.0
    later = tr.minibatch_stats[-1]
    assert later["approx_kl"] > first["approx_kl"]  # the policy did move after the first update


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_full_mode_trains_policy_not_reference(policy_gpt2, one_thread):
    model, tok = load_policy_model(policy_gpt2, "cpu", "float32")
    pol = PolicyWithReference(model, "full")
    assert not pol.model.training and all(m.p == 0 for m in pol.model.modules() if isinstance(m, torch.nn.Dropout))
    before, ref_before = _snapshot(pol.model), _snapshot(pol.ref_model)
    tr = PPOTrainer(pol, tok, _cfg(), low_id_share)
    head_before = _snapshot(tr.value_head)
    tr.step((PROMPTS * 3)[:8], [None] * 8)
    after = _snapshot(pol.model)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) >= 0.9 * len(before)
    assert all(torch.equal(ref_before[n], p) for n, p in pol.ref_model.named_parameters())
    assert any(not torch.equal(head_before[n], p) for n, p in tr.value_head.named_parameters())


def test_lora_trains_adapters_and_reference_is_base(policy_gpt2, one_thread):
    model, tok = load_policy_model(policy_gpt2, "cpu", "float32")
    base = copy.deepcopy(model)
    pol = PolicyWithReference(model, "lora", lora_r=4, lora_alpha=8)
    assert pol.ref_model is None  # no second copy of the weights
    before = _snapshot(pol.model)
    tr = PPOTrainer(pol, tok, _cfg(), low_id_share)
    tr.step((PROMPTS * 3)[:8], [None] * 8)
    after = _snapshot(pol.model)
    lora = [n for n in before if "lora_" in n]
    assert lora and any(not torch.equal(before[n], after[n]) for n in lora if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in before if "lora_" not in n)
    # The reference (adapters off) is exactly the base model; the policy no longer is.
    ids, mask = encode_prompts(tok, PROMPTS, 64, "cpu")
    ro = generate_rollout(pol.model, tok, ids, mask, temperature=1.0, max_new_tokens=6, seed=0)
    with torch.no_grad():
        with pol.reference() as ref:
            lp_ref = forward_response(ref, ro.sequences, ro.attention_mask, ro.prompt_len).logprobs
        lp_base = forward_response(base, ro.sequences, ro.attention_mask, ro.prompt_len).logprobs
        lp_pol = forward_response(pol.model, ro.sequences, ro.attention_mask, ro.prompt_len).logprobs
    m = ro.response_mask.bool()
    torch.testing.assert_close(lp_ref[m], lp_base[m], atol=1e-5, rtol=0)
    assert (lp_pol[m] - lp_base[m]).abs().max() > 1e-4


def test_freeze_mode_keeps_bottom_layers(policy_qwen2, one_thread):
    model, tok = load_policy_model(policy_qwen2, "cpu", "float32")
    pol = PolicyWithReference(model, "freeze", freeze_layers=1)
    before = _snapshot(pol.model)
    tr = PPOTrainer(pol, tok, _cfg(), low_id_share)
    tr.step((PROMPTS * 3)[:8], [None] * 8)
    after = _snapshot(pol.model)
    frozen = [n for n in before if ".layers.0." in n or "embed" in n]
    top = [n for n in before if ".layers.1." in n]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in top)


def test_preflight_suggests_lora_or_smaller_batch(policy_gpt2):
    model, _ = load_policy_model(policy_gpt2, "cpu", "float32")
    with pytest.raises(UserError, match="LoRA.*smaller batch"):
        preflight_memory(model, torch.device("cpu"), "full", batch_size=10**7, seq_len=4096)
    assert preflight_memory(model, torch.device("cpu"), "lora", batch_size=4, seq_len=64)["need_bytes"] > 0


def test_long_prompts_are_cut_to_fit_the_context(policy_gpt2, one_thread):
    """A prompt longer than the model's positions keeps its end, so prompt + response still fits."""
    model, tok = load_policy_model(policy_gpt2, "cpu", "float32")
    limit = model.config.n_positions
    cfg = _cfg(max_new_tokens=16, max_prompt_tokens=10_000, batch_size=2, minibatch_size=2)
    tr = PPOTrainer(PolicyWithReference(model, "lora", lora_r=2, lora_alpha=4), tok, cfg, low_id_share)
    long_prompt = "please help with my order " * 200
    metrics, exp = tr.step([long_prompt, "hi"], [None, None])
    assert exp.rollout.sequences.shape[1] <= limit
    assert exp.rollout.prompt_len == limit - 16


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_critic_from_a_reward_model_is_padding_invariant(arch, request, one_thread):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from core.training.policy_common import ValueModel, value_model_values

    path = request.getfixturevalue(f"policy_{arch}")
    _, tok = load_policy_model(path, "cpu", "float32")
    cfg = AutoConfig.from_pretrained(path)
    cfg.num_labels = 1
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_config(cfg)
    critic = ValueModel.from_reward_model(rm).eval()
    assert all(p.requires_grad for p in critic.parameters()) and critic.head is not rm.score
    responses = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    seq, am, P, _ = _layout(tok, PROMPTS, responses)
    with torch.no_grad():
        batched = value_model_values(critic, seq, am, P)
        for i, prompt in enumerate(PROMPTS):
            s1, a1, P1, _ = _layout(tok, [prompt], [responses[i]])
            single = value_model_values(critic, s1, a1, P1)
            n = len(responses[i])
            torch.testing.assert_close(batched[i, :n], single[0, :n], atol=1e-4, rtol=0)


def test_lora_wrap_is_quiet(policy_gpt2, one_thread):
    """Wrapping with LoRA prints nothing to the user: peft's deprecation noise under transformers 5 is
    filtered where we call it, and only there."""
    import warnings

    model, _ = load_policy_model(policy_gpt2, "cpu", "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PolicyWithReference(model, "lora", lora_r=4, lora_alpha=8)
    assert not [w for w in caught if "checkpointing" in str(w.message)], [str(w.message) for w in caught]
