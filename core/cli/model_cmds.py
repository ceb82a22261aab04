"""`rlhf-studio generate PROJECT --model PATH -k 4` and `rlhf-studio demo DIR`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from core.errors import UserError
from core.jobs import CancelToken, Cancelled
from core.models import DEFAULT_K

PASSPHRASE_ENV = "RLHF_STUDIO_PASSPHRASE"


def register(subparsers) -> None:
    g = subparsers.add_parser(
        "generate",
        help="generate K candidate responses per prompt with a local model",
        description="Sample K candidates per prompt from a local Hugging Face model folder and store them "
        "(encrypted) in the project. Prompts that already have K candidates from this model are "
        "skipped, so an interrupted run (Ctrl-C) continues where it stopped.",
    )
    g.add_argument("project", help="the project folder (NAME.rlhfproj)")
    g.add_argument("--model", required=True, help="local model folder (config.json, weights, tokenizer)")
    g.add_argument("-k", type=int, default=DEFAULT_K, help=f"candidates per prompt (default {DEFAULT_K})")
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy (default 0.8)")
    g.add_argument(
        "--temperatures",
        type=_floats,
        default=None,
        metavar="T1,T2,...",
        help="a mix for diversity: candidate i uses the i-th temperature (overrides --temperature)",
    )
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold (default 0.95)")
    g.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (default 0 = off)")
    g.add_argument("--max-new-tokens", type=int, default=128, help="longest response in tokens (default 128)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    g.add_argument("--split", choices=("train", "heldout"), default=None, help="only this split's prompts")
    g.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default 32)")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    _passphrase_args(g)
    g.set_defaults(func=cmd_generate)

    d = subparsers.add_parser(
        "demo",
        help="create an encrypted demo project from the embedded model",
        description="Create a demo project (customer-support requests, 6 candidates each from the embedded "
        "demo model, a held-out split, guidelines) in seconds, offline.",
    )
    d.add_argument("dir", help="where to create it (a .rlhfproj suffix is added when missing)")
    d.add_argument("--prompts", type=int, default=240, help="number of prompts (default 240)")
    d.add_argument("-k", type=int, default=DEFAULT_K, help=f"candidates per prompt (default {DEFAULT_K})")
    d.add_argument("--seed", type=int, default=0, help="seed for prompts, split and sampling (default 0)")
    _passphrase_args(d)
    d.set_defaults(func=cmd_demo)


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one temperature")
    return values


def _passphrase_args(parser) -> None:
    try:
        from core.cli.project_cmds import add_passphrase_args
    except ImportError:
        add_passphrase_args = None
    if add_passphrase_args is not None:
        add_passphrase_args(parser)
        return
    parser.add_argument(
        "--passphrase-file", metavar="FILE", help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV}, else asked)"
    )


def _read_passphrase(args, confirm: bool = False) -> str:
    """The lead's `project_cmds.read_passphrase` when present; this small one otherwise."""
    try:
        from core.cli.project_cmds import read_passphrase
    except ImportError:
        read_passphrase = None
    if read_passphrase is not None:
        return read_passphrase(args, confirm=confirm)
    path = getattr(args, "passphrase_file", None)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().rstrip("\r\n")
        except OSError as exc:
            raise UserError(f"Cannot read the passphrase file {path}: {exc.strerror}.") from exc
        if not value:
            raise UserError(f"The passphrase file {path} is empty.")
        return value
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise UserError(f"No passphrase: use --passphrase-file or set {PASSPHRASE_ENV}.")
    value = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != value:
        raise UserError("The two passphrases differ.")
    if not value:
        raise UserError("The passphrase must not be empty.")
    return value


def _open_project(args):
    try:
        from core.cli.project_cmds import open_project_from_args
    except ImportError:
        open_project_from_args = None
    if open_project_from_args is not None:
        return open_project_from_args(args)
    from core.project import Project

    return Project.open(args.project, _read_passphrase(args))


def cmd_generate(args) -> int:
    from core.cli.progress import run_with_progress
    from core.models.candidates import generate_candidates
    from core.models.generation import SamplingSettings
    from core.models.loading import check_model_folder

    check_model_folder(args.model)
    if args.k < 1:
        raise UserError("-k must be at least 1.")
    settings = SamplingSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        temperatures=args.temperatures,
    )
    token = CancelToken()
    with _open_project(args) as proj:
        job = generate_candidates(
            proj,
            args.model,
            k=args.k,
            settings=settings,
            split=args.split,
            batch_size=args.batch_size,
            device=args.device,
            cancel=token,
        )
        try:
            report = run_with_progress(job, token, desc="generate", metrics=["gen/tokens_per_s"])
        except Cancelled:
            print("cancelled: finished batches are saved; run the same command again to continue.", file=sys.stderr)
            return 130
    print(
        f"{report.added} candidates added for {report.prompts - report.skipped} prompts "
        f"({report.skipped} already had {args.k}); {report.duplicates} duplicate samples dropped; "
        f"{report.tokens_per_second:.0f} tokens/s ({report.backend or 'nothing generated'})"
    )
    if report.short:
        print(
            f"{len(report.short)} prompts still have fewer than {args.k} distinct candidates "
            "(the model kept repeating itself); try a higher --temperature."
        )
    return 0


def cmd_demo(args) -> int:
    from core.cli.progress import run_with_progress
    from core.demo.project import create_demo_project

    passphrase = _read_passphrase(args, confirm=True)
    token = CancelToken()
    job = create_demo_project(args.dir, passphrase, n_prompts=args.prompts, k=args.k, seed=args.seed, cancel=token)
    try:
        report = run_with_progress(job, token, desc="demo", metrics=["gen/tokens_per_s"])
    except Cancelled:
        print("cancelled: the project holds what was finished; `rlhf-studio generate` completes it.", file=sys.stderr)
        return 130
    print(
        f"created {report.path}: {report.prompts} prompts ({report.heldout} held out), "
        f"{report.responses} candidates in {report.seconds:.1f}s"
    )
    print(
        f"unique candidates: {report.unique_share:.1%}   distinct-4: {report.distinct_4:.3f}   "
        f"distinct-4 within a prompt: {report.distinct_4_within_prompt:.3f}"
    )
    return 0
