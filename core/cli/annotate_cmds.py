"""Annotation commands: `queue` (the queue order), `review` (judgments the model doubts), `quality`.

    rlhf-studio queue PROJECT --order informative      # choose it, compute it now, show the next ids
    rlhf-studio review PROJECT [--source reward]
    rlhf-studio quality PROJECT

They print ids and numbers only, never prompt or reply text (shell scroll-back and logs are plaintext).
"""

from __future__ import annotations

import argparse

from core.cli.project_cmds import add_passphrase_args, open_project_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "queue",
        help="show or set the annotation queue's order (project order / most informative first)",
        description="Show or set which prompt the Annotate page shows next. 'informative' ranks unjudged "
        "prompts by how much a judgment would teach (a model of your judgments is unsure of their "
        "candidates' order), with diversity; it is computed now with a progress bar, and again "
        "in the background by the app as you judge.",
    )
    p.add_argument("project")
    p.add_argument("--order", choices=("project", "informative"), help="set the order (saved in the project)")
    p.add_argument("--split", choices=("train", "heldout"), help="the queue's split (default: all prompts)")
    p.add_argument("--show", type=int, default=10, metavar="N", help="print the next N prompt ids (default 10)")
    p.add_argument(
        "--no-reward-model", action="store_true", help="leave the latest reward-model run out of the ensemble"
    )
    add_passphrase_args(p)
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser(
        "review",
        help="list the judgments a model disagrees with most (slips to look at again)",
        description="Judgments ordered by how strongly a model disagrees with them. --source queue (default): "
        "each judgment is scored by a quick model fit without it; --source reward: the latest "
        "reward-model run (it trained on the train split, so it is lenient there).",
    )
    p.add_argument("project")
    p.add_argument("--source", choices=("queue", "reward"), default="queue")
    p.add_argument("--limit", type=int, default=20)
    add_passphrase_args(p)
    p.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "quality",
        help="count duplicate and degenerate candidates (empty, looping, cut off, garbled)",
        description="Run the automatic quality checks over every candidate and print the counts "
        "(overruled findings excluded).",
    )
    p.add_argument("project")
    add_passphrase_args(p)
    p.set_defaults(func=cmd_quality)


def cmd_queue(args: argparse.Namespace) -> int:
    from core.active import refresh_queue
    from core.annotation import ORDER_SETTING
    from core.cli.progress import run_with_progress
    from core.jobs import CancelToken

    with open_project_from_args(args) as proj:
        if args.order:
            proj.set_setting(ORDER_SETTING, args.order)
        order = proj.get_setting(ORDER_SETTING, "project")
        print(f"queue order: {order}")
        if order != "informative":
            return 0
        token = CancelToken()
        result = run_with_progress(
            refresh_queue(proj, split=args.split, use_reward_run=not args.no_reward_model, cancel=token),
            token,
            desc="ordering the queue",
        )
        print(result.text())
        if result.ready and args.show > 0:
            print("next prompts (id: bits a judgment would teach):")
            for pid, value in list(zip(result.prompt_ids, result.scores))[: args.show]:
                print(f"  {pid}: {value:.3f}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from core.active import review_list
    from core.cli.progress import run_with_progress
    from core.jobs import CancelToken

    with open_project_from_args(args) as proj:
        token = CancelToken()
        views = run_with_progress(
            review_list(proj, source=args.source, limit=args.limit, cancel=token), token, desc="review"
        )
    if not views:
        print("nothing to review yet (a few judged prompts are needed first)")
        return 0
    print(f"{'judgment':>8s} {'prompt':>7s} {'kind':8s} {'doubt':>6s} {'flipped':>8s}  model's best / yours")
    for v in views:
        mark = "" if not v.top_differs else f"  response {v.model_top} / {', '.join(map(str, v.expert_top))}"
        print(
            f"{v.judgment_id:8d} {v.prompt_id:7d} {v.kind:8s} {v.disagreement:6.0%} {v.flipped:4d}/{v.pairs:<3d}{mark}"
        )
    print(f"(model: {views[0].source})")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from core.cli.progress import run_with_progress
    from core.jobs import CancelToken
    from core.quality import quality_scan

    with open_project_from_args(args) as proj:
        token = CancelToken()
        report = run_with_progress(quality_scan(proj, cancel=token), token, desc="checking candidates")
    print(report.text())
    print(f"prompts with a finding: {report.prompts_affected:,}")
    return 0
