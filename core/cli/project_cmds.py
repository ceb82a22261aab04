"""Project commands: init, import, export, info, passwd, backup, audit.

Passphrases come from `--passphrase-file`, the RLHF_STUDIO_PASSPHRASE environment variable, or an
interactive prompt, in that order. They are never accepted as a plain argument (shell history).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from core.errors import UserError

PASSPHRASE_ENV = "RLHF_STUDIO_PASSPHRASE"


def add_passphrase_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV}, else a prompt)",
    )


def read_passphrase(args, confirm: bool = False, prompt: str = "Passphrase: ") -> str:
    path = getattr(args, "passphrase_file", None)
    if path:
        try:
            return Path(path).read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UserError(f"{path}: cannot read the passphrase file ({exc.strerror}).") from None
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise UserError(f"No passphrase: use --passphrase-file or set {PASSPHRASE_ENV}.")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise UserError("The two passphrases differ.")
    return first


def open_project_from_args(args):
    from core.project import Project

    return Project.open(args.project, read_passphrase(args))


def _project_parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("project", type=Path, help="the project folder (NAME.rlhfproj)")
    add_passphrase_args(p)
    return p


def register(sub) -> None:
    p = _project_parser(sub, "init", "create a new encrypted project")
    p.set_defaults(func=cmd_init)

    p = _project_parser(sub, "import", "import prompts, responses and judgments from a file")
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=("jsonl", "json", "csv"), help="default: detected")
    p.add_argument("--split", choices=("train", "heldout"), help="split for records that name none")
    p.set_defaults(func=cmd_import)

    p = _project_parser(sub, "export", "export data in plaintext (TRL pairs, rankings, prompts)")
    p.add_argument("file", type=Path)
    p.add_argument("--what", choices=("pairs", "rankings", "prompts"), default="pairs")
    p.add_argument("--format", choices=("jsonl", "json", "csv"), help="default: from the file name")
    p.add_argument("--plaintext", action="store_true", help="confirm: the export is not encrypted")
    p.set_defaults(func=cmd_export)

    p = _project_parser(sub, "info", "print counts: prompts, responses, ranked prompts, pairs, runs")
    p.set_defaults(func=cmd_info)

    p = _project_parser(sub, "passwd", "change the passphrase (the data key is rewrapped atomically)")
    p.add_argument(
        "--new-passphrase-file",
        type=Path,
        metavar="FILE",
        help="read the new passphrase from FILE (else $RLHF_STUDIO_NEW_PASSPHRASE, else a prompt)",
    )
    p.set_defaults(func=cmd_passwd)

    p = _project_parser(sub, "backup", "write a consistent encrypted copy of the project")
    p.add_argument("dest", type=Path)
    p.set_defaults(func=cmd_backup)

    p = _project_parser(sub, "audit", "show the audit log and verify its chain")
    p.set_defaults(func=cmd_audit)


def cmd_init(args) -> int:
    from core.project import Project

    project = Project.create(args.project, read_passphrase(args, confirm=True))
    print(f"created {project.path}")
    project.close()
    return 0


def cmd_import(args) -> int:
    from core.cli.progress import run_with_progress
    from core.data import import_file
    from core.errors import ImportFailed
    from core.jobs import CancelToken

    with open_project_from_args(args) as project:
        token = CancelToken()
        try:
            report = run_with_progress(
                import_file(project, args.file, fmt=args.format, split=args.split, cancel=token), token, desc="import"
            )
        except ImportFailed as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(
            f"imported {report.records} records ({report.fmt}, {report.shape}): "
            f"{report.prompts_added} new prompts ({report.prompts_existing} already present), "
            f"{report.responses_added} new responses, {report.judgments_added} judgments"
        )
    return 0


def cmd_export(args) -> int:
    from core.cli.progress import run_with_progress
    from core.data import export_data
    from core.jobs import CancelToken

    if not args.plaintext:
        raise UserError("An export is written unencrypted; add --plaintext to confirm.")
    fmt = args.format or {".csv": "csv", ".json": "json"}.get(args.file.suffix.lower(), "jsonl")
    with open_project_from_args(args) as project:
        token = CancelToken()
        n = run_with_progress(
            export_data(project, args.file, what=args.what, fmt=fmt, plaintext=True, cancel=token), token, desc="export"
        )
    print(f"wrote {n} rows to {args.file}")
    return 0


def cmd_info(args) -> int:
    with open_project_from_args(args) as project:
        counts = project.counts()
        problems = project.verify_audit()
    print(f"project          {args.project}")
    print(f"prompts          {counts['prompts']} ({counts['heldout_prompts']} held out)")
    print(f"responses        {counts['responses']}")
    print(f"ranked prompts   {counts['ranked_prompts']}")
    print(f"judged prompts   {counts['judged_prompts']}")
    print(f"pairs            {counts['pairs']}")
    print(f"runs             {counts['runs']}")
    print(f"audit chain      {'intact' if not problems else 'BROKEN: ' + '; '.join(problems)}")
    return 0


def cmd_passwd(args) -> int:
    with open_project_from_args(args) as project:
        old = read_passphrase(args, prompt="Current passphrase: ")
        if args.new_passphrase_file:
            new = Path(args.new_passphrase_file).read_text("utf-8").rstrip("\r\n")
        elif os.environ.get("RLHF_STUDIO_NEW_PASSPHRASE"):
            new = os.environ["RLHF_STUDIO_NEW_PASSPHRASE"]
        else:
            new = read_passphrase(argparse.Namespace(), confirm=True, prompt="New passphrase: ")
        project.change_passphrase(old, new)
    print("passphrase changed")
    return 0


def cmd_backup(args) -> int:
    with open_project_from_args(args) as project:
        dest = project.backup(args.dest)
    print(f"backup written to {dest}")
    return 0


def cmd_audit(args) -> int:
    import datetime as dt

    with open_project_from_args(args) as project:
        entries = project.audit_log()
        problems = project.verify_audit()
    for e in entries:
        when = dt.datetime.fromtimestamp(e["ts"]).strftime("%Y-%m-%d %H:%M:%S")
        details = " ".join(f"{k}={v}" for k, v in (e["details"] or {}).items())
        print(f"{e['id']:5d}  {when}  {e['event']:<20} {details}")
    if problems:
        for p in problems:
            print(f"TAMPERING DETECTED: {p}", file=sys.stderr)
        return 3
    print(f"audit chain intact ({len(entries)} entries)")
    return 0
