"""Desktop entry point: `rlhf-studio` (no arguments), `rlhf-studio gui [--demo] [PROJECT]`, `make run`."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from core.offline import enforce_offline_env


def check_qt_binding() -> Optional[str]:
    """A warning when the installed PySide6 is known to crash this Python (else None)."""
    import PySide6

    if PySide6.__version__.startswith("6.12.") and sys.version_info < (3, 12):
        return (
            f"warning: PySide6 {PySide6.__version__} corrupts reference counts on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} and crashes after a while; "
            "install PySide6-Essentials<6.12 (or use Python 3.12+)."
        )
    return None


# Every system library the Qt xcb platform plugin (and its libQt6XcbQpa) loads, by Debian/Ubuntu package.
XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
}


def missing_xcb_libraries(env=None) -> list[str]:
    """Sonames the xcb platform plugin needs and the system lacks; empty when not on a real X display
    (offscreen, Wayland or another platform chosen, no DISPLAY, not Linux) or when ldd is unavailable."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM", "xcb") not in ("", "xcb"):
        return []
    if not env.get("DISPLAY") or shutil.which("ldd") is None:
        return []
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    libs = [
        p
        for p in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*")))
        if p.exists()
    ]
    missing: list[str] = []
    for lib in libs[:2]:
        try:
            out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        for line in out.splitlines():
            if "not found" in line:
                name = line.split("=>")[0].strip()
                if name not in missing:
                    missing.append(name)
    return missing


def xcb_preflight_message(missing: Sequence[str]) -> str:
    packages = sorted({XCB_PACKAGES.get(name, name) for name in missing})
    return (
        "RLHF Studio cannot open a window: the Qt xcb platform plugin needs system libraries this "
        f"machine lacks ({', '.join(missing)}). Install them with:\n\n"
        f"    sudo apt-get install {' '.join(packages)}\n\n"
        "then run it again (or set QT_QPA_PLATFORM=offscreen to run without a window)."
    )


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
    missing = missing_xcb_libraries()
    if missing:  # a plain message with the one command to run, instead of Qt's abort
        print(xcb_preflight_message(missing), file=sys.stderr)
        return 1
    app = make_app()
    from desktop.main_window import MainWindow

    window = MainWindow()
    window.show()
    if demo:
        window.open_demo()
    elif project:
        window.open_path(project)
    from desktop import smoke

    smoke.install(app, window)  # a no-op unless the real-window smoke test asks for it
    return app.exec()


# What `rlhf-studio gui` (and `rlhf-studio` alone) opens; core's command line imports it by name.
GUI_ENTRY = "desktop.app:run_gui"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The `rlhf-studio` console script, PyInstaller's and `python -m desktop.app`'s entry: core's command
    line, with this app as its `gui` command."""
    from core.cli import main as cli_main

    return cli_main(list(sys.argv[1:] if argv is None else argv), gui_entry=GUI_ENTRY)


if __name__ == "__main__":
    sys.exit(main())
