"""Reward model: loss, last-token reading, split, model building (no project needed)."""

import math

import pytest
import torch

from core.errors import UserError
from core.training.reward import (
    POOLINGS,
    PromptExample,
    RewardConfig,
    RewardTrainer,
    bradley_terry_loss,
    build_reward_model,
    collate,
    encode_pair,
    encode_scored,
    score_sequences,
    last_token_index,
    lr_at,
    sequence_rewards,
    split_by_prompt,
    step_examples,
)
from tests.reward_fixtures import reward_one_thread, tiny_base, tiny_qwen_base  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("reward_one_thread")


def _closed_form(rw, rl, m):
    return -math.log(1.0 / (1.0 + math.exp(-(rw - rl - m))))


def test_loss_equals_closed_form():
    rewards = torch.tensor([1.0, -0.5, 0.25, 2.0, 0.0])
    # prompt 0: responses 0,1,2 (pairs 0>1, 0>2, 2>1); prompt 1: responses 3,4 (4>3, margin 1)
    winners = torch.tensor([0, 0, 2, 4])
    losers = torch.tensor([1, 2, 1, 3])
    margins = torch.tensor([0.0, 0.5, 0.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1])
    group_loss, pair_loss, diff = bradley_terry_loss(rewards, winners, losers, margins, groups, 2)
    r = rewards.tolist()
    expected_pairs = [
        _closed_form(r[0], r[1], 0.0),
        _closed_form(r[0], r[2], 0.5),
        _closed_form(r[2], r[1], 0.0),
        _closed_form(r[4], r[3], 1.0),
    ]
    assert pair_loss.tolist() == pytest.approx(expected_pairs, rel=1e-6)
    assert group_loss.tolist() == pytest.approx([sum(expected_pairs[:3]) / 3, expected_pairs[3]], rel=1e-6)
    assert diff.tolist() == pytest.approx([1.5, 0.75, 0.75, -2.0])
    # Gradient of the mean loss w.r.t. a score: d/dr_w -log s(d - m) = -(1 - s(d - m)).
    x = rewards.clone().requires_grad_(True)
    gl, _, _ = bradley_terry_loss(x, winners[3:], losers[3:], margins[3:], torch.tensor([0]), 1)
    gl.sum().backward()
    s = 1.0 / (1.0 + math.exp(-(r[4] - r[3] - 1.0)))
    assert x.grad[4].item() == pytest.approx(-(1 - s), rel=1e-5)
    assert x.grad[3].item() == pytest.approx(1 - s, rel=1e-5)


def test_last_token_index_left_and_right():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 1]


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_reward_same_whatever_the_padding(arch, tiny_base, tiny_qwen_base):
    base = tiny_base if arch == "gpt2" else tiny_qwen_base
    cfg = RewardConfig(base_model=base, device="cpu", max_length=64)
    model, tok = build_reward_model(cfg, torch.device("cpu"))
    assert tok.pad_token_id != tok.eos_token_id
    with torch.no_grad():  # make the head non-trivial so a wrong position would show
        torch.manual_seed(1)
        model.score.weight.normal_()
    seqs = [
        encode_pair(tok, "How do I reset it?", text, 64)
        for text in ["Restart the router.", "Sorry, please restart the router and wait a minute.", "No."]
    ]
    assert all(s[-1] == tok.eos_token_id for s in seqs)
    ex = [PromptExample(0, [0, 1, 2], [], tokens=seqs)]
    model.eval()
    with torch.no_grad():
        alone = torch.cat(
            [sequence_rewards(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)) for s in seqs]
        )
        right = collate(ex, tok.pad_token_id, torch.device("cpu"), "right")
        left = collate(ex, tok.pad_token_id, torch.device("cpu"), "left")
        r_right = sequence_rewards(model, right.input_ids, right.attention_mask)
        r_left = sequence_rewards(model, left.input_ids, left.attention_mask)
    assert len(set(alone.tolist())) == 3  # distinct texts, distinct rewards
    assert torch.allclose(r_right, alone, atol=1e-5)
    assert torch.allclose(r_left, alone, atol=1e-5)
    # The HF classifier's own pooling agrees on right padding (it looks for pad ids).
    hf = model(input_ids=right.input_ids, attention_mask=right.attention_mask).logits.squeeze(-1)
    assert torch.allclose(hf, alone, atol=1e-5)


