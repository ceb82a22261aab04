"""Build the embedded demo model: write the corpus, train a BPE tokenizer and a tiny Qwen2 LM, save it.

    python -m core.demo.build_model resources/demo_model            # the committed model (~5 min, CPU)
    python -m core.demo.build_model /tmp/m --examples 300 --steps 20 # a quick smoke build

Reproducible: the corpus comes from a seeded RNG, the tokenizer trainer is deterministic, torch is seeded
and runs deterministic kernels on CPU. Output is a normal Hugging Face folder (config.json,
model.safetensors, tokenizer.json, generation_config.json) plus corpus_sample.jsonl and build.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import core.offline  # noqa: F401
from core.demo import corpus as C

PAD, EOS, BOS, UNK = "<|pad|>", "<|endoftext|>", "<|startoftext|>", "<|unk|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass
class BuildConfig:
    examples: int = 16000
    """Training (request, reply) pairs written from the templates."""
    vocab_size: int = 1024
    """BPE vocabulary size (special tokens included)."""
    hidden: int = 128
    """Model width."""
    layers: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads (key/value heads: half)."""
    max_positions: int = 320
    """Longest prompt + reply the model handles."""
    steps: int = 600
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step."""
    lr: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    seed: int = 0
    """Seed for the corpus, the initial weights and batch order."""
    threads: int = 1
    """CPU threads for torch (0 = torch's default). One thread: bitwise-reproducible reductions, and
    faster than two on a busy machine for a model this small."""


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, BOS, UNK, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        additional_special_tokens=ROLE_TOKENS,
        padding_side="left",
        truncation_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1 << 30
    return fast


def encode_examples(tokenizer, examples, max_len: int):
    """(prompt ids + reply ids + EOS, number of prompt ids) per example; the loss covers the reply only.

    The prompt goes through the same `format_prompt` as generation, so training and sampling agree.
    """
    from core.models.loading import format_prompt

    prompts = tokenizer([format_prompt(tokenizer, ex.request) for ex in examples], add_special_tokens=False)
    replies = tokenizer([ex.reply for ex in examples], add_special_tokens=False)
    rows = []
    for p, r in zip(prompts["input_ids"], replies["input_ids"]):
        ids = (p + r + [tokenizer.eos_token_id])[:max_len]
        rows.append((ids, len(p)))
    return rows


def _length_buckets(rows, batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches whose rows have similar lengths (less padding), in random order."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    batches = []
    chunk = batch_size * 50
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(rows[i][0]))
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def build(out_dir, cfg: BuildConfig = BuildConfig(), log=print) -> Path:
    import torch

    t0 = time.monotonic()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    # tiny Adam states go denormal and denormal maths is very slow on x86; both switches are
    # process-wide, so they are put back afterwards (flush-to-zero breaks callers' float maths)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _build(out_dir, cfg, log, t0)
    finally:
        torch.set_flush_denormal(False)
        torch.use_deterministic_algorithms(deterministic)


def _build(out_dir, cfg: BuildConfig, log, t0: float) -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    examples = list(C.examples(cfg.examples, seed=cfg.seed))
    tokenizer = train_tokenizer([e.request for e in examples] + [e.reply for e in examples], cfg.vocab_size)
    rows = encode_examples(tokenizer, examples, cfg.max_positions)
    n_tokens = sum(len(r) for r, _ in rows)
    log(f"corpus: {len(rows)} examples, {n_tokens} tokens, vocab {len(tokenizer)}")

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        intermediate_size=cfg.hidden * 3,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=max(1, cfg.heads // 2),
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: qwen2 {cfg.layers}x{cfg.hidden}, {n_params / 1e6:.2f}M parameters")

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    warmup = max(1, cfg.steps // 20)

    def lr_at(step):
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, cfg.steps - warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    rng = random.Random(cfg.seed)
    batches: list[list[int]] = []
    model.train()
    for step in range(cfg.steps):
        if not batches:
            batches = _length_buckets(rows, cfg.batch_size, rng)
        batch = [rows[i] for i in batches.pop()]
        width = max(len(ids) for ids, _ in batch)
        # right padding for training: positions start at 0 in every row, no position ids needed
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, n_prompt) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
            attn[i, : len(ids)] = 1
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=input_ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            log(f"step {step:5d}  loss {loss.item():.3f}  lr {lr_at(step):.2e}  {time.monotonic() - t0:.0f}s")

    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Stored weights: tied embeddings once, fp32. Re-save deterministic, metadata-free safetensors.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    with open(out / "corpus_sample.jsonl", "w") as f:
        for ex in examples[:50]:
            f.write(json.dumps(asdict(ex)) + "\n")
    with open(out / "build.json", "w") as f:
        json.dump(
            {
                "config": asdict(cfg),
                "parameters": n_params,
                "tokens": n_tokens,
                "final_loss": round(float(loss.item()), 4),
                "seconds": round(time.monotonic() - t0, 1),
            },
            f,
            indent=2,
        )
    log(f"saved to {out} in {time.monotonic() - t0:.0f}s")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    defaults = BuildConfig()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    cfg = BuildConfig(**{k: getattr(args, k) for k in asdict(defaults)})
    build(args.out_dir, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
