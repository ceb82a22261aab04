"""A sentence over an empty table or list saying what will appear there and how to start.

    EmptyState(self.runs, "No runs yet. Rank a few prompts on the Annotate page, then press Start.")

The label sits on the view's viewport, shown while the model has no rows (it follows inserts, removals
and resets) and hidden as soon as one arrives. `text` may be a callable, asked each time the view
becomes empty (e.g. "no prompt matches these filters" when the project does have prompts).
"""

from __future__ import annotations

from typing import Callable, Union

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QLabel

Text = Union[str, Callable[[], str]]


class EmptyState(QObject):
    def __init__(self, view: QAbstractItemView, text: Text):
        super().__init__(view)
        self.view = view
        self._viewport = view.viewport()
        self._text = text
        self.label = QLabel(self._viewport)
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setStyleSheet("color: palette(mid); padding: 12px;")
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._viewport.installEventFilter(self)
        self._model = None
        self._connect()
        self.update()

    def set_text(self, text: Text) -> None:
        self._text = text
        self.update()

    def text(self) -> str:
        return self._text() if callable(self._text) else self._text

    def is_shown(self) -> bool:
        """True while the view is empty and the sentence is up (tests read it)."""
        return not self.label.isHidden()

    def _connect(self) -> None:
        model = self.view.model()
        if model is None or model is self._model:
            return
        self._model = model
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset, model.layoutChanged):
            signal.connect(self.update)

    def _alive(self) -> bool:
        # the view's signals and its viewport's events still arrive while Qt tears the view down
        return all(shiboken6.isValid(o) for o in (self.view, self._viewport, self.label))

    def update(self, *_) -> None:
        if not self._alive():
            return
        self._connect()  # a view may get its model after this was made
        model = self.view.model()
        empty = model is None or model.rowCount() == 0
        if empty:
            self.label.setText(self.text())
            self._place()
        self.label.setVisible(empty)

    def _place(self) -> None:
        rect = self._viewport.rect()
        self.label.setGeometry(rect.adjusted(8, 8, -8, -8))

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Resize and obj is self._viewport and self._alive():
            self._place()
        return False
