"""Reward-model training step vs a plain PyTorch loop, same model, same batch, same run.

    .venv/bin/python bench/reward.py                 # CPU, tiny GPT-2-shaped model
    .venv/bin/python bench/reward.py --device cuda   # random 0.5B Qwen2-shaped model, bf16 autocast

Three loops over the identical batch (prompts x responses, all pairs of each prompt):
- ours:   `RewardTrainer.train_step` (each response scored once, every pair formed from those scores);
- plain:  the same computation written as a textbook loop (HF classifier logits, BT loss over the
          same pairs, AdamW, clipping) -- the quality bar is ours >= 0.9x plain;
- paired: the common chosen/rejected loop that re-scores a response for every pair it is in
          (shown for pairs/s: what the InstructGPT grouping buys).
Blocks of the loops alternate so drift (clocks, other load) hits both alike.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.offline import enforce_offline_env  # noqa: E402

enforce_offline_env()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.training.reward import PromptExample, RewardConfig, RewardTrainer, collate  # noqa: E402

from common import QWEN2_05B  # noqa: E402

PAD = 0


def make_model(device: torch.device, arch: str):
    from transformers import GPT2Config, Qwen2Config, AutoModelForSequenceClassification

    if arch == "qwen2-0.5b":
        cfg = Qwen2Config(**QWEN2_05B, pad_token_id=PAD, eos_token_id=1, attention_dropout=0.0)
    else:  # a small GPT-2 that still does real matmuls on a CPU
        cfg = GPT2Config(
            n_embd=128,
            n_layer=4,
            n_head=4,
            n_positions=512,
            vocab_size=2048,
            pad_token_id=PAD,
            eos_token_id=1,
            bos_token_id=1,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    cfg.num_labels = 1
    torch.manual_seed(0)
    with torch.device(device):  # initialise in place: a 0.5B init on the CPU takes longer than the bench
        model = AutoModelForSequenceClassification.from_config(cfg)
    return model.float()


def make_batch(n_prompts: int, k: int, min_len: int, max_len: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    examples = []
    for p in range(n_prompts):
        tokens = []
        for _ in range(k):
            n = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
            tokens.append(torch.randint(2, vocab, (n,), generator=g).tolist())
        pairs = [(i, j, 0.0) for i, j in itertools.combinations(range(k), 2)]
        examples.append(PromptExample(p, list(range(k)), pairs, tokens=tokens))
    return examples


def plain_step(model, opt, batch, autocast: bool, clip: float) -> float:
    """Textbook loop on the same batch: HF pooled logits, BT over the same index pairs."""
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with ctx:
        r = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.squeeze(-1).float()
    loss = -F.logsigmoid(r[batch.winners] - r[batch.losers]).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def paired_batches(examples, device):
    """chosen and rejected tensors, one row per pair (each response re-encoded for every pair it is in)."""
    chosen, rejected = [], []
    for ex in examples:
        for w, l, _ in ex.pairs:
            chosen.append(ex.tokens[w])
            rejected.append(ex.tokens[l])
    one = lambda seqs: collate([PromptExample(0, [], [], tokens=seqs)], PAD, device)  # noqa: E731
    return one(chosen), one(rejected)


def paired_step(model, opt, chosen, rejected, autocast: bool, clip: float) -> float:
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with ctx:
        rc = model(input_ids=chosen.input_ids, attention_mask=chosen.attention_mask).logits.squeeze(-1).float()
        rr = model(input_ids=rejected.input_ids, attention_mask=rejected.attention_mask).logits.squeeze(-1).float()
    loss = -F.logsigmoid(rc - rr).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def timed(fn, steps: int, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--prompts", type=int, default=None, help="prompts per step (default 4)")
    ap.add_argument("--responses", type=int, default=4, help="responses per prompt (all pairs used)")
    ap.add_argument("--min-len", type=int, default=None)
    ap.add_argument("--max-len", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per block")
    ap.add_argument("--blocks", type=int, default=None, help="rotating timed blocks per loop")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default 1 on CPU: a shared machine's load swamps 2+ threads)",
    )
    ap.add_argument("--no-paired", action="store_true", help="skip the chosen/rejected loop")
    ap.add_argument(
        "--arch",
        choices=("gpt2-tiny", "qwen2-0.5b"),
        default=None,
        help="model shape (default: qwen2-0.5b on CUDA, gpt2-tiny on CPU)",
    )
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu", file=sys.stderr)
        return 2
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    arch = args.arch or ("qwen2-0.5b" if cuda else "gpt2-tiny")
    prompts = args.prompts or 4
    min_len = args.min_len or (256 if cuda else 24)
    max_len = args.max_len or (512 if cuda else 64)
    steps = args.steps or (2 if cuda else 1)
    args.blocks = args.blocks or (8 if cuda else 30)
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)

    t_init = time.perf_counter()
    model_ours = make_model(device, arch)
    model_plain = copy.deepcopy(model_ours)
    vocab = model_ours.config.vocab_size
    examples = make_batch(prompts, args.responses, min_len, max_len, vocab)
    cfg = RewardConfig(
        learning_rate=1e-5,
        warmup_ratio=0.0,
        lr_schedule="constant",
        max_grad_norm=1.0,
        adam_beta2=0.999,
        device=str(device),
        bf16=True,
    )
    trainer = RewardTrainer(model_ours, SimpleNamespace(pad_token_id=PAD), cfg, 10_000, device)
    batch = trainer.batch(examples)
    opt_plain = torch.optim.AdamW(model_plain.parameters(), lr=1e-5)
    n_pairs, n_tokens, n_seqs = batch.n_pairs, batch.n_tokens, batch.input_ids.shape[0]
    padded_tokens = batch.input_ids.numel()

    state = {"step": 0}

    def ours():
        trainer.train_step([batch], state["step"])
        state["step"] += 1

    plain = lambda: plain_step(model_plain, opt_plain, batch, cuda, 1.0)  # noqa: E731
    loops = {"ours": ours, "plain": plain}
    if not args.no_paired:
        model_paired = copy.deepcopy(model_plain)
        opt_paired = torch.optim.AdamW(model_paired.parameters(), lr=1e-5)
        chosen, rejected = paired_batches(examples, device)
        loops["paired"] = lambda: paired_step(model_paired, opt_paired, chosen, rejected, cuda, 1.0)
    for name in list(loops):  # warm-up: allocator, kernels, optimizer state
        try:
            loops[name]()
            loops[name]()
        except torch.cuda.OutOfMemoryError:
            if name != "paired":
                raise
            # The paired loop holds 3x the activations; the figure that matters is ours vs plain.
            print("paired loop: out of GPU memory, skipped", file=sys.stderr)
            del loops[name]
            model_paired = opt_paired = chosen = rejected = None  # noqa: F841
            torch.cuda.empty_cache()
    setup_s = time.perf_counter() - t_init
    # Short blocks, the loops' order rotating each block; the median block is robust to bursts of
    # other load (shared CI machines), where a sum would charge a burst to whichever loop it hit.
    per_step = {name: [] for name in loops}
    names = list(loops)
    for b in range(args.blocks):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            per_step[name].append(timed(loops[name], steps, device) / steps)
    seconds = {name: statistics.median(v) for name, v in per_step.items()}
    n = steps * args.blocks

    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    params = sum(p.numel() for p in model_ours.parameters())
    print(
        f"reward-model training step -- {name}, {arch} ({params / 1e6:.1f}M params, "
        f"{'bf16 autocast' if cuda else 'fp32'}), setup {setup_s:.1f}s"
    )
    print(
        f"batch: {prompts} prompts x {args.responses} responses = {n_seqs} sequences, {n_pairs} pairs, "
        f"{n_tokens} tokens ({padded_tokens} padded); {n} timed steps per loop "
        f"({args.blocks} rotating blocks, median)"
    )
    print(f"{'loop':<8}{'ms/step':>10}{'pairs/s':>12}{'tokens/s':>14}")
    rates = {}
    for loop, per in seconds.items():
        rates[loop] = (n_pairs / per, n_tokens / per)
        print(f"{loop:<8}{per * 1e3:>10.1f}{rates[loop][0]:>12.1f}{rates[loop][1]:>14.0f}")
    ratio = rates["ours"][1] / rates["plain"][1]
    print(f"ratio ours/plain (same work): {ratio:.3f}x tokens/s  (target >= 0.9x)")
    if "paired" in rates:
        print(
            f"ratio ours/paired pairs/s: {rates['ours'][0] / rates['paired'][0]:.2f}x "
            f"(each response scored once instead of once per pair)"
        )
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
