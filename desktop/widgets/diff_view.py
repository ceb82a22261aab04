"""Two candidates as a word-level diff (difflib), rendered to HTML: removed words struck through in
red, added words in green."""

from __future__ import annotations

import difflib
import html
import re
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTextBrowser, QVBoxLayout, QWidget

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")

DEL_STYLE = "background-color:#f8d0d0; color:#7a1010; text-decoration:line-through;"
ADD_STYLE = "background-color:#c9efc9; color:#0d4d0d;"


def _esc(tokens: list[str]) -> str:
    return html.escape("".join(tokens)).replace("\n", "<br/>")


def diff_html(a: str, b: str) -> str:
    """HTML of b relative to a, word by word."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_esc(ta[i1:i2]))
            continue
        if op in ("delete", "replace"):
            out.append(f'<span style="{DEL_STYLE}">{_esc(ta[i1:i2])}</span>')
        if op in ("insert", "replace"):
            out.append(f'<span style="{ADD_STYLE}">{_esc(tb[j1:j2])}</span>')
    return '<div style="font-family:monospace; white-space:pre-wrap;">' + "".join(out) + "</div>"


def diff_stats(a: str, b: str) -> float:
    """Similarity in [0, 1] of the two texts (word level)."""
    return difflib.SequenceMatcher(None, _TOKEN.findall(a), _TOKEN.findall(b), autojunk=False).ratio()


class DiffView(QWidget):
    """Pick two candidates by number; shows their diff."""

    changed = Signal(int, int)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._texts: list[str] = []
        self._labels: list[str] = []
        self.left = QComboBox()
        self.right = QComboBox()
        for combo in (self.left, self.right):
            combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            combo.currentIndexChanged.connect(self._refresh)
        self.similarity = QLabel()
        self.browser = QTextBrowser()
        self.browser.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.browser.setOpenLinks(False)
        top = QHBoxLayout()
        top.addWidget(QLabel("Diff of"))
        top.addWidget(self.left)
        top.addWidget(QLabel("→"))
        top.addWidget(self.right)
        top.addStretch(1)
        top.addWidget(self.similarity)
        top.addWidget(
            QLabel(
                '<span style="color:#b03030">removed</span> · '
                '<span style="color:#2a7a2a">added</span> · D or Esc to close'
            )
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.browser, 1)

    def set_texts(self, labels: list[str], texts: list[str], left: int = 0, right: int = 1) -> None:
        self._texts, self._labels = list(texts), list(labels)
        for combo, index in ((self.left, left), (self.right, right)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(labels)
            combo.setCurrentIndex(min(index, len(labels) - 1))
            combo.blockSignals(False)
        self._refresh()

    def _refresh(self, *_) -> None:
        i, j = self.left.currentIndex(), self.right.currentIndex()
        if not (0 <= i < len(self._texts) and 0 <= j < len(self._texts)):
            self.browser.clear()
            self.similarity.clear()
            return
        self.browser.setHtml(diff_html(self._texts[i], self._texts[j]))
        self.similarity.setText(f"{diff_stats(self._texts[i], self._texts[j]):.0%} alike")
        self.changed.emit(i, j)

    def clear(self) -> None:
        self._texts, self._labels = [], []
        for combo in (self.left, self.right):
            combo.blockSignals(True)
            combo.clear()
            combo.blockSignals(False)
        self.browser.clear()
        self.similarity.clear()
