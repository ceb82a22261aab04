"""`rlhf-studio` command line: the same core operations the GUI uses.

Each domain module in COMMAND_MODULES defines `register(subparsers)`, adding its subcommands with
`set_defaults(func=...)`; a command function takes the parsed args and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

from core.offline import enforce_offline_env

COMMAND_MODULES = (
    "core.cli.project_cmds",
    "core.cli.annotate_cmds",
    "core.cli.model_cmds",
    "core.cli.reward_cmds",
    "core.cli.curve_cmds",
    "core.cli.policy_cmds",
    "core.cli.eval_cmds",
    "core.cli.gui_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-studio",
        description="Offline RLHF for domain experts. With no command, opens the desktop app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a domain not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None, *, gui_entry: Optional[str] = None) -> int:
    """Run one command. `gui_entry` ("module:function") names the desktop app that `gui` (and no command)
    opens; the front end that calls this passes it, so core never imports the GUI (core/cli/gui_cmd.py)."""
    enforce_offline_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui", *(argv or [])])
    args.gui_entry = gui_entry
    from core.errors import UserError

    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
