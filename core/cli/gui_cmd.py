"""`rlhf-studio gui [--demo] [PROJECT]`: the desktop app (also what `rlhf-studio` alone opens).

core never names the GUI: the front end that starts the command line (desktop/app.py, the `rlhf-studio`
console script) passes its entry point as a "module:function" string, imported here only when the app is
wanted (PySide6 loads then, never for the other commands).
"""

from __future__ import annotations

import importlib

from core.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("gui", help="open the desktop app (the default with no command)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="open the demo project (created on first use at "
        "~/.local/share/rlhf-studio/demo.rlhfproj; passphrase: demo)",
    )
    p.add_argument("project", nargs="?", help="a .rlhfproj folder to unlock at start")
    p.set_defaults(func=run)


def load_entry(spec: str):
    """The function a "module:function" string names."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run(args) -> int:
    entry = getattr(args, "gui_entry", None)
    if not entry:
        raise UserError("no desktop app here: open it with `rlhf-studio` (or `python -m desktop.app`)")
    return load_entry(entry)(project=args.project, demo=args.demo)
