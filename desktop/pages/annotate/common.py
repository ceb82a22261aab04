"""What the Annotate page's parts share: mode names, queue splits, key texts and two widget helpers."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QWidget

MODE_LABELS = {"ranking": "Rank", "pairwise": "Pairwise", "rating": "Rate"}
SPLITS = [("All prompts", None), ("Train split", "train"), ("Held-out split", "heldout")]
TIE_TEXTS = ("=", "t", "T")
MAX_FLAG_KEYS = 9  # F1..F9


def style_label(label: QLabel, colour: Optional[str] = None, bold: bool = False) -> None:
    """Colour and weight through palette and font, not style sheets (those slow every repaint)."""
    if colour is None:
        label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    else:
        pal = label.palette()
        pal.setColor(QPalette.ColorRole.WindowText, QColor(colour))
        label.setPalette(pal)
    if bold:
        font = label.font()
        font.setBold(True)
        label.setFont(font)


def no_focus(*widgets: QWidget) -> None:
    """Keys go to the page: cards, lists and buttons never take focus."""
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
