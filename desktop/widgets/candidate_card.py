"""One candidate on the Annotate page: its number (or A/B), where it stands (rank, side, rating),
rating buttons 1-7 and the text (Markdown, scrolls). The origin is never shown: judging is blind."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from core.annotation import RATING_MAX, RATING_MIN
from desktop.widgets.markdown_view import MarkdownView

CARD_STYLE = """
CandidateCard { border: 1px solid palette(mid); border-radius: 6px; background: palette(base); }
CandidateCard[selected="true"] { border: 2px solid palette(highlight); }
CandidateCard[placed="true"] { background: palette(alternate-base); }
QLabel#cardNumber { font-size: 17px; font-weight: bold; min-width: 26px; padding: 0 4px;
                    border-radius: 4px; background: palette(button); qproperty-alignment: AlignCenter; }
QLabel#cardBadge { font-weight: bold; padding: 1px 8px; border-radius: 4px; }
QLabel#cardBadge[tone="rank"] { background: #2f6fce; color: white; }
QLabel#cardBadge[tone="tie"] { background: #8a55c9; color: white; }
QLabel#cardBadge[tone="good"] { background: #2e8b46; color: white; }
QLabel#cardBadge[tone="bad"] { background: #b23b3b; color: white; }
QLabel#cardBadge[tone="neutral"] { background: palette(button); }
QToolButton#rateButton { min-width: 22px; }
"""


class CandidateCard(QFrame):
    clicked = Signal(int)  # display index
    rated = Signal(int, int)  # display index, rating

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.index = -1
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.number = QLabel()
        self.number.setObjectName("cardNumber")
        self.caption = QLabel()
        self.caption.setStyleSheet("color: gray")
        self.badge = QLabel()
        self.badge.setObjectName("cardBadge")
        self.badge.hide()
        self.rating_box = QWidget()
        rating_layout = QHBoxLayout(self.rating_box)
        rating_layout.setContentsMargins(0, 0, 0, 0)
        rating_layout.setSpacing(2)
        self.rating_group = QButtonGroup(self)
        self.rating_group.setExclusive(True)
        for v in range(RATING_MIN, RATING_MAX + 1):
            b = QToolButton()
            b.setObjectName("rateButton")
            b.setText(str(v))
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setToolTip(f"Rate {v} of {RATING_MAX}")
            self.rating_group.addButton(b, v)
            rating_layout.addWidget(b)
        self.rating_group.idClicked.connect(lambda v: self.rated.emit(self.index, v))
        self.rating_box.hide()
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.number)
        header.addWidget(self.caption)
        header.addStretch(1)
        header.addWidget(self.rating_box)
        header.addWidget(self.badge)
        self.body = MarkdownView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.body, 1)
        self.setStyleSheet(CARD_STYLE)

    def set_candidate(self, index: int, text: str, label: Optional[str] = None) -> None:
        self.index = index
        self.number.setText(label or str(index + 1))
        words = len(text.split())
        self.caption.setText(f"{words} word{'s' if words != 1 else ''}")
        self.body.show_text(text)

    def set_badge(self, text: str = "", tone: str = "rank") -> None:
        if not text:
            self.badge.hide()
            return
        self.badge.setText(text)
        if self.badge.property("tone") != tone:
            self.badge.setProperty("tone", tone)
            self.badge.style().unpolish(self.badge)
            self.badge.style().polish(self.badge)
        self.badge.show()

    def _set_flag(self, name: str, on: bool) -> None:
        if bool(self.property(name)) != on:
            self.setProperty(name, on)
            self.style().unpolish(self)
            self.style().polish(self)

    def set_selected(self, on: bool) -> None:
        self._set_flag("selected", on)

    def set_placed(self, on: bool) -> None:
        self._set_flag("placed", on)

    def set_rating_visible(self, on: bool) -> None:
        self.rating_box.setVisible(on)

    def set_rating(self, value: Optional[int]) -> None:
        if value is None:
            checked = self.rating_group.checkedButton()
            if checked is not None:
                self.rating_group.setExclusive(False)
                checked.setChecked(False)
                self.rating_group.setExclusive(True)
            return
        self.rating_group.button(int(value)).setChecked(True)

    def clear(self) -> None:
        self.index = -1
        self.number.clear()
        self.caption.clear()
        self.body.clear()
        self.set_badge("")
        self.set_rating(None)
        self.set_selected(False)
        self.set_placed(False)

    def mousePressEvent(self, event) -> None:
        self.clicked.emit(self.index)
        super().mousePressEvent(event)
