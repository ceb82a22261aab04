"""Loading local models offline: folders, tokenizers, device/dtype, memory, prompt encoding."""

import json

import pytest
import torch

from core.errors import UserError
from core.models.loading import (
    MemoryEstimate,
    check_fits,
    describe_model,
    encode_batch,
    estimate_memory,
    format_prompt,
    load_config,
    load_model,
    load_tokenizer,
    pick_device,
    pick_dtype,
    position_ids_from_mask,
    prepare_tokenizer,
)
from tests.models_fixtures import tiny_gpt2, tiny_qwen2, one_thread  # noqa: F401 (fixtures)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_qwen2"])
def test_tiny_model_folder_loads(fixture, request):
    folder = request.getfixturevalue(fixture)
    model, tok = load_model(folder, device="cpu")
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert tok.padding_side == "left"
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    batch = encode_batch(tok, ["hello", "a much longer prompt about a refund"])
    logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_folder_without_model_names_folder_and_missing_files(tmp_path):
    with pytest.raises(UserError) as err:
        load_model(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "config.json" in msg and "weights" in msg and "tokenizer" in msg

    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load_model(tmp_path / "file.txt")


def test_folder_with_config_but_no_weights(tmp_path, tiny_gpt2):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((__import__("pathlib").Path(tiny_gpt2) / name).read_bytes())
    with pytest.raises(UserError) as err:
        load_model(tmp_path)
    assert "missing model weights (model.safetensors)." in str(err.value)


def test_not_a_causal_lm_is_a_user_error(tmp_path, tiny_gpt2):
    from pathlib import Path

    for f in Path(tiny_gpt2).iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "not_a_model_type"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="config"):
        load_model(tmp_path)


def test_pad_token_added_when_missing_and_embeddings_grow(tmp_path, tiny_gpt2):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    # a GPT-2-style tokenizer: EOS only, no pad token
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        ["hello world, a refund please"] * 3,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>")
    assert tok.pad_token is None
    assert prepare_tokenizer(tok) is True
    assert tok.pad_token_id != tok.eos_token_id and tok.padding_side == "left"

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    model.resize_token_embeddings(len(tok) - 1)  # vocab exactly as the pad-less tokenizer
    model.save_pretrained(tmp_path)
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>").save_pretrained(tmp_path)
    loaded, ltok = load_model(tmp_path, device="cpu")
    assert ltok.pad_token_id == len(ltok) - 1 != ltok.eos_token_id
    assert loaded.get_input_embeddings().num_embeddings >= len(ltok)


def test_device_and_dtype():
    dev = pick_device()
    assert dev.type in ("cuda", "mps", "cpu")
    assert pick_dtype("cpu") == torch.float32
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            pick_device("cuda")


def test_memory_estimate_counts_parameters(tiny_qwen2):
    model, _ = load_model(tiny_qwen2, device="cpu")
    n = sum(p.numel() for p in model.parameters())
    est = estimate_memory(tiny_qwen2)
    assert est.parameters == n and est.weights == 4 * n and est.total > est.weights
    bf16 = estimate_memory(load_config(tiny_qwen2), dtype=torch.bfloat16)
    assert bf16.weights == 2 * n
    train = estimate_memory(tiny_qwen2, training=True)
    assert train.total > 3 * est.weights
    lora = estimate_memory(tiny_qwen2, training=True, trainable_fraction=0.01)
    assert est.total < lora.total < train.total
    info = describe_model(tiny_qwen2, device="cpu")
    assert info["parameters"] == n and info["dtype"] == "float32" and info["model_type"] == "qwen2"


def test_too_big_model_is_refused_clearly():
    huge = MemoryEstimate(
        parameters=10**12, bytes_per_parameter=2, weights=2 * 10**12, total=3 * 10**12, training=False
    )
    with pytest.raises(UserError, match=r"will not fit: it needs about 3000\.00 GB on cpu"):
        check_fits(huge, "cpu", name="The model")
    check_fits(MemoryEstimate(1000, 4, 4000, 5000, False), "cpu")  # a small one passes


def test_prompt_formatting_rules(tiny_gpt2):
    tok = load_tokenizer(tiny_gpt2)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund?"}]
    text = format_prompt(tok, chat)
    assert text == "<|system|>\nBe brief.\n<|user|>\nRefund?\n<|assistant|>\n"
    # a plain string is one user turn when the tokenizer has a template ...
    assert format_prompt(tok, "Refund?") == "<|user|>\nRefund?\n<|assistant|>\n"
    # ... and raw text when it has none
    tok.chat_template = None
    assert format_prompt(tok, "Refund?") == "Refund?"
    assert format_prompt(tok, chat).endswith("user: Refund?\nassistant:")


def test_encode_batch_left_pads_with_positions(tiny_gpt2):
    tok = load_tokenizer(tiny_gpt2)
    b = encode_batch(tok, ["hi", "a somewhat longer prompt here", [{"role": "user", "content": "x"}]])
    ids, mask, pos = b["input_ids"], b["attention_mask"], b["position_ids"]
    assert ids.shape == mask.shape == pos.shape
    assert (mask[:, -1] == 1).all()  # left padding: every row ends with a real token
    for row in range(ids.shape[0]):
        n = int(mask[row].sum())
        assert (mask[row, : ids.shape[1] - n] == 0).all()
        assert (ids[row, : ids.shape[1] - n] == tok.pad_token_id).all()
        assert pos[row, -n:].tolist() == list(range(n))
        assert (pos[row, : ids.shape[1] - n] == 0).all()
    assert torch.equal(position_ids_from_mask(torch.tensor([[0, 0, 1, 1]])), torch.tensor([[0, 0, 0, 1]]))
    short = encode_batch(tok, ["one two three four five six seven"], max_tokens=3)
    assert short["input_ids"].shape[1] == 3  # keeps the end of an over-long prompt


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
