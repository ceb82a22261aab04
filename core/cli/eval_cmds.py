"""`rlhf-studio evaluate` and `rlhf-studio report`.

    rlhf-studio evaluate PROJECT RUN [--max-new-tokens N] [--temperature T] [--max-prompts N] [--seed S]
    rlhf-studio report PROJECT RUN [--out DIR] [--reward RUN]

`evaluate` prepares the blind set for a policy run (base and tuned responses on the held-out prompts);
the expert then judges it in the app (Evaluate → Judge blind pairs). `report` writes the JSON summary and
the PNG and PDF report of an eval run (a policy run means its newest evaluation; a reward run gives the
reward-model and expert sections alone).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.project_cmds import add_passphrase_args, open_project_from_args
from core.jobs import CancelToken, Cancelled


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="prepare a blind A/B set: tuned policy vs its base on the held-out prompts",
        description="Generate one response per held-out prompt from the base model and from the tuned model "
        "of policy run RUN, and queue them as blind pairs (random order, sides balanced, origin "
        "hidden) for the expert to judge in the app.",
    )
    p.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    p.add_argument("run", type=int, help="the policy run to evaluate")
    p.add_argument("--max-new-tokens", type=int, default=0, help="default: the policy run's own")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling when temperature > 0")
    p.add_argument("--max-prompts", type=int, default=0, help="use at most N held-out prompts (0 = all)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, help="seed for the order and the sides (default: random)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cuda, mps or cpu")
    add_passphrase_args(p)
    p.set_defaults(func=cmd_evaluate)

    r = subparsers.add_parser(
        "report",
        help="write an evaluation report (JSON summary, PNG, PDF)",
        description="Write the results of an eval run (or a policy run's newest evaluation, or a reward run "
        "alone) as RUN's .json, .png and .pdf in DIR. The files hold numbers and ids only, "
        "plus the project's flag names.",
    )
    r.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    r.add_argument("run", type=int, help="an eval, policy or reward run")
    r.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder (default: here)")
    r.add_argument(
        "--reward", type=int, metavar="RUN", help="reward-model run (default: the policy's, else the newest)"
    )
    r.add_argument("--device", default=None, help="device for the reward model (default: its own setting)")
    add_passphrase_args(r)
    r.set_defaults(func=cmd_report)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.evaluation.blind import EvalSettings, prepare_blind_eval

    settings = EvalSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        max_prompts=args.max_prompts,
        batch_size=args.batch_size,
        device=args.device,
    )
    token = CancelToken()
    with open_project_from_args(args) as proj:
        try:
            result = run_with_progress(
                prepare_blind_eval(proj, args.run, cancel=token, seed=args.seed, settings=settings),
                token,
                desc="evaluate",
            )
        except Cancelled:
            print("cancelled: nothing was stored")
            return 1
    from core.evaluation.change import barely_changed_message

    extra = f" ({result.identical} identical, counted as ties)" if result.identical else ""
    print(
        f"eval run {result.eval_run}: {result.items} blind pairs ready{extra}. "
        f"Judge them in the app (Evaluate → Judge blind pairs), then run `report`."
    )
    note = barely_changed_message(
        {
            "items": result.items + result.identical,
            "outcomes": {"identical": result.identical},
            "decoding": {"temperature": args.temperature},
        }
    )
    if note:
        print(note)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.evaluation.report import export_report

    token = CancelToken()
    with open_project_from_args(args) as proj:
        try:
            paths = run_with_progress(
                export_report(proj, args.run, args.out, reward_run=args.reward, cancel=token, device=args.device),
                token,
                desc="report",
            )
        except Cancelled:
            print("cancelled")
            return 1
    import json

    from core.evaluation.report import notices

    for kind in ("json", "png", "pdf"):
        print(paths[kind])
    for note in notices(json.loads(Path(paths["json"]).read_text("utf-8"))):
        print(note)
    return 0
