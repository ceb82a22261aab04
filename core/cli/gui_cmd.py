"""`rlhf-studio gui [--demo] [PROJECT]`: the desktop app (also what `rlhf-studio` alone opens)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("gui", help="open the desktop app (the default with no command)")
    p.add_argument("--demo", action="store_true",
                   help="open the demo project (created on first use at "
                        "~/.local/share/rlhf-studio/demo.rlhfproj; passphrase: demo)")
    p.add_argument("project", nargs="?", help="a .rlhfproj folder to unlock at start")
    p.set_defaults(func=run)


def run(args) -> int:
    from desktop.app import run_gui  # PySide6 is imported only when the GUI is wanted

    return run_gui(project=args.project, demo=args.demo)
