"""A translucent overlay over its parent listing every shortcut; any key or click closes it."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


class ShortcutOverlay(QWidget):
    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        self.panel = QFrame(self)
        self.panel.setObjectName("shortcutPanel")
        self.panel.setAutoFillBackground(True)
        self.panel.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self.panel)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(False)
        layout = QVBoxLayout(self.panel)
        layout.setContentsMargins(24, 18, 24, 18)
        layout.addWidget(self.label)
        self.hide()
        parent.installEventFilter(self)

    def set_sections(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        """sections: [(title, [(keys, what), ...]), ...], laid out in two columns."""
        half = (len(sections) + 1) // 2
        columns = [sections[:half], sections[half:]]
        cells = []
        for col in columns:
            rows = []
            for title, entries in col:
                rows.append(f'<tr><td colspan="2" style="padding-top:8px"><b>{html.escape(title)}</b></td></tr>')
                for keys, what in entries:
                    rows.append(
                        f'<tr><td style="padding-right:14px; font-family:monospace">'
                        f"{html.escape(keys)}</td><td>{html.escape(what)}</td></tr>"
                    )
            cells.append('<table cellspacing="2">' + "".join(rows) + "</table>")
        self.label.setText(
            '<h3 style="margin:0">Keyboard shortcuts</h3>'
            "<table><tr>"
            + "".join(f'<td valign="top" style="padding-right:28px">{c}</td>' for c in cells)
            + '</tr></table><p style="color:gray">Press any key to close.</p>'
        )

    def open(self) -> None:
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()
        self._place()

    def _place(self) -> None:
        self.panel.adjustSize()
        size = self.panel.sizeHint().boundedTo(self.size())
        self.panel.resize(size)
        self.panel.move((self.width() - size.width()) // 2, (self.height() - size.height()) // 2)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
            self._place()
        return False

    def paintEvent(self, event) -> None:
        QPainter(self).fillRect(self.rect(), QColor(0, 0, 0, 120))

    def mousePressEvent(self, event) -> None:
        self.hide()
