"""`rlhf-studio learning-curve PROJECT --base PATH [--preset quick]`: held-out accuracy of the reward model
against the number of ranked prompts (re-fits on 25/50/75/100% of them), and how many more would help."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.cli.project_cmds import add_passphrase_args, open_project_from_args
from core.jobs import CancelToken, Cancelled


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "learning-curve",
        help="reward-model accuracy against the number of ranked prompts, and how many more rankings would help",
        description="Re-fit the reward model on 25, 50, 75 and 100%% of the ranked prompts (small, fast fits with "
        "a preset's settings) and print the held-out pairwise accuracy of each, with rough advice on "
        "how many more ranked prompts would help. Nothing but the figures is stored.",
    )
    p.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    p.add_argument("--base", required=True, help="the reward model's base model folder")
    p.add_argument(
        "--preset",
        choices=("quick", "balanced", "thorough"),
        default="quick",
        help="settings of each fit (default: quick)",
    )
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="cap the steps of each fit")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cuda or cpu")
    p.add_argument("--seed", type=int, default=0)
    add_passphrase_args(p)
    p.set_defaults(func=cmd_learning_curve)


def cmd_learning_curve(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.ops.training import learning_curve_job

    overrides = {"max_steps": args.max_steps} if args.max_steps else {}
    token = CancelToken()
    with open_project_from_args(args) as proj:
        try:
            curve = run_with_progress(
                learning_curve_job(
                    proj,
                    os.path.abspath(args.base),
                    token,
                    preset=args.preset,
                    seed=args.seed,
                    device=args.device,
                    **overrides,
                ),
                token,
                desc="learning curve",
                metrics=("curve/prompts", "curve/accuracy"),
            )
        except Cancelled:
            print("cancelled: nothing was stored")
            return 1
    where = "held-out prompts" if curve.eval_source == "heldout" else "validation prompts set aside"
    print(f"held-out pairwise accuracy ({curve.eval_prompts} {where}, {curve.points[-1].eval_pairs} pairs):")
    for p in curve.points:
        print(f"  {p.prompts:>6} ranked prompts ({p.pairs} pairs): {100 * p.accuracy:5.1f}%")
    print(curve.advice)
    return 0
