"""The centre of the Annotate page: the prompt over the candidate cards (or the diff of two, or a message),
and the line for errors under them."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.pages.annotate.common import style_label
from desktop.widgets.candidate_card import CandidateCard
from desktop.widgets.diff_view import DiffView
from desktop.widgets.markdown_view import MarkdownView


class CandidateBoard(QWidget):
    """Shows; decides nothing. The cards' clicks, ratings and overruled quality tags come out as signals."""

    card_clicked = Signal(int)  # candidate index
    card_rated = Signal(int, int)  # candidate index, rating
    quality_overruled = Signal(int, str)  # candidate index, tag

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.cards: list[CandidateCard] = []
        self._grid_shape: tuple = ()
        self.prompt_view = MarkdownView()
        prompt_box = QGroupBox("Prompt")
        QVBoxLayout(prompt_box).addWidget(self.prompt_view)
        prompt_box.layout().setContentsMargins(6, 4, 6, 6)
        self.cards_widget = QWidget()
        self.cards_layout = QGridLayout(self.cards_widget)
        self.cards_layout.setContentsMargins(0, 0, 0, 0)
        self.cards_layout.setSpacing(8)
        self.diff_view = DiffView()
        self.empty_label = QLabel()
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.center_stack = QStackedWidget()
        for w in (self.cards_widget, self.diff_view, self.empty_label):
            self.center_stack.addWidget(w)
        self.center_split = QSplitter(Qt.Orientation.Vertical)
        self.center_split.addWidget(prompt_box)
        self.center_split.addWidget(self.center_stack)
        self.center_split.setStretchFactor(0, 1)
        self.center_split.setStretchFactor(1, 3)
        self.center_split.setSizes([170, 520])
        self.center_split.setChildrenCollapsible(False)
        self.message = QLabel()
        style_label(self.message, "#c0392b", bold=True)
        self.message.setFixedHeight(self.message.fontMetrics().height() + 6)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        cl = QVBoxLayout(self)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.center_split, 1)
        cl.addWidget(self.message)

    def ensure_cards(self, n: int) -> None:
        while len(self.cards) < n:
            card = CandidateCard()
            card.clicked.connect(self.card_clicked)
            card.rated.connect(self.card_rated)
            card.overruled.connect(self.quality_overruled)
            self.cards.append(card)

    def layout_cards(self, shown: list[int]) -> None:
        """Grid of the shown cards: two columns up to four, three beyond."""
        cols = 2 if len(shown) <= 4 else 3
        shape = (tuple(shown), cols)
        if shape == self._grid_shape:
            return
        self._grid_shape = shape
        for card in self.cards:
            self.cards_layout.removeWidget(card)
            card.hide()
        for pos, idx in enumerate(shown):
            self.cards_layout.addWidget(self.cards[idx], pos // cols, pos % cols)
            self.cards[idx].show()
        rows = (len(shown) + cols - 1) // cols
        for r in range(4):
            self.cards_layout.setRowStretch(r, 1 if r < rows else 0)

    def forget_layout(self) -> None:
        """The next `layout_cards` lays the grid out again (after a change of mode)."""
        self._grid_shape = ()

    def show_message(self, text: str) -> None:
        """A message in place of the cards."""
        self.empty_label.setText(text)
        self.center_stack.setCurrentWidget(self.empty_label)

    def showing_diff(self) -> bool:
        return self.center_stack.currentWidget() is self.diff_view

    def clear_texts(self) -> None:
        """The prompt and every card's text."""
        self.prompt_view.clear()
        for card in self.cards:
            card.clear()
