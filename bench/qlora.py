"""QLoRA on Qwen2.5-7B shapes (random init): peak GPU memory and throughput of a reward-model step and a
PPO step through the app's own code, each against a plain PyTorch loop on the same model and batch.

    python bench/qlora.py --device cuda                       # Qwen2.5-7B shape, 4-bit NF4 + LoRA + checkpointing
    python bench/qlora.py --device cpu --shape tiny --quantization none   # smoke test of this script on a CPU

Nothing is downloaded: the model is built from the shape with random weights in bf16 on the GPU, then
every linear layer except the heads is swapped for a bitsandbytes `Linear4bit` (NF4, double-quantized
statistics, bf16 compute), which is what `from_pretrained(quantization_config=BitsAndBytesConfig(...))`
produces; from there the app's path runs unchanged: peft's `prepare_model_for_kbit_training`
(`core.training.quantization.prepare_quantized`), LoRA, gradient checkpointing, `RewardTrainer.train_step`,
`PPOTrainer.step` / `.update`. Peak memory is `torch.cuda.max_memory_allocated` over each measured step
(the model's own bytes included), against the 24 GiB of a consumer card. Also prints the plan the
pre-flight picks for these shapes on 24 GB (`core.training.quantization`).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core.offline  # noqa: E402,F401
import torch  # noqa: E402

from common import sync, timed  # noqa: E402

QWEN25_7B = dict(
    hidden_size=3584,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    intermediate_size=18944,
    vocab_size=152064,
    max_position_embeddings=32768,
    tie_word_embeddings=False,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
)
TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=512,
    max_position_embeddings=1024,
    tie_word_embeddings=False,
)
GIB = 2**30


def quantize_linears(model, device, skip=("lm_head", "score")) -> int:
    """Replace nn.Linear layers by bitsandbytes Linear4bit (NF4), quantizing their current weights."""
    import bitsandbytes as bnb

    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and name not in skip:
                q = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=child.bias is not None,
                    compute_dtype=torch.bfloat16,
                    compress_statistics=True,
                    quant_type="nf4",
                    device="meta",
                )
                q.weight = bnb.nn.Params4bit(
                    child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4"
                ).to(device)
                if child.bias is not None:
                    q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(parent, name, q)
                del child
                n += 1
    model.is_loaded_in_4bit = True  # what transformers' bnb quantizer sets; peft reads it
    gc.collect()
    torch.cuda.empty_cache()
    return n


def build(kind: str, shape: dict, tokenizer, device, quantization: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, Qwen2Config

    cfg = Qwen2Config(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        num_labels=1,
        **shape,
    )
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForSequenceClassification
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = cls.from_config(cfg, dtype=dtype)
    if quantization == "4bit":
        quantize_linears(model, device)
    return model


def reset_peak(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak(device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / GIB:.2f} GiB" if device.type == "cuda" else "n/a (cpu)"


def bench_reward(args, shape, tok, device) -> None:
    from core.training.quantization import prepare_quantized
    from core.training.reward import PromptExample, RewardConfig, RewardTrainer, bradley_terry_loss, collate

    model = build("seqcls", shape, tok, device, args.quantization)
    if args.quantization == "4bit":
        model = prepare_quantized(model, gradient_checkpointing=True)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(
        model, LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
    )
    cfg = RewardConfig(
        finetune="lora",
        quantization=args.quantization,
        gradient_checkpointing=True,
        prompts_per_micro_batch=args.prompts,
        learning_rate=1e-4,
        bf16=True,
    )
    trainer = RewardTrainer(model, tok, cfg, total_steps=100, device=device)
    g = torch.Generator().manual_seed(0)
    R, L = args.responses, args.seq_len
    pairs = [(i, j, 0.0) for i in range(R) for j in range(i + 1, R)]
    examples = [
        PromptExample(
            k,
            list(range(R)),
            pairs,
            tokens=[torch.randint(3, shape["vocab_size"], (L - 8 * r,), generator=g).tolist() for r in range(R)],
        )
        for k in range(args.prompts)
    ]
    n_pairs = len(pairs) * args.prompts
    batch = [trainer.batch(examples)]
    reset_peak(device)
    t_ours, _ = timed(lambda: trainer.train_step(batch, 10), device, args.repeats)
    peak_ours = peak(device)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    b = collate(examples, tok.pad_token_id, device)

    def plain():  # the hand-written loop: HF pooling (reads pad ids), BT loss over the pairs, AdamW
        model.train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            rewards = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits.squeeze(-1).float()
        loss = bradley_terry_loss(rewards, b.winners, b.losers, b.margins, b.groups, b.n_prompts)[0].mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    reset_peak(device)
    t_plain, _ = timed(plain, device, args.repeats)
    print(
        f"\nreward model step ({args.quantization} base + LoRA r=16 + gradient checkpointing; "
        f"{args.prompts} prompts x {R} responses, up to {L} tokens, {n_pairs} pairs):"
    )
    print(f"  ours  (RewardTrainer.train_step) {t_ours:7.3f}s  {n_pairs / t_ours:7.1f} pairs/s  peak {peak_ours}")
    print(f"  plain PyTorch loop               {t_plain:7.3f}s  {n_pairs / t_plain:7.1f} pairs/s  peak {peak(device)}")
    print(f"  ratio ours/plain (throughput): {t_plain / t_ours:.2f}x   (target >= 0.9x)")
    # Release the model, both optimizers and the batches before the next bench: rebound, not `del`, since the
    # timed closures above still name them.
    trainer = model = opt = batch = b = None
    reset_peak(device)


def bench_policy(args, shape, tok, device) -> None:
    from policy import plain_update

    from core.models.generation import SamplingSettings, sample
    from core.training.policy_common import PolicyWithReference, disable_dropout, encode_prompts, masked_whiten
    from core.training.policy_common import minibatches
    from core.training.policy_config import PolicyConfig
    from core.training.ppo import PPOTrainer, compute_gae, token_rewards
    from core.training.quantization import prepare_policy_base

    model = build("causal", shape, tok, device, args.quantization)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    disable_dropout(model)
    B, T, mbs = args.batch, args.max_new_tokens, args.minibatch
    cfg = PolicyConfig(
        algo="ppo",
        mode="lora",
        quantization=args.quantization,
        gradient_checkpointing=True,
        batch_size=B,
        minibatch_size=mbs,
        ppo_epochs=1,
        temperature=1.0,
        max_new_tokens=T,
        max_prompt_tokens=args.prompt_len,
        missing_eos_penalty=None,
        learning_rate=1e-5,
        forward_batch_size=mbs,
    )
    model = prepare_policy_base(model, cfg)
    torch.manual_seed(0)
    policy = PolicyWithReference(model, "lora")

    def rule(batch):  # a rule reward keeps the policy the subject (no second 7B in memory)
        return [sum(1 for t in ids if t < 128) / max(1, len(ids)) for ids in batch.response_ids]

    trainer = PPOTrainer(policy, tok, cfg, rule)
    g = torch.Generator().manual_seed(0)
    prompts = [tok.decode(torch.randint(10, 500, (args.prompt_len,), generator=g).tolist()) for _ in range(B)]
    trainer.step(prompts, [None] * B)  # warm-up
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    metrics, exp = trainer.step(prompts, [None] * B)
    sync(device)
    t_step = time.perf_counter() - t0
    peak_step = peak(device)
    print(
        f"\nPPO step ({args.quantization} base + LoRA + checkpointing; batch {B}, {T} new tokens, "
        f"minibatch {mbs}): {t_step:.2f}s, {B / t_step:.2f} samples/s, peak {peak_step} "
        f"(generate {metrics.get('perf/generate_s', float('nan')):.2f}s, score "
        f"{metrics.get('perf/score_s', float('nan')):.2f}s, train {metrics.get('perf/train_s', float('nan')):.2f}s)"
    )

    # Training update: ours vs a plain loop on the same experience and minibatches.
    m = exp.mask.float()
    rewards, _ = token_rewards(exp.scores, exp.logprobs, exp.ref_logprobs, m, trainer.kl_ctl.value)
    adv, ret = compute_gae(rewards, exp.values, m, cfg.gamma, cfg.lam)
    adv = masked_whiten(adv, m)
    order_gen = torch.Generator().manual_seed(0)
    orders = iter([[mb.to(device) for mb in minibatches(B, mbs, order_gen)] for _ in range(args.repeats + 1)])
    pm = policy.model
    opt = torch.optim.AdamW(
        [p for p in pm.parameters() if p.requires_grad] + list(trainer.value_head.parameters()),
        lr=1e-6,
        eps=cfg.adam_eps,
    )
    reset_peak(device)
    t_plain, _ = timed(
        lambda: plain_update(pm, trainer.value_head, opt, exp, adv, ret, cfg, next(orders)), device, args.repeats
    )
    peak_plain = peak(device)
    opt = None  # frees the plain loop's AdamW state before ours is measured (the lambda above names it)
    reset_peak(device)
    t_train, _ = timed(lambda: trainer.update(exp), device, args.repeats)
    print(f"training update (one PPO epoch over {B} samples, minibatches of {mbs}):")
    print(f"  ours  (PPOTrainer.update) {t_train:7.3f}s  {B / t_train:7.2f} samples/s  peak {peak(device)}")
    print(f"  plain PyTorch loop        {t_plain:7.3f}s  {B / t_plain:7.2f} samples/s  peak {peak_plain}")
    print(f"  ratio ours/plain (throughput): {t_plain / t_train:.2f}x   (target >= 0.9x)")

    # Rollouts on the quantized policy: our static-cache sampler (and compiled) vs eager generate.
    ids, mask = encode_prompts(tok, prompts, args.prompt_len, device)
    settings = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=T, seed=0)
    t_ours, out = timed(lambda: sample(pm, tok, ids, mask, settings), device, args.repeats)

    def eager():
        with torch.no_grad():
            return pm.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=T,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )

    t_eager, _ = timed(eager, device, 1)
    print(
        f"rollouts (batch {B}, {T} new tokens): ours [{out.backend}] {t_ours:.2f}s, eager generate "
        f"{t_eager:.2f}s: {t_eager / t_ours:.2f}x"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", choices=("qwen2.5-7b", "tiny"), default="qwen2.5-7b")
    ap.add_argument("--quantization", choices=("4bit", "none"), default="4bit")
    ap.add_argument("--what", default="plan,reward,policy", help="comma list of plan, reward, policy")
    ap.add_argument("--prompts", type=int, default=2, help="reward: prompts per step")
    ap.add_argument("--responses", type=int, default=4, help="reward: responses per prompt")
    ap.add_argument("--seq-len", type=int, default=512, help="reward: tokens per response")
    ap.add_argument("--batch", type=int, default=8, help="policy: prompts per PPO step")
    ap.add_argument("--minibatch", type=int, default=4, help="policy: samples per gradient step")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    if args.quantization == "4bit" and device.type != "cuda":
        print("4-bit needs a CUDA GPU and bitsandbytes; use --quantization none on a CPU", file=sys.stderr)
        return 1
    from core.models.tiny import train_tokenizer

    shape = QWEN25_7B if args.shape == "qwen2.5-7b" else TINY
    tok = train_tokenizer(vocab_size=min(512, shape["vocab_size"]))
    tok.padding_side = "left"
    what = set(args.what.split(","))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; shape {args.shape}; {args.quantization}; torch {torch.__version__}")
    if "plan" in what:
        from transformers import Qwen2Config

        from core.training.policy_config import PolicyConfig
        from core.training.quantization import ModelShape, plan_for_policy, plan_for_reward
        from core.training.reward import RewardConfig

        ms = ModelShape.from_config(Qwen2Config(**QWEN25_7B))
        rcfg = RewardConfig(finetune="lora", max_length=args.seq_len, prompts_per_micro_batch=args.prompts)
        pcfg = PolicyConfig(
            mode="lora",
            minibatch_size=args.minibatch,
            max_prompt_tokens=args.prompt_len,
            max_new_tokens=args.max_new_tokens,
            dtype="bfloat16",
        )
        print(f"pre-flight plan for Qwen2.5-7B ({ms.n_params / 1e9:.2f}B) on a 24 GB GPU:")
        free = int(23.5 * GIB)
        print(f"  reward model: {plan_for_reward(rcfg, 'cuda', free_bytes=free, shape=ms, bnb=True).describe()}")
        print(f"  PPO policy:   {plan_for_policy(pcfg, 'cuda', free_bytes=free, shape=ms, bnb=True).describe()}")
    if "reward" in what:
        bench_reward(args, shape, tok, device)
    if "policy" in what:
        bench_policy(args, shape, tok, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
