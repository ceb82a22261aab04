"""Tiny, randomly initialised causal LMs and tokenizers, built offline from configs.

Tests and benches use these instead of hub models (there is no hub here). The tokenizer is a byte-level
BPE trained with `tokenizers` on a few sentences; the model is a 2-layer GPT-2 or Qwen2 config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, Optional

DEFAULT_CORPUS = [
    "Thank you for contacting support. I am sorry about the delay with your order.",
    "Please restart the router and check whether the light turns green.",
    "Your refund has been processed and should arrive within five business days.",
    "I understand your frustration. Let me look into your account right away.",
    "Could you share the error message you see when you log in?",
    "We have updated your shipping address. Is there anything else I can help with?",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}<>-_/\\@#$%^&*+=",
]

PAD, EOS, BOS, UNK = "<|pad|>", "<|endoftext|>", "<|startoftext|>", "<|unk|>"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(corpus: Optional[Iterable[str]] = None, vocab_size: int = 512):
    """A byte-level BPE fast tokenizer with distinct pad, eos and bos tokens, and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, BOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus or DEFAULT_CORPUS), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(
    tokenizer,
    arch: Literal["gpt2", "qwen2"] = "gpt2",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 256,
):
    from transformers import GPT2Config, Qwen2Config

    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    if arch == "gpt2":
        return GPT2Config(
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=max_positions,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
    return Qwen2Config(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        **common,
    )


def build_tiny_model(
    out_dir: str | Path,
    arch: Literal["gpt2", "qwen2"] = "gpt2",
    seed: int = 0,
    corpus: Optional[Iterable[str]] = None,
    **config_kwargs,
) -> Path:
    """Save a tiny random causal LM and its tokenizer to `out_dir` (a normal HF folder)."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus)
    config = tiny_config(tokenizer, arch=arch, **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
