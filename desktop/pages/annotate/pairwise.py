"""The Annotate page's pairwise panel: which of the two answers shown (A and B) is better, and what the expert
chose for that pair before."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from core.annotation import Item
from desktop.pages.annotate.common import no_focus

CHOICES = (
    ("A", "a", "A is better"),
    ("B", "b", "B is better"),
    ("T", "tie", "Tie"),
    ("X", "both_bad", "Both bad"),
)  # (key, result, button text)


class PairwisePanel(QWidget):
    chosen = Signal(str)  # a, b, tie or both_bad: a button was clicked

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        pl = QVBoxLayout(self)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(QLabel("<b>Which answer is better?</b>"))
        self.pair_buttons: dict[str, QPushButton] = {}
        for key, result, text in CHOICES:
            b = QPushButton(f"{text}  ({key})")
            b.clicked.connect(lambda _=False, r=result: self.chosen.emit(r))
            self.pair_buttons[result] = b
            pl.addWidget(b)
        no_focus(*self.pair_buttons.values())
        self.pair_existing = QLabel()
        self.pair_existing.setWordWrap(True)
        pl.addWidget(self.pair_existing)
        pl.addStretch(1)

    def show_existing(self, item: Optional[Item]) -> None:
        """What the expert chose for this pair before (nothing for None)."""
        self.pair_existing.setText(existing_pair_text(item) if item is not None else "")


def existing_pair_text(item: Item) -> str:
    """What the expert chose for this pair before, in terms of the sides shown now."""
    j = item.existing
    if j is None or item.pair is None:
        return ""
    if j.choice in ("tie", "both_bad"):
        said = "tie" if j.choice == "tie" else "both bad"
    else:
        winner = j.a if j.choice == "a" else j.b
        said = "A is better" if item.candidates[item.pair[0]].id == winner else "B is better"
    return f"You judged this pair before: {said}. A new choice replaces it."