@pytest.mark.parametrize("pooling", ["distinct_sum_last", "sum_last", "sum", "both", "mean"])
def test_pooled_reward_reads_only_the_reply_and_ignores_padding(pooling, tiny_qwen_base):
    cfg = RewardConfig(base_model=tiny_qwen_base, device="cpu", max_length=64, pooling=pooling)
    model, tok = build_reward_model(cfg, torch.device("cpu"))
    with torch.no_grad():
        torch.manual_seed(1)
        model.score.weight.normal_()
    texts = ["Restart the router.", "Sorry, please restart the router and wait a minute.", "No."]
    encoded = [encode_scored(tok, "How do I reset it?", t, 64) for t in texts]
    prompt_len = len(encode_pair(tok, "How do I reset it?", "", 64)) - 1  # the prompt alone, without EOS
    assert [start for _, start in encoded] == [prompt_len] * 3
    seqs, starts = [ids for ids, _ in encoded], [s for _, s in encoded]
    ex = [PromptExample(0, [0, 1, 2], [], tokens=seqs, starts=starts)]
    model.eval()
    with torch.no_grad():
        alone = torch.cat(
            [
                sequence_rewards(
                    model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long), torch.tensor([st]), pooling
                )
                for s, st in zip(seqs, starts)
            ]
        )
        for side in ("right", "left"):
            b = collate(ex, tok.pad_token_id, torch.device("cpu"), side)
            assert torch.allclose(
                sequence_rewards(model, b.input_ids, b.attention_mask, b.starts, pooling), alone, atol=1e-5
            )
        # A different prompt before the same reply moves the reading only through attention, and a
        # reading from position 0 (the whole sequence) differs from the reply's own.
        whole = sequence_rewards(
            model, torch.tensor([seqs[0]]), torch.ones(1, len(seqs[0]), dtype=torch.long), torch.tensor([0]), pooling
        )
    assert len(set(alone.tolist())) == 3
    assert not torch.allclose(whole, alone[:1])
    # Scoring through the trained-model path uses the same starts.
    scored = score_sequences(model, seqs, tok.pad_token_id, torch.device("cpu"), False, starts=starts, pooling=pooling)
    assert torch.allclose(torch.tensor(scored), alone, atol=1e-5)


def test_sum_pooling_counts_each_reply_token_once_whatever_the_length(tiny_qwen_base):
    # The score head is linear without a bias, so the sum reading is the mean reading times the reply's
    # length over SUM_DIVISOR: a phrase weighs the same in a long reply as in a short one.
    from core.training.reward_model import SUM_DIVISOR

    cfg = RewardConfig(base_model=tiny_qwen_base, device="cpu", max_length=64)
    model, tok = build_reward_model(cfg, torch.device("cpu"))
    assert model.score.bias is None
    with torch.no_grad():
        torch.manual_seed(2)
        model.score.weight.normal_()
    model.eval()
    texts = ["Restart the router.", "Restart the router, then wait a minute and check the lights again."]
    encoded = [encode_scored(tok, "How do I reset it?", t, 64) for t in texts]
    ex = [PromptExample(0, [0, 1], [], tokens=[i for i, _ in encoded], starts=[st for _, st in encoded])]
    b = collate(ex, tok.pad_token_id, torch.device("cpu"), "right")
    lengths = torch.tensor([len(ids) - st for ids, st in encoded], dtype=torch.float32)
    with torch.no_grad():
        read = {p: sequence_rewards(model, b.input_ids, b.attention_mask, b.starts, p) for p in POOLINGS}
    assert torch.allclose(read["sum"], read["mean"] * lengths / SUM_DIVISOR, atol=1e-5)
    assert torch.allclose(read["sum_last"], 0.5 * (read["sum"] + read["last"]), atol=1e-5)
    assert torch.allclose(read["both"], 0.5 * (read["mean"] + read["last"]), atol=1e-5)


