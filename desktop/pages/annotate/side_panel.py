"""The Annotate page's side panel: the Judge tab (the panel of the current mode, flags, comment, navigation)
and the Guidelines tab (the guidelines, which prompts to queue, consistency re-checks), beside the Review tab
of desktop.pages.annotate_assist."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.pages.annotate.common import MAX_FLAG_KEYS, SPLITS, no_focus
from desktop.pages.annotate.pairwise import PairwisePanel
from desktop.pages.annotate.ranking import RankingPanel
from desktop.pages.annotate.rating import RatingPanel
from desktop.widgets.markdown_view import MarkdownView


class JudgeTab(QWidget):
    """The mode's panel (ranking, pairwise, rating: the order of core.annotation.MODES) over the flags, the
    comment, the navigation buttons and the assist's model check."""

    def __init__(self, assist, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.ranking = RankingPanel()
        self.pairwise = PairwisePanel()
        self.rating = RatingPanel()
        self.mode_stack = QStackedWidget()
        for w in (self.ranking, self.pairwise, self.rating):
            self.mode_stack.addWidget(w)

        self.flags_box = QGroupBox("Flags")
        self.flags_layout = QVBoxLayout(self.flags_box)
        self.flags_layout.setContentsMargins(8, 4, 8, 4)
        self.flag_checks: list[QCheckBox] = []

        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (C to type, Esc to leave)")
        self.comment.setClearButtonEnabled(True)

        self.prev_button = QPushButton("◀ Previous")
        self.skip_button = QPushButton("Skip (S)")
        self.next_button = QPushButton("Next ▶")
        self.undo_button = QPushButton("Undo last judgment (Ctrl+Z)")
        nav = QHBoxLayout()
        for b in (self.prev_button, self.skip_button, self.next_button):
            nav.addWidget(b)
        no_focus(self.prev_button, self.skip_button, self.next_button, self.undo_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.mode_stack, 1)
        layout.addWidget(self.flags_box)
        layout.addWidget(QLabel("Comment"))
        layout.addWidget(self.comment)
        layout.addLayout(nav)
        layout.addWidget(self.undo_button)
        layout.addWidget(assist.note)

    def add_flags(self, tags: list[str]) -> None:
        """A box per tag of the project; the first MAX_FLAG_KEYS toggle with F1…"""
        for k, tag in enumerate(tags):
            cb = QCheckBox(f"{tag}  (F{k + 1})" if k < MAX_FLAG_KEYS else tag)
            no_focus(cb)
            self.flags_layout.addWidget(cb)
            self.flag_checks.append(cb)

    def clear_flags(self) -> None:
        for cb in self.flag_checks:
            cb.deleteLater()
        self.flag_checks = []


class GuidelinesTab(QWidget):
    """The project's guidelines (shown, or edited in place), the queue's split, the share of consistency
    re-checks with how consistent the expert was, and the assist's queue controls."""

    def __init__(self, assist, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.guidelines_view = MarkdownView()
        self.guidelines_edit = QPlainTextEdit()
        self.guidelines_edit.hide()
        self.guidelines_button = QPushButton("Edit")
        self.split_combo = QComboBox()
        for text, _ in SPLITS:
            self.split_combo.addItem(text)
        self.share_spin = QSpinBox()
        self.share_spin.setRange(0, 50)
        self.share_spin.setSuffix(" %")
        self.share_spin.setToolTip("Share of items re-shown blindly to measure your consistency")
        no_focus(self.guidelines_button, self.split_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.guidelines_view, 1)
        layout.addWidget(self.guidelines_edit, 1)
        layout.addWidget(self.guidelines_button)
        form = QGridLayout()
        form.addWidget(QLabel("Queue"), 0, 0)
        form.addWidget(self.split_combo, 0, 1)
        form.addWidget(QLabel("Consistency re-checks"), 1, 0)
        form.addWidget(self.share_spin, 1, 1)
        form.addWidget(assist.check_box, 2, 0, 1, 2)
        layout.addLayout(form)
        layout.addWidget(assist.order_status)
        self.consistency_label = QLabel()
        self.consistency_label.setWordWrap(True)
        layout.addWidget(self.consistency_label)

    def editing(self) -> bool:
        return self.guidelines_edit.isVisible()

    def start_editing(self, text: str) -> None:
        self.guidelines_edit.setPlainText(text)
        self.guidelines_view.hide()
        self.guidelines_edit.show()
        self.guidelines_button.setText("Save")
        self.guidelines_edit.setFocus()

    def show_guidelines(self, text: str) -> None:
        """Show `text` (Markdown), leaving the editor when it is open."""
        self.guidelines_view.show_text(text)
        self.guidelines_edit.hide()
        self.guidelines_view.show()
        self.guidelines_button.setText("Edit")

    def clear(self) -> None:
        self.guidelines_view.clear()
        self.guidelines_edit.clear()
        self.guidelines_edit.document().clearUndoRedoStacks()
        self.guidelines_edit.hide()
        self.guidelines_view.show()
        self.guidelines_button.setText("Edit")
        self.consistency_label.clear()


class SidePanel(QTabWidget):
    """Judge, Guidelines (G) and the assist's Review tab, in that order."""

    def __init__(self, assist, parent: Optional[QWidget] = None):
        super().__init__(parent)
        no_focus(self, self.tabBar())
        self.judge = JudgeTab(assist)
        self.guidelines = GuidelinesTab(assist)
        self.addTab(self.judge, "Judge")
        self.addTab(self.guidelines, "Guidelines (G)")
        self.addTab(assist.review_tab, "Review")
        self.setMinimumWidth(300)
        self.setMaximumWidth(420)
