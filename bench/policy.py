"""Policy-training throughput: the PPO step broken down, our rollouts vs eager `generate`, our PPO update
vs a plain PyTorch loop, all in the same run on the same model and batch.

    python bench/policy.py                  # CPU: a tiny GPT-2 policy (fast; the breakdown and samples/s)
    python bench/policy.py --device cuda    # GPU: a randomly initialised 0.5B Qwen2-shaped policy, bf16

Prints:
1. one PPO step split into generation, scoring (reward model + policy/reference log-probs + values) and
   training (PPO epochs), and samples/s;
2. rollout generation: our static-KV-cache sampler (CUDA-graph decode on GPU) against eager
   `model.generate` at the same batch and length, tokens/s and the ratio (target >= 3x on GPU);
3. the training step: our PPO update (`PPOTrainer.update`) against a plain PyTorch loop computing the same
   clipped policy + value losses on the same minibatches, samples/s and the ratio (target >= 0.9x).
The reward model is a small random sequence classifier on the same device (the policy is the subject).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.offline  # noqa: E402,F401
import torch  # noqa: E402

from core.training.policy_common import (  # noqa: E402
    PolicyWithReference,
    disable_dropout,
    encode_prompts,
    generate_rollout,
    masked_mean,
    minibatches,
)
from core.training.policy_config import PolicyConfig  # noqa: E402
from core.training.ppo import PPOTrainer  # noqa: E402

from common import QWEN2_05B, timed  # noqa: E402

PROMPT_TEXT = [
    "My order has not arrived and it has been two weeks. Could you check where it is and tell me "
    "when it will come? The tracking page shows nothing since last Monday.",
    "The router keeps dropping the connection every evening. I restarted it twice already.",
    "I was charged twice for the same subscription this month. Please refund the second payment.",
    "Can I change the shipping address of an order I placed this morning?",
]


class SmallRewardModel:
    """A random GPT-2 sequence classifier scoring response ids: a realistic scoring cost, tiny weights."""

    def __init__(self, device, vocab=512):
        from transformers import GPT2Config, GPT2ForSequenceClassification

        cfg = GPT2Config(
            n_embd=128,
            n_layer=2,
            n_head=4,
            vocab_size=vocab,
            num_labels=1,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
        )
        torch.manual_seed(1)
        self.model = GPT2ForSequenceClassification(cfg).to(device).eval()
        self.device, self.vocab = device, vocab

    @torch.no_grad()
    def __call__(self, batch):
        rows = [[t % self.vocab for t in ids] or [0] for ids in batch.response_ids]
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits[:, 0].float().cpu()


def build_policy(args, device):
    from transformers import AutoModelForCausalLM

    from core.models.tiny import build_tiny_model, train_tokenizer

    if args.device == "cpu":
        folder = build_tiny_model(Path(tempfile.mkdtemp()) / "policy", arch="gpt2", hidden=128, layers=4, heads=4)
        from core.training.policy_common import load_policy_model

        return load_policy_model(str(folder), "cpu", "float32")
    from transformers import Qwen2Config

    tokenizer = train_tokenizer()
    tokenizer.padding_side = "left"
    cfg = Qwen2Config(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **QWEN2_05B,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    disable_dropout(model)
    return model, tokenizer


def plain_update(model, head, optimizer, exp, advantages, returns, cfg, order):
    """The baseline: a straightforward PyTorch PPO minibatch loop, as one would write it by hand."""
    seq, am, P = exp.rollout.sequences, exp.rollout.attention_mask, exp.rollout.prompt_len
    mask = exp.mask.float()
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    for mb in order:
        out = model(input_ids=seq[mb], attention_mask=am[mb], output_hidden_states=True)
        logits = out.logits[:, P - 1 : -1].float() / cfg.temperature
        logp = torch.log_softmax(logits, -1).gather(-1, seq[mb, P:, None]).squeeze(-1)
        values = head(out.hidden_states[-1][:, P - 1 : -1].float()).squeeze(-1)
        m, adv, old_v = mask[mb], advantages[mb], exp.values[mb]
        ratio = torch.exp(logp - exp.logprobs[mb])
        pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.cliprange, 1 + cfg.cliprange))
        v_clip = old_v + (values - old_v).clamp(-cfg.cliprange_value, cfg.cliprange_value)
        vf = 0.5 * torch.max((values - returns[mb]) ** 2, (v_clip - returns[mb]) ** 2)
        loss = masked_mean(pg, m) + cfg.vf_coef * masked_mean(vf, m)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (tiny GPT-2) or cuda (random 0.5B Qwen2, bf16)")
    parser.add_argument("--batch", type=int, default=None, help="prompts per PPO step (cpu 16, cuda 32)")
    parser.add_argument("--minibatch", type=int, default=None, help="samples per gradient step (cpu 8, cuda 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cpu 32, cuda 128")
    parser.add_argument("--steps", type=int, default=2, help="timed PPO steps (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per comparison (best is kept)")
    parser.add_argument("--threads", type=int, default=0, help="cpu: torch threads (0 = default)")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    B = args.batch or (32 if cuda else 16)
    mbs = args.minibatch or 8
    T = args.max_new_tokens or (128 if cuda else 32)

    t0 = time.perf_counter()
    model, tok = build_policy(args, device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"device: {torch.cuda.get_device_name(device) if cuda else 'cpu'} | policy: "
        f"{type(model).__name__} {n_params / 1e6:.1f}M params, {next(model.parameters()).dtype} | "
        f"batch {B} prompts, minibatch {mbs}, {T} new tokens | built in {time.perf_counter() - t0:.1f}s"
    )
    cfg = PolicyConfig(
        algo="ppo",
        mode="full",
        batch_size=B,
        minibatch_size=mbs,
        ppo_epochs=1,
        temperature=1.0,
        max_new_tokens=T,
        max_prompt_tokens=256,
        missing_eos_penalty=None,
        learning_rate=1e-6,
        forward_batch_size=B,
    )
    policy = PolicyWithReference(model, "full")
    trainer = PPOTrainer(policy, tok, cfg, SmallRewardModel(device))
    prompts = [PROMPT_TEXT[i % len(PROMPT_TEXT)] for i in range(B)]

    # 1. The PPO step, broken down.
    trainer.step(prompts, [None] * B)  # warm-up (CUDA graph capture, allocator, kernels)
    rows = [trainer.step(prompts, [None] * B)[0] for _ in range(args.steps)]
    g, s, tr = (sum(r[k] for r in rows) / len(rows) for k in ("perf/generate_s", "perf/score_s", "perf/train_s"))
    total = g + s + tr
    print(f"\nPPO step ({args.steps} timed, {B} samples each, ppo_epochs=1):")
    print(f"  generation {g:7.3f}s  {100 * g / total:5.1f}%")
    print(f"  scoring    {s:7.3f}s  {100 * s / total:5.1f}%   (reward model + policy/reference log-probs + values)")
    print(f"  training   {tr:7.3f}s  {100 * tr / total:5.1f}%")
    print(f"  total      {total:7.3f}s  -> {B / total:.1f} samples/s")

    # 2. Rollout generation: ours vs eager generate, same prompts, same length limit.
    ids, mask = encode_prompts(tok, prompts, 256, device)
    settings = dict(temperature=1.0, max_new_tokens=T)
    t_ours, ro = timed(lambda: generate_rollout(model, tok, ids, mask, seed=0, **settings), device, args.repeats)

    def eager():
        with torch.no_grad():
            return model.generate(
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

    t_eager, out = timed(eager, device, args.repeats)
    n_ours = int(ro.response_mask.sum())
    n_eager = int((out[:, ids.shape[1] :] != tok.pad_token_id).sum())  # approx: tokens up to EOS/pad
    print(f"\nrollout generation (batch {B}, prompt width {ids.shape[1]}, up to {T} new tokens):")
    print(f"  ours (static KV cache{' + CUDA graph' if cuda else ''}) {t_ours:7.3f}s  {n_ours / t_ours:9.0f} tok/s")
    print(f"  eager model.generate            {t_eager:7.3f}s  {n_eager / t_eager:9.0f} tok/s")
    print(f"  speed-up (time): {t_eager / t_ours:.2f}x   (target >= 3x on GPU)")

    # 3. The training step: our PPO update vs a plain loop, same experience, same minibatches.
    exp = trainer.collect(prompts, [None] * B)
    from core.training.ppo import compute_gae, token_rewards
    from core.training.policy_common import masked_whiten

    m = exp.mask.float()
    rewards, _ = token_rewards(exp.scores, exp.logprobs, exp.ref_logprobs, m, trainer.kl_ctl.value)
    adv, ret = compute_gae(rewards, exp.values, m, cfg.gamma, cfg.lam)
    adv = masked_whiten(adv, m)
    order_gen = torch.Generator().manual_seed(0)
    orders = [[mb.to(device) for mb in minibatches(B, mbs, order_gen)] for _ in range(args.repeats + 1)]
    plain_opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad] + list(trainer.value_head.parameters()),
        lr=1e-6,
        eps=cfg.adam_eps,
    )
    it = iter(orders)
    t_plain, _ = timed(
        lambda: plain_update(model, trainer.value_head, plain_opt, exp, adv, ret, cfg, next(it)), device, args.repeats
    )
    plain_opt = None  # frees the plain loop's AdamW state before ours runs (the lambda above names it)
    if cuda:
        torch.cuda.empty_cache()
    t_train, _ = timed(lambda: trainer.update(exp), device, args.repeats)
    print(
        f"\ntraining step (one PPO epoch over {B} samples in minibatches of {mbs}, "
        f"{exp.mask.shape[1]} response tokens):"
    )
    print(f"  ours  (PPOTrainer.update)   {t_train:7.3f}s  {B / t_train:8.1f} samples/s")
    print(f"  plain PyTorch loop          {t_plain:7.3f}s  {B / t_plain:8.1f} samples/s")
    print(f"  ratio ours/plain (throughput): {t_plain / t_train:.2f}x   (target >= 0.9x)")
    if cuda:
        print(f"\npeak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
