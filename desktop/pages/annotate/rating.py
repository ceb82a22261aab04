"""The Annotate page's rating panel: the scale, how many cards are rated and which one is selected, and the
submit button (the ratings themselves are on the cards)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from core.annotation import RATING_MAX, RATING_MIN
from desktop.pages.annotate.common import no_focus, style_label


class RatingPanel(QWidget):
    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        tl = QVBoxLayout(self)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(QLabel(f"<b>Rate each answer</b> {RATING_MIN} (worst) – {RATING_MAX} (best)"))
        hint = QLabel("Tab or arrows select a card; press 1–7 to rate it. Or click the buttons on a card.")
        hint.setWordWrap(True)
        style_label(hint)
        tl.addWidget(hint)
        self.rating_summary = QLabel()
        self.rating_summary.setWordWrap(True)
        tl.addWidget(self.rating_summary)
        tl.addStretch(1)
        self.submit_rate = QPushButton("Submit ratings (Enter)")
        no_focus(self.submit_rate)
        tl.addWidget(self.submit_rate)

    def show_summary(self, rated: int, k: int, selected: int) -> None:
        self.rating_summary.setText(f"Rated {rated} of {k}. Selected: card {selected + 1}.")
