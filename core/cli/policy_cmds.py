"""`rlhf-studio train-policy` and `rlhf-studio export-model`.

rlhf-studio train-policy PROJECT --algo ppo|rloo|grpo|dpo --policy PATH --reward RUN [--preset quick]
rlhf-studio train-policy PROJECT --resume RUN
rlhf-studio expert-check PROJECT RUN [--prompts 8] | --agreement
rlhf-studio export-model PROJECT RUN OUTDIR --plaintext [--adapter]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.cli.project_cmds import add_passphrase_args, open_project_from_args
from core.errors import UserError
from core.jobs import CancelToken, Cancelled
from core.training.policy_config import ALGOS, MODES, PRESETS

SHOWN_METRICS = ("reward/mean", "kl/mean", "kl/beta", "loss/policy", "monitor/length_ratio", "monitor/truncated")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-policy",
        help="fine-tune a model against a reward model (PPO, RLOO, GRPO) or the pairs (DPO)",
        description="Fine-tune the policy. Ctrl-C cancels at the next step and keeps a checkpoint; "
        "--resume RUN continues it exactly.",
    )
    p.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    p.add_argument("--algo", choices=ALGOS, default="ppo", help="algorithm (default: ppo)")
    p.add_argument("--policy", help="the base model folder (a local Hugging Face causal LM)")
    p.add_argument("--reward", type=int, metavar="RUN", help="the reward-model run to optimise against")
    p.add_argument("--preset", choices=tuple(PRESETS), default="balanced", help="default: balanced")
    p.add_argument("--mode", choices=MODES, default=None, help="lora (default), freeze or full fine-tuning")
    p.add_argument("--freeze-layers", type=int, metavar="N", help="with --mode freeze: bottom layers kept")
    p.add_argument("--steps", type=int, dest="total_steps", help="training steps")
    p.add_argument("--batch-size", type=int, help="prompts (or DPO pairs) per step")
    p.add_argument("--minibatch-size", type=int, help="samples per gradient step")
    p.add_argument("--epochs", type=int, dest="ppo_epochs", help="PPO epochs per batch")
    p.add_argument("--lr", type=float, dest="learning_rate", help="learning rate")
    p.add_argument("--temperature", type=float, help="sampling temperature")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="reply length limit in tokens (default 0 = automatic: fits 95%% of the candidates)",
    )
    p.add_argument("--kl-coef", type=float, help="initial KL penalty beta")
    p.add_argument("--kl-target", type=float, help="target KL for the adaptive controller")
    p.add_argument("--fixed-kl", action="store_true", help="keep beta fixed (no adaptive controller)")
    p.add_argument("-k", type=int, dest="rloo_k", help="RLOO/GRPO: samples per prompt")
    p.add_argument(
        "--value-init",
        choices=("auto", "head", "reward"),
        help="PPO critic: reward-model copy, value head, or auto (the copy up to 300M parameters; default)",
    )
    p.add_argument("--dpo-beta", type=float, help="DPO beta")
    p.add_argument("--label-smoothing", type=float, help="DPO label smoothing")
    p.add_argument("--device", help="auto (GPU when present), cuda, mps or cpu")
    p.add_argument(
        "--quantization",
        choices=("auto", "none", "8bit", "4bit"),
        help="base weights: auto (default: the pre-flight picks what fits), none, 8bit, 4bit (QLoRA)",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in the backward pass (less memory, slower)",
    )
    p.add_argument("--reward-device", help="where the reward model scores: auto (the policy's device) or cpu")
    p.add_argument(
        "--rollout-engine",
        choices=("static", "compiled", "vllm"),
        help="rollout sampler: static (default), compiled (torch.compile) or vllm (when installed)",
    )
    p.add_argument("--gpus", type=int, metavar="N", help="DPO: train data-parallel in N processes")
    p.add_argument("--seed", type=int)
    g = p.add_argument_group("hybrid reward (automatic terms, off unless given a weight)")
    g.add_argument("--model-weight", type=float, help="weight of the reward model (default 1)")
    g.add_argument("--length-target", type=int, metavar="WORDS")
    g.add_argument("--length-weight", type=float)
    g.add_argument("--require", action="append", default=[], metavar="WORD", help="repeatable")
    g.add_argument("--forbid", action="append", default=[], metavar="WORD", help="repeatable")
    g.add_argument("--regex", action="store_true", help="--require/--forbid are regular expressions")
    g.add_argument("--pattern-weight", type=float)
    g.add_argument("--repetition-weight", type=float)
    g.add_argument("--rouge-weight", type=float, help="ROUGE-L against each prompt's reference answer")
    g.add_argument("--bleu-weight", type=float, help="BLEU against each prompt's reference answer")
    p.add_argument("--resume", type=int, metavar="RUN", help="continue a cancelled or failed run")
    add_passphrase_args(p)
    p.set_defaults(func=cmd_train_policy)

    c = subparsers.add_parser(
        "expert-check",
        help="blind pairs of the policy's fresh replies vs the base's, and the reward model's "
        "agreement with how you judged them",
        description="Sample one reply from policy run RUN (its latest checkpoint) and one from the base model for "
        "a few training prompts and queue them as blind pairs; judge them in the app (Train → Policy "
        "→ Check with the expert). --agreement then says how often the reward model orders your "
        "judged pairs as you did, with the run's reward-hacking monitors.",
    )
    c.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    c.add_argument("run", type=int, help="the policy run")
    c.add_argument("--prompts", type=int, default=8, help="prompts to sample (default 8)")
    c.add_argument("--agreement", action="store_true", help="measure the agreement on the pairs judged so far")
    c.add_argument("--seed", type=int, help="seed for the prompts, the sampling and the sides (default: random)")
    c.add_argument("--device", default=None, help="auto (GPU when present), cuda, mps or cpu")
    add_passphrase_args(c)
    c.set_defaults(func=cmd_expert_check)

    e = subparsers.add_parser(
        "export-model",
        help="export a tuned model as a Hugging Face folder (unencrypted)",
        description="Write a policy run's model to OUTDIR as a standard Hugging Face folder. The files are "
        "NOT encrypted, so --plaintext is required.",
    )
    e.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    e.add_argument("run", type=int, help="the policy run")
    e.add_argument("outdir", type=Path, help="a new or empty folder")
    e.add_argument("--plaintext", action="store_true", help="confirm: write the weights unencrypted")
    e.add_argument("--adapter", action="store_true", help="LoRA runs: write the adapter alone, not merged")
    e.add_argument(
        "--gguf",
        action="store_true",
        help="also write model.gguf (llama.cpp, Ollama, LM Studio; needs the gguf package)",
    )
    e.add_argument("--gguf-type", choices=("f16", "q8_0", "f32"), default="f16", help="GGUF tensor type")
    add_passphrase_args(e)
    e.set_defaults(func=cmd_export_model)


POLICY_FLAGS = (
    "mode",
    "freeze_layers",
    "total_steps",
    "batch_size",
    "minibatch_size",
    "ppo_epochs",
    "learning_rate",
    "temperature",
    "max_new_tokens",
    "kl_coef",
    "kl_target",
    "rloo_k",
    "value_init",
    "dpo_beta",
    "label_smoothing",
    "device",
    "seed",
    "quantization",
    "gradient_checkpointing",
    "reward_device",
    "rollout_engine",
    "gpus",
)
REWARD_FLAGS = (
    "model_weight",
    "length_target",
    "length_weight",
    "pattern_weight",
    "repetition_weight",
    "rouge_weight",
    "bleu_weight",
)


def overrides_from_args(args) -> dict:
    """The flags as PolicyConfig overrides (the Train page's shape: `reward` holds the hybrid reward's)."""
    overrides = {k: getattr(args, k) for k in POLICY_FLAGS if getattr(args, k) is not None}
    if args.mode is None and args.freeze_layers:
        overrides["mode"] = "freeze"
    if args.fixed_kl:
        overrides["adaptive_kl"] = False
    reward = {k: getattr(args, k) for k in REWARD_FLAGS if getattr(args, k) is not None}
    if args.require or args.forbid:
        reward.update(required=list(args.require), forbidden=list(args.forbid))
        if not reward.get("pattern_weight"):
            reward["pattern_weight"] = 1.0
    if args.regex:
        reward["patterns_are_regex"] = True
    if args.length_target is not None and not reward.get("length_weight"):
        reward["length_weight"] = 1.0
    if args.reward is None and args.model_weight is None:
        reward["model_weight"] = 0.0
    if reward:
        overrides["reward"] = reward
    return overrides


def config_from_args(args):
    """The PolicyConfig for these flags, through the same operation as the app's Train page
    (core.ops.training.policy_config: preset, then algorithm/model/reward run, then overrides)."""
    from core.ops.training import policy_config

    cfg, _preset_config = policy_config(
        args.preset,
        algo=args.algo,
        policy_path=os.path.abspath(args.policy),
        reward_run=args.reward,
        overrides=overrides_from_args(args),
    )
    return cfg.validate()


def cmd_train_policy(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.training.policy_job import train_policy

    if args.resume is None and not args.policy:
        raise UserError("--policy PATH is required (the base model folder), or --resume RUN")
    token = CancelToken()
    with open_project_from_args(args) as proj:
        if args.resume is not None:
            job = train_policy(proj, {}, cancel=token, resume_run=args.resume)
        else:
            job = train_policy(proj, config_from_args(args), cancel=token)
        watch = MonitorPrinter(proj, args.resume)
        try:
            result = run_with_progress(
                job,
                token,
                desc=f"{args.algo if args.resume is None else 'policy'}",
                metrics=SHOWN_METRICS,
                on_event=watch,
            )
        except Cancelled:
            runs = proj.runs(kind="policy")
            run_id = args.resume if args.resume is not None else (runs[-1].id if runs else None)
            print(f"cancelled: run {run_id} saved a checkpoint; continue it with --resume {run_id}")
            return 130
    print(f"run {result.run_id}: {result.steps} steps")
    for name in ("reward/mean", "kl/mean", "loss/policy"):
        if name in result.metrics:
            print(f"{name}: {result.metrics[name]:.4f}")
    for line in watch.final_lines():
        print(line)
    return 0


class MonitorPrinter:
    """The reward-hacking monitors (core/training/monitors.py) over a train-policy run's events: a
    warning is printed above the bar when it starts, and the figures and any warning at the end."""

    def __init__(self, proj, resume_run=None):
        from core.training import monitors

        self.proj = proj
        self.watch = monitors.watch_run(proj, resume_run) if resume_run is not None else None
        self.run_id = resume_run

    def __call__(self, event) -> list[str]:
        from core.training import monitors

        if "run/id" in event.metrics:
            if self.watch is None:
                self.run_id = int(event.metrics["run/id"])
                self.watch = monitors.watch_run(self.proj, self.run_id)
            return []
        if self.watch is None:
            return []
        return [f"warning at step {event.step}: {w.text}" for w in self.watch.add(event.step, event.metrics)]

    def final_lines(self) -> list[str]:
        if self.watch is None:
            return []
        lines = [self.watch.summary_line()]
        active = self.watch.warnings
        lines += [f"warning: {w.text}" for w in active] or ["no reward-hacking warning"]
        lines.append(
            f"check with the expert: rlhf-studio expert-check PROJECT {self.run_id}, judge the pairs in "
            f"the app (Train → Policy → Check with the expert), then --agreement"
        )
        return lines


def cmd_expert_check(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.training import monitors
    from core.training.expert_check import expert_agreement, prepare_expert_check

    token = CancelToken()
    with open_project_from_args(args) as proj:
        try:
            if not args.agreement:
                prepared = run_with_progress(
                    prepare_expert_check(
                        proj, args.run, n_prompts=args.prompts, seed=args.seed, cancel=token, device=args.device
                    ),
                    token,
                    desc="expert check",
                )
                step = f" (weights of step {prepared.step})" if prepared.step is not None else ""
                print(
                    f"check run {prepared.check_run}: {prepared.items} blind pairs ready{step}. Judge them in the "
                    f"app (Train → Policy → Check with the expert), then run this with --agreement."
                )
                return 0
            result = run_with_progress(
                expert_agreement(proj, args.run, cancel=token, device=args.device), token, desc="agreement"
            )
        except Cancelled:
            print("cancelled: nothing was stored")
            return 1
        a = result.agreement
        if not a.pairs:
            print(
                f"no judged check pairs for run {args.run} yet: prepare a check, judge it in the app, then "
                "run this again"
            )
            return 0
        print(
            f"reward model (run {result.reward_run}) agrees with you on {100 * a.rate:.0f}% of {a.pairs} "
            f"fresh pairs; you preferred the policy's reply in {100 * result.expert_prefers_policy:.0f}%"
        )
        for row in result.by_check:
            print(f"  check run {row['check_run']} (step {row['step']}): {100 * row['rate']:.0f}% of {row['pairs']}")
        watch = monitors.watch_run(proj, args.run, a)
    print(watch.summary_line())
    for w in watch.warnings:
        print(f"warning: {w.text}")
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    from core.training.export import export_model

    if not args.plaintext:
        raise UserError("The exported model is written unencrypted; add --plaintext to confirm.")
    with open_project_from_args(args) as proj:
        out = export_model(
            proj,
            args.run,
            args.outdir,
            plaintext=True,
            merge=not args.adapter,
            gguf=args.gguf,
            gguf_type=args.gguf_type,
        )
    print(f"exported run {args.run} to {out}")
    if (out / "model.gguf").exists():
        print(f"GGUF: {out / 'model.gguf'}; Ollama: ollama create NAME -f {out / 'Modelfile'}")
    return 0