def test_repeated_tokens_marks_each_token_that_ends_an_ngram_already_in_the_reply():
    from core.training.reward_model import repeated_tokens

    ids = torch.tensor([[9, 9, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 7]])
    span = torch.ones_like(ids, dtype=torch.bool)
    span[0, :2] = False  # the prompt
    span[0, -1] = False  # padding
    assert repeated_tokens(ids, span, n=4).int().tolist() == [
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0],
    ]
    # An n-gram the prompt said is not a repetition of the reply's.
    prompt_said = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4]])
    reply = torch.tensor([[False, False, False, False, True, True, True, True]])
    assert not repeated_tokens(prompt_said, reply, n=4).any()


def test_distinct_sum_pooling_leaves_a_sentence_said_twice_out_of_the_sum(tiny_qwen_base):
    from core.training.reward_model import SUM_DIVISOR, _backbone_and_head, repeated_tokens

    cfg = RewardConfig(base_model=tiny_qwen_base, device="cpu", max_length=96)
    model, tok = build_reward_model(cfg, torch.device("cpu"))
    with torch.no_grad():
        torch.manual_seed(3)
        model.score.weight.normal_()
    model.eval()
    once = "Restart the router, then wait a minute and check the lights."
    texts = [once, f"{once} {once} {once}"]
    encoded = [encode_scored(tok, "How do I reset it?", t, 96) for t in texts]
    b = collate(
        [PromptExample(0, [0, 1], [], tokens=[i for i, _ in encoded], starts=[st for _, st in encoded])],
        tok.pad_token_id,
        torch.device("cpu"),
        "right",
    )
    with torch.no_grad():
        read = {p: sequence_rewards(model, b.input_ids, b.attention_mask, b.starts, p) for p in POOLINGS}
        backbone, head = _backbone_and_head(model)
        hidden = backbone(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state
    positions = torch.arange(b.input_ids.shape[1])
    span = (positions[None] >= b.starts[:, None]) & b.attention_mask.bool()
    repeated = repeated_tokens(b.input_ids, span)
    assert not repeated[0].any() and repeated[1].sum() > len(encoded[0][0]) - encoded[0][1]  # most of two copies
    assert torch.allclose(read["distinct_sum_last"][0], read["sum_last"][0], atol=1e-5)  # nothing repeated
    kept = (span & ~repeated).float()[..., None]
    last = hidden[torch.arange(2), b.attention_mask.sum(1) - 1]
    expected = head(0.5 * ((hidden * kept).sum(1) / SUM_DIVISOR + last)).squeeze(-1)
    assert torch.allclose(read["distinct_sum_last"], expected, atol=1e-5)
    assert not torch.allclose(read["distinct_sum_last"][1], read["sum_last"][1], atol=1e-3)


def test_encode_scored_keeps_the_reply_start_when_truncated(tiny_qwen_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen_base)
    long_prompt = "How do I reset it? " * 30
    ids, start = encode_scored(tok, long_prompt, "Restart the router.", 24)
    full, full_start = encode_scored(tok, long_prompt, "Restart the router.", 10_000)
    assert len(ids) == 24 and ids == full[-24:]
    assert start == full_start - (len(full) - 24)
    ids, start = encode_scored(tok, "Hi?", "word " * 60, 16)  # the reply alone is longer than the budget
    assert start == 0 and len(ids) == 16


def test_saved_configs_without_pooling_read_the_last_token():
    assert RewardConfig().pooling == "distinct_sum_last"
    assert RewardConfig.from_dict({"learning_rate": 1e-4}).pooling == "distinct_sum_last"
    assert RewardConfig.from_saved({"learning_rate": 1e-4}).pooling == "last"
    assert RewardConfig.from_saved({"pooling": "mean"}).pooling == "mean"
    with pytest.raises(UserError, match="pooling"):
        RewardConfig(pooling="max")


def test_split_never_shares_a_prompt():
    for n in (2, 3, 10, 57):
        for seed in range(5):
            train, val = split_by_prompt(list(range(100, 100 + n)) * 2, 0.2, seed)
            assert set(train).isdisjoint(val)
            assert set(train) | set(val) == set(range(100, 100 + n))
            assert len(val) >= 1 and len(train) >= 1
    assert split_by_prompt([1, 2, 3, 4, 5], 0.4, 3) == split_by_prompt([5, 4, 3, 2, 1], 0.4, 3)


def test_step_examples_cover_each_prompt_once_per_epoch():
    cfg = RewardConfig(prompts_per_micro_batch=2, grad_accum_steps=2, seed=3)
    train = [PromptExample(i, [], []) for i in range(10)]
    seen = [ex.prompt_id for s in range(3) for mb in step_examples(train, s, cfg) for ex in mb]
    assert sorted(seen) == list(range(10))
    assert [len(mb) for mb in step_examples(train, 0, cfg)] == [2, 2]


def test_lr_schedule_warmup_then_decay():
    cfg = RewardConfig(learning_rate=1.0, warmup_ratio=0.1, min_lr_ratio=0.0, lr_schedule="cosine")
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] <= 1.0 and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    lin = RewardConfig(learning_rate=1.0, warmup_ratio=0.0, min_lr_ratio=0.0, lr_schedule="linear")
    assert lr_at(50, 100, lin) == pytest.approx(0.5)


