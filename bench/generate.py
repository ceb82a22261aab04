"""Generation throughput: our batched sampler against plain eager `model.generate`, same batch, same run.

    python bench/generate.py                      # CPU, the embedded demo model
    python bench/generate.py --device cuda        # GPU, a random 0.5B Qwen2-shaped model in bf16

Prints tokens/s for each path and the ratio. Tokens counted are the generated ones up to and including
EOS, summed over the batch. On CUDA our path is the static-cache loop with the decode step replayed as
a CUDA graph; `--no-graph` measures the same loop without it, `--compile` adds a torch.compile run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.offline  # noqa: E402,F401
import torch  # noqa: E402

from core.models.generation import SamplingSettings, eos_token_ids, sample  # noqa: E402

from common import QWEN2_05B, timed  # noqa: E402


class IdsOnlyTokenizer:
    """What `sample` needs from a tokenizer for a random-weight model with no vocabulary: ids only."""

    def __init__(self, pad_token_id: int, eos_token_id: int):
        self.pad_token_id = pad_token_id
        self.eos_token_id = eos_token_id

    def batch_decode(self, rows, skip_special_tokens=True):
        return ["" for _ in rows]


def hf_generate(model, input_ids, attention_mask, settings, pad_id, eos_ids):
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.temperature > 0,
        temperature=settings.temperature or None,
        top_p=settings.top_p if settings.temperature > 0 else None,
        top_k=None,
        pad_token_id=pad_id,
        eos_token_id=eos_ids,
    )
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    new = out[:, input_ids.shape[1] :]
    # tokens up to and including the first EOS
    is_eos = torch.isin(new, torch.tensor(eos_ids, device=new.device))
    after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return int((~after).sum())


def setup_cpu(args):
    from core.demo.corpus import demo_prompts
    from core.demo.project import demo_model_dir
    from core.models.loading import encode_batch, load_model

    model, tok = load_model(args.model or demo_model_dir(), device="cpu")
    batch = encode_batch(tok, demo_prompts(args.batch))
    return model, tok, batch["input_ids"], batch["attention_mask"], "demo model"


def setup_cuda(args):
    from transformers import AutoModelForCausalLM, Qwen2Config

    device = torch.device(args.device)
    torch.manual_seed(0)
    pad_id, eos_id = 151643, 151645
    config = Qwen2Config(**QWEN2_05B, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=pad_id)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    n = sum(p.numel() for p in model.parameters())
    # left-padded random prompts of different lengths
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(args.prompt_len // 2, args.prompt_len + 1, (args.batch,), generator=g)
    ids = torch.full((args.batch, args.prompt_len), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n_tok in enumerate(lengths.tolist()):
        ids[i, -n_tok:] = torch.randint(0, 150000, (n_tok,), generator=g)
        mask[i, -n_tok:] = 1
    return (
        model,
        IdsOnlyTokenizer(pad_id, eos_id),
        ids.to(device),
        mask.to(device),
        f"random Qwen2-shaped {n / 1e9:.2f}B bf16",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (demo model) or cuda (random 0.5B Qwen2)")
    parser.add_argument("--batch", type=int, default=None, help="sequences per batch (cpu 32, cuda 32)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cpu 96, cuda 256")
    parser.add_argument("--prompt-len", type=int, default=128, help="longest prompt on cuda (random ids)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per path (best is kept)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--model", default=None, help="cpu: a model folder instead of the demo model")
    parser.add_argument("--threads", type=int, default=0, help="cpu: torch threads (0 = default)")
    parser.add_argument("--no-graph", action="store_true", help="cuda: also time our loop without CUDA graph")
    parser.add_argument("--compile", action="store_true", help="cuda: also time our loop under torch.compile")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or 32
    args.max_new_tokens = args.max_new_tokens or (96 if device.type == "cpu" else 256)

    if device.type == "cuda":
        model, tok, ids, mask, what = setup_cuda(args)
        name = torch.cuda.get_device_name(device)
    else:
        model, tok, ids, mask, what = setup_cpu(args)
        name = f"CPU, {torch.get_num_threads()} threads"
    settings = SamplingSettings(
        temperature=args.temperature, top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens, seed=0
    )
    eos_ids = eos_token_ids(model, tok)
    print(
        f"device: {name}; model: {what}; batch {args.batch}, prompt width {ids.shape[1]}, "
        f"max new tokens {args.max_new_tokens}, temperature {args.temperature}"
    )

    rows = []

    def ours(**kw):
        def run():
            out = sample(model, tok, ids, mask, settings, **kw)
            return int(out.response_mask.sum()), out.backend

        return run

    def eager():
        return hf_generate(model, ids, mask, settings, tok.pad_token_id, eos_ids), "hf eager generate"

    paths = [("model.generate (eager)", eager), ("ours", ours())]
    if device.type == "cuda" and args.no_graph:
        paths.append(("ours, no CUDA graph", ours(cuda_graph=False)))
    if args.compile:
        paths.append(("ours + torch.compile", ours(compile=True)))
    for label, fn in paths:
        seconds, (tokens, backend) = timed(fn, device, args.repeats)
        rows.append((label, backend, tokens, seconds, tokens / seconds))
        print(
            f"  {label:28s} [{backend:17s}] {tokens:7d} tokens in {seconds:7.3f}s = {tokens / seconds:9.1f} tokens/s",
            flush=True,
        )
    base = rows[0][4]
    for label, _, _, _, tps in rows[1:]:
        print(f"ratio {label} / model.generate: {tps / base:.2f}x")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
