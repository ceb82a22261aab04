"""Light and dark follow the system: the Fusion style with a palette matching Qt's colour scheme.

Qt 6.5+ reports the system scheme in `QStyleHints.colorScheme()` and signals changes; platforms that
give Fusion a dark palette themselves still get ours, so the app looks the same everywhere.
RLHF_STUDIO_THEME=light|dark overrides (screenshots, tests).
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEME_ENV = "RLHF_STUDIO_THEME"


def dark_palette() -> QPalette:
    p = QPalette()
    c = {
        QPalette.ColorRole.Window: "#2b2d30",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f2023",
        QPalette.ColorRole.AlternateBase: "#2a2b2f",
        QPalette.ColorRole.ToolTipBase: "#3a3c40",
        QPalette.ColorRole.ToolTipText: "#f0f0f0",
        QPalette.ColorRole.PlaceholderText: "#8a8d93",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#35373b",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Light: "#4a4c50",
        QPalette.ColorRole.Midlight: "#3e4044",
        QPalette.ColorRole.Mid: "#55585e",
        QPalette.ColorRole.Dark: "#1a1b1d",
        QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.Highlight: "#3d7dd8",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6aa8ff",
        QPalette.ColorRole.LinkVisited: "#b28cff",
    }
    for role, colour in c.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7d8086"))
    return p


def current_scheme(app: QApplication) -> str:
    forced = os.environ.get(THEME_ENV, "").lower()
    if forced in ("light", "dark"):
        return forced
    return "dark" if app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    scheme = current_scheme(app)
    app.setPalette(dark_palette() if scheme == "dark" else app.style().standardPalette())
    app.setProperty("rlhf_theme", scheme)


def follow_system_theme(app: QApplication) -> None:
    apply_theme(app)
    app.styleHints().colorSchemeChanged.connect(lambda *_: apply_theme(app))


def is_dark(app: QApplication | None = None) -> bool:
    app = app or QApplication.instance()
    return app is not None and app.property("rlhf_theme") == "dark"
