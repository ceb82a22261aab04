"""The blind judging view: one pair at a time, keyboard first; never shows where a reply came from."""

from __future__ import annotations

import time
from typing import Optional

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.evaluation.blind import BlindItem, evaluation_queue, record_evaluation
from desktop.widgets.candidate_card import CandidateCard
from desktop.widgets.markdown_view import MarkdownView


PAIR_KEYS = {Qt.Key.Key_A: "a", Qt.Key.Key_B: "b", Qt.Key.Key_T: "tie", Qt.Key.Key_X: "both_bad"}
PAIR_BUTTONS = (
    ("a", "A is better  (A)"),
    ("b", "B is better  (B)"),
    ("tie", "Tie  (T)"),
    ("both_bad", "Both bad  (X)"),
)
MAX_FLAG_KEYS = 9


def _no_focus(*widgets: QWidget) -> None:
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.NoFocus)


def _muted(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class BlindJudgeView(QWidget):
    """Judge an eval run's blind pairs one by one, keyboard first: A / B / T (tie) / X (both bad),
    F1… toggle flags, C comment, Ctrl+Z undo, Esc back. Shows only "A", "B", the texts and word counts."""

    judged = Signal()  # after each recorded (or undone) choice
    closed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.project = None
        self.eval_run: Optional[int] = None
        self.queue: list[BlindItem] = []
        self.total = 0
        self.item: Optional[BlindItem] = None
        self.shown_at = time.monotonic()
        self._undo: list[tuple[int, BlindItem]] = []
        self.tags: list[str] = []
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.back = QPushButton("◀ Back to results (Esc)")
        self.back.clicked.connect(self.close_view)
        self.progress = QLabel()
        self.progress.setObjectName("blindProgress")
        hint = _muted(QLabel("Blind: random order; which model wrote which is hidden."))
        top = QHBoxLayout()
        top.addWidget(self.back)
        top.addSpacing(12)
        top.addWidget(self.progress)
        top.addStretch(1)
        top.addWidget(hint)

        self.prompt_view = MarkdownView()
        self.prompt_view.setMaximumHeight(130)
        prompt_box = self.prompt_box = QGroupBox("Prompt")
        pl = QVBoxLayout(prompt_box)
        pl.setContentsMargins(6, 4, 6, 4)
        pl.addWidget(self.prompt_view)

        self.card_a, self.card_b = CandidateCard(), CandidateCard()
        cards = QHBoxLayout()
        cards.addWidget(self.card_a, 1)
        cards.addWidget(self.card_b, 1)

        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for result, text in PAIR_BUTTONS:
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, r=result: self.submit(r))
            self.buttons[result] = b
            row.addWidget(b)
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo)
        row.addStretch(1)
        row.addWidget(self.undo_button)

        self.flags_row = QHBoxLayout()
        self.flags_row.addWidget(QLabel("Flags:"))
        self.flag_checks: list[QCheckBox] = []
        self.flags_end = QWidget()
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (C to type, Esc to leave)")
        self.comment.setClearButtonEnabled(True)
        self.comment.returnPressed.connect(self.setFocus)
        self.comment.installEventFilter(self)
        self.flags_widget = QWidget()
        flags_line = QHBoxLayout(self.flags_widget)
        flags_line.setContentsMargins(0, 0, 0, 0)
        flags_line.addLayout(self.flags_row)
        flags_line.addStretch(1)
        flags_line.addWidget(self.comment, 1)

        self.done_label = QLabel()
        self.done_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.done_label.setWordWrap(True)
        self.done_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(prompt_box)
        layout.addLayout(cards, 1)
        layout.addWidget(self.done_label, 1)
        layout.addWidget(self.flags_widget)
        layout.addLayout(row)
        _no_focus(self.back, self.undo_button, *self.buttons.values(), self.card_a, self.card_b)

    # ---- data ---------------------------------------------------------------------------------------

    def set_flags(self, tags: list[str]) -> None:
        for c in self.flag_checks:
            self.flags_row.removeWidget(c)
            c.deleteLater()
        self.flag_checks = []
        self.tags = list(tags)
        for i, tag in enumerate(self.tags):
            c = QCheckBox(f"{tag} (F{i + 1})" if i < MAX_FLAG_KEYS else tag)
            c.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.flags_row.addWidget(c)
            self.flag_checks.append(c)

    def start(self, project, eval_run: int) -> None:
        self.project = project
        self.eval_run = eval_run
        self._undo.clear()
        self.set_flags(project.tags())
        from core.evaluation.blind import evaluation_items

        self.total = len(evaluation_items(project, eval_run))
        self._reload()
        self.setFocus()

    def _reload(self, prefer: Optional[BlindItem] = None) -> None:
        self.queue = evaluation_queue(self.project, self.eval_run)
        if prefer is not None:
            self.queue = [prefer] + [q for q in self.queue if q.index != prefer.index]
        self._show(self.queue[0] if self.queue else None)

    def clear(self) -> None:
        """Drop every decrypted text (project closed or locked)."""
        self.project = None
        self.eval_run = None
        self.queue = []
        self.item = None
        self._undo.clear()
        self.prompt_view.clear()
        self.card_a.clear()
        self.card_b.clear()
        self.comment.clear()
        self.progress.setText("")

    def _show(self, item: Optional[BlindItem]) -> None:
        self.item = item
        self.comment.clear()
        for c in self.flag_checks:
            c.setChecked(False)
        judged = self.total - len(self.queue)
        if item is None:
            self.progress.setText(f"<b>All {self.total} blind pairs judged</b>")
        else:
            self.progress.setText(
                f"<b>Blind pair {min(judged + 1, self.total)} of {self.total}</b> · {len(self.queue)} left"
            )
        has = item is not None
        for w in (self.prompt_box, self.flags_widget, self.card_a, self.card_b, *self.buttons.values()):
            w.setVisible(has)
        self.done_label.setVisible(not has)
        self.undo_button.setEnabled(bool(self._undo))
        if not has:
            self.prompt_view.clear()
            self.card_a.clear()
            self.card_b.clear()
            self.done_label.setText(
                "<h3>Every blind pair of this evaluation is judged.</h3>Go back to see the results (Esc)."
            )
            return
        self.prompt_view.show_prompt(self.project.prompt(item.prompt_id).prompt)
        self.card_a.set_candidate(0, self.project.response(item.a).text, label="A")
        self.card_b.set_candidate(1, self.project.response(item.b).text, label="B")
        self.shown_at = time.monotonic()

    # ---- actions --------------------------------------------------------------------------------------

    def submit(self, result: str) -> bool:
        if self.item is None or self.project is None:
            return False
        flags = tuple(t for t, c in zip(self.tags, self.flag_checks) if c.isChecked())
        jid = record_evaluation(
            self.project,
            self.item,
            result,
            flags=flags,
            comment=self.comment.text().strip(),
            seconds=round(time.monotonic() - self.shown_at, 3),
        )
        self._undo.append((jid, self.item))
        self._reload()
        self.judged.emit()
        return True

    def undo(self) -> bool:
        if not self._undo or self.project is None:
            return False
        jid, item = self._undo.pop()
        self.project.undo_judgment(jid)
        self._reload(prefer=item)
        self.judged.emit()
        return True

    def close_view(self) -> None:
        self.closed.emit()

    # ---- keys -----------------------------------------------------------------------------------------

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if not self._handle_key(e):
            super().keyPressEvent(e)

    def _handle_key(self, e: QKeyEvent) -> bool:
        key, mods = e.key(), e.modifiers()
        if key == Qt.Key.Key_Escape:
            self.close_view()
            return True
        if key == Qt.Key.Key_Z and mods & Qt.KeyboardModifier.ControlModifier:
            return self.undo()
        if mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
            return False
        if key in PAIR_KEYS:
            return self.submit(PAIR_KEYS[key])
        if Qt.Key.Key_F1 <= key <= Qt.Key.Key_F9:
            i = key - Qt.Key.Key_F1
            if i < len(self.flag_checks):
                self.flag_checks[i].toggle()
            return True
        if key == Qt.Key.Key_C:
            self.comment.setFocus()
            return True
        return False

    def eventFilter(self, obj, e) -> bool:
        if obj is self.comment and e.type() == QEvent.Type.KeyPress and e.key() == Qt.Key.Key_Escape:
            self.setFocus()
            return True
        return super().eventFilter(obj, e)

    def visible_texts(self) -> list[str]:
        """Every text this view shows besides the prompt and the two answers (tests check blindness)."""
        out = [self.progress.text(), self.done_label.text(), self.comment.placeholderText()]
        for w in self.findChildren(QWidget):
            for getter in ("text", "title", "toolTip", "windowTitle"):
                fn = getattr(w, getter, None)
                if callable(fn) and not isinstance(w, MarkdownView):
                    try:
                        value = fn()
                    except TypeError:
                        continue
                    if isinstance(value, str) and value:
                        out.append(value)
        return out
