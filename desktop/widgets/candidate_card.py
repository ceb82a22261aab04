"""One candidate on the Annotate page: its number (or A/B), where it stands (rank, side, rating),
rating buttons 1-7 and the text (Markdown, scrolls). The origin is never shown: judging is blind."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from core.annotation import RATING_MAX, RATING_MIN
from desktop.widgets.markdown_view import MarkdownView

# Badge colours (background, text); fixed so they read the same in light and dark themes.
TONES = {
    "rank": ("#2f6fce", "#ffffff"),
    "tie": ("#8a55c9", "#ffffff"),
    "good": ("#2e8b46", "#ffffff"),
    "bad": ("#b23b3b", "#ffffff"),
    "neutral": ("#5f6670", "#ffffff"),
}


class CandidateCard(QFrame):
    """Painted by hand (no style sheet): style sheets make every repaint of the page several times
    slower, and the page repaints all cards for each item."""

    clicked = Signal(int)  # display index
    rated = Signal(int, int)  # display index, rating
    overruled = Signal(int, str)  # display index, quality tag the expert says is not a problem

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.index = -1
        self._selected = False
        self._placed = False
        self._tone = ""
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.number = QLabel()
        font = self.number.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.number.setFont(font)
        self.number.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.number.setMinimumWidth(28)
        self.number.setAutoFillBackground(True)
        self.number.setBackgroundRole(QPalette.ColorRole.Button)
        self.caption = QLabel()
        self.caption.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.badge = QLabel()
        bold = self.badge.font()
        bold.setBold(True)
        self.badge.setFont(bold)
        self.badge.setAutoFillBackground(True)
        self.badge.setContentsMargins(8, 1, 8, 1)
        self.badge.hide()
        self.rating_box = RatingBar()
        self.rating_box.rated.connect(lambda v: self.rated.emit(self.index, v))
        self.rating_box.hide()
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.number)
        header.addWidget(self.caption)
        header.addStretch(1)
        header.addWidget(self.rating_box)
        header.addWidget(self.badge)
        # automatic quality findings (core.quality): a line above the text, one button to overrule them
        self._quality_tags: list[str] = []
        self.quality = QLabel()
        _bad = self.quality.palette()
        _bad.setColor(QPalette.ColorRole.WindowText, QColor("#b9770e"))
        self.quality.setPalette(_bad)
        self.quality.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.overrule_button = QToolButton()
        self.overrule_button.setText("Not a problem")
        self.overrule_button.setToolTip("The automatic check was wrong about this candidate: remove its tag")
        self.overrule_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.overrule_button.clicked.connect(
            lambda: [self.overruled.emit(self.index, t) for t in list(self._quality_tags)]
        )
        self.quality_row = QWidget()
        qrow = QHBoxLayout(self.quality_row)
        qrow.setContentsMargins(0, 0, 0, 0)
        qrow.addWidget(self.quality, 1)
        qrow.addWidget(self.overrule_button)
        self.quality_row.hide()
        self.body = MarkdownView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.quality_row)
        layout.addWidget(self.body, 1)

    def set_candidate(self, index: int, text: str, label: Optional[str] = None) -> None:
        self.index = index
        self.number.setText(label or str(index + 1))
        words = len(text.split())
        self.caption.setText(f"{words} word{'s' if words != 1 else ''}")
        self.body.show_text(text)

    def set_quality(self, flags) -> None:
        """core.quality findings for this candidate (empty: hide the line)."""
        tags = [f.tag for f in flags]
        if tags == self._quality_tags:
            return
        self._quality_tags = tags
        if not tags:
            self.quality_row.hide()
            self.quality.clear()
            return
        self.quality.setText("⚠ " + " · ".join(tags))
        self.quality.setToolTip("\n".join(f"{f.tag}: {f.detail}" for f in flags))
        self.quality_row.show()

    def set_badge(self, text: str = "", tone: str = "rank") -> None:
        if not text:
            self.badge.hide()
            return
        self.badge.setText(text)
        if tone != self._tone:
            self._tone = tone
            bg, fg = TONES.get(tone, TONES["neutral"])
            pal = self.badge.palette()
            pal.setColor(QPalette.ColorRole.Window, QColor(bg))
            pal.setColor(QPalette.ColorRole.WindowText, QColor(fg))
            self.badge.setPalette(pal)
        self.badge.show()

    def set_selected(self, on: bool) -> None:
        if on != self._selected:
            self._selected = on
            self.update()

    def set_placed(self, on: bool) -> None:
        if on != self._placed:
            self._placed = on
            self.update()

    @property
    def selected(self) -> bool:
        return self._selected

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        width = 2.5 if self._selected else 1.0
        colour = pal.color(QPalette.ColorRole.Highlight if self._selected else QPalette.ColorRole.Mid)
        p.setPen(QPen(colour, width))
        p.setBrush(pal.color(QPalette.ColorRole.AlternateBase if self._placed else QPalette.ColorRole.Base))
        half = width / 2
        p.drawRoundedRect(QRectF(self.rect()).adjusted(half, half, -half, -half), 6, 6)

    def set_rating_visible(self, on: bool) -> None:
        self.rating_box.setVisible(on)

    def set_rating(self, value: Optional[int]) -> None:
        self.rating_box.set_value(value)

    @property
    def rating(self) -> Optional[int]:
        return self.rating_box.value

    def clear(self) -> None:
        self.index = -1
        self.number.clear()
        self.caption.clear()
        self.body.clear()
        self.set_quality([])
        self.set_badge("")
        self.set_rating(None)
        self.set_selected(False)
        self.set_placed(False)

    def mousePressEvent(self, event) -> None:
        self.clicked.emit(self.index)
        super().mousePressEvent(event)


class RatingBar(QWidget):
    """Seven clickable boxes 1..7, painted in one go (seven tool buttons cost several ms per repaint)."""

    rated = Signal(int)
    BOX = 24

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.value: Optional[int] = None
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"Rate {RATING_MIN} (worst) to {RATING_MAX} (best)")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        n = RATING_MAX - RATING_MIN + 1
        return QSize(n * (self.BOX + 2), self.BOX)

    def set_value(self, value: Optional[int]) -> None:
        if value != self.value:
            self.value = value
            self.update()

    def value_at(self, x: float) -> Optional[int]:
        k = int(x // (self.BOX + 2))
        v = RATING_MIN + k
        return v if RATING_MIN <= v <= RATING_MAX else None

    def mousePressEvent(self, event) -> None:
        v = self.value_at(event.position().x())
        if v is not None:
            self.set_value(v)
            self.rated.emit(v)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        for k, v in enumerate(range(RATING_MIN, RATING_MAX + 1)):
            r = QRectF(k * (self.BOX + 2) + 0.5, 0.5, self.BOX - 1, self.BOX - 1)
            on = self.value == v
            p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight if on else QPalette.ColorRole.Mid), 1))
            p.setBrush(pal.color(QPalette.ColorRole.Highlight if on else QPalette.ColorRole.Button))
            p.drawRoundedRect(r, 4, 4)
            p.setPen(pal.color(QPalette.ColorRole.HighlightedText if on else QPalette.ColorRole.ButtonText))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, str(v))
