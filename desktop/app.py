"""Desktop entry point: `rlhf-studio` (no arguments), `rlhf-studio gui [--demo] [PROJECT]`, `make run`."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from core.offline import enforce_offline_env


def check_qt_binding() -> Optional[str]:
    """A warning when the installed PySide6 is known to crash this Python (else None)."""
    import PySide6

    if PySide6.__version__.startswith("6.12.") and sys.version_info < (3, 12):
        return (f"warning: PySide6 {PySide6.__version__} corrupts reference counts on Python "
                f"{sys.version_info.major}.{sys.version_info.minor} and crashes after a while; "
                "install PySide6-Essentials<6.12 (or use Python 3.12+).")
    return None


def make_app(argv: Optional[Sequence[str]] = None):
    from PySide6.QtWidgets import QApplication

    warning = check_qt_binding()
    if warning:
        print(warning, file=sys.stderr)

    from desktop.context import APP, ORG
    from desktop.theme import follow_system_theme

    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("RLHF Studio")
    follow_system_theme(app)
    return app


def run_gui(project: Optional[str] = None, demo: bool = False) -> int:
    """Show the main window; `demo` opens (creating if needed) the demo project, `project` asks to unlock it."""
    enforce_offline_env()
    app = make_app()
    from desktop.main_window import MainWindow

    window = MainWindow()
    window.show()
    if demo:
        window.open_demo()
    elif project:
        window.open_path(project)
    return app.exec()


def main() -> int:
    """PyInstaller / `python -m desktop.app` entry: the same command line as `rlhf-studio`."""
    from core.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
