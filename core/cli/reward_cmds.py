"""`rlhf-studio train-reward PROJECT --base PATH [--preset quick] [--lora] [--resume RUN]`."""

from __future__ import annotations

import argparse
import os

from core.cli.project_cmds import add_passphrase_args, open_project_from_args
from core.errors import UserError
from core.jobs import CancelToken, Cancelled


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-reward",
        help="train a reward model on the project's judgments",
        description="Train a reward model (Bradley-Terry on every pair implied by your judgments). "
        "Ctrl-C cancels at the next step and keeps a checkpoint; --resume RUN continues it.",
    )
    p.add_argument("project", help="the project folder (NAME.rlhfproj)")
    p.add_argument("--base", help="local Hugging Face model folder to start from (the policy's base or another)")
    p.add_argument(
        "--preset",
        choices=("quick", "balanced", "thorough"),
        default="balanced",
        help="how long and careful the training is (default: balanced)",
    )
    p.add_argument("--lora", action="store_true", default=None, help="train LoRA adapters instead of every weight")
    p.add_argument(
        "--freeze-layers",
        type=int,
        default=None,
        metavar="N",
        help="freeze the bottom N transformer layers (and the embeddings)",
    )
    p.add_argument("--device", default="auto", help="auto (GPU when present), cuda or cpu")
    p.add_argument(
        "--quantization",
        choices=("auto", "none", "8bit", "4bit"),
        default=None,
        help="base weights: auto (default: the pre-flight picks what fits), none, 8bit, 4bit "
        "(QLoRA; CUDA + bitsandbytes)",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in the backward pass (less memory, slower)",
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=None,
        metavar="N",
        help="train data-parallel in N processes (one per GPU; gloo processes on a CPU)",
    )
    p.add_argument("--resume", type=int, metavar="RUN", help="continue a cancelled or crashed run")
    add_passphrase_args(p)
    p.set_defaults(func=cmd_train_reward)


def config_from_args(proj, args: argparse.Namespace):
    """The RewardConfig for these flags: the preset (shaped by --device and --lora), then the other flags as
    overrides, through the same operation as the app's Train page (core.ops.training.reward_config)."""
    from core.ops.training import reward_config

    overrides = {}
    if args.freeze_layers:
        overrides.update(finetune="freeze", freeze_layers=args.freeze_layers)
    for name in ("quantization", "gradient_checkpointing", "gpus"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    lora = args.lora
    if overrides.get("quantization") in ("4bit", "8bit") and lora is None:
        lora = True  # a quantized base trains through LoRA adapters
    config, _preset_config = reward_config(
        proj, os.path.abspath(args.base), args.preset, overrides, device=args.device, lora=lora
    )
    return config


def cmd_train_reward(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.training.reward import train_reward_model

    if args.resume is None and not args.base:
        raise UserError("--base PATH is required (the local model folder to start from), or --resume RUN")

    token = CancelToken()
    with open_project_from_args(args) as proj:
        if args.resume is not None:
            job = train_reward_model(proj, {}, cancel=token, resume_run=args.resume)
        else:
            job = train_reward_model(proj, config_from_args(proj, args), cancel=token)
        try:
            # Ctrl-C sets the token: the job checkpoints at the next step boundary and raises Cancelled.
            result = run_with_progress(
                job, token, desc="reward model", metrics=("loss/train", "accuracy/train", "accuracy/val", "lr")
            )
        except Cancelled:
            runs = proj.runs(kind="reward")
            run_id = args.resume if args.resume is not None else (runs[-1].id if runs else None)
            print(f"cancelled: run {run_id} saved a checkpoint; continue it with --resume {run_id}")
            return 130
    print(f"run {result.run_id}: {result.steps} steps" + (" (stopped early)" if result.stopped_early else ""))
    val = result.metrics.get("accuracy/val")
    if val is not None:
        print(f"validation pairwise accuracy (held-out prompts): {val:.3f}")
    if "accuracy/heldout" in result.metrics:
        print(f"held-out split pairwise accuracy: {result.metrics['accuracy/heldout']:.3f}")
    return 0