def test_finetune_modes_choose_trainable_parameters(tiny_base):
    full, _ = build_reward_model(RewardConfig(base_model=tiny_base, device="cpu"))
    lora, _ = build_reward_model(RewardConfig(base_model=tiny_base, device="cpu", finetune="lora", lora_r=4))
    frozen, _ = build_reward_model(RewardConfig(base_model=tiny_base, device="cpu", finetune="freeze", freeze_layers=1))
    n = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert n(lora) < n(frozen) < n(full) == sum(p.numel() for p in full.parameters())
    names = [k for k, p in frozen.named_parameters() if p.requires_grad]
    assert not any(".h.0." in k or "wte" in k for k in names) and any(".h.1." in k for k in names)
    assert any("score" in k for k in names)
    assert any("lora_" in k for k, p in lora.named_parameters() if p.requires_grad)
    assert all(not isinstance(m, torch.nn.Dropout) or m.p == 0.0 for m in full.modules())


def test_train_step_learns_a_batch(tiny_base):
    """A few steps on one batch push its pairs the right way (loss down, accuracy up)."""
    cfg = RewardConfig(
        base_model=tiny_base, device="cpu", learning_rate=3e-3, warmup_ratio=0.0, lr_schedule="constant", max_length=64
    )
    model, tok = build_reward_model(cfg)
    trainer = RewardTrainer(model, tok, cfg, 20, torch.device("cpu"))
    texts = ["Sorry, I will fix it.", "No.", "Sorry about that.", "Go away."]
    ex = PromptExample(
        0,
        [0, 1, 2, 3],
        [(0, 1, 0.0), (0, 3, 0.0), (2, 1, 0.0), (2, 3, 0.0)],
        tokens=[encode_pair(tok, "Help?", t, 64) for t in texts],
    )
    batch = trainer.batch([ex])
    first = trainer.train_step([batch], 0)
    for s in range(1, 15):
        last = trainer.train_step([batch], s)
    assert last["loss/train"] < first["loss/train"] and last["accuracy/train"] == 1.0
    assert set(first) >= {"loss/train", "accuracy/train", "lr", "grad/norm"}


def test_config_validation():
    with pytest.raises(UserError):
        RewardConfig(finetune="partial")
    with pytest.raises(UserError):
        RewardConfig(val_fraction=0.0)
    with pytest.raises(UserError):
        build_reward_model(RewardConfig(base_model="/nonexistent/model", device="cpu"))


def test_every_hyperparameter_has_a_one_line_doc():
    import dataclasses

    docs = RewardConfig.field_docs()
    names = [f.name for f in dataclasses.fields(RewardConfig)]
    assert set(docs) == set(names)
    assert all(docs[n].strip() and "\n" not in docs[n].strip() for n in names)
