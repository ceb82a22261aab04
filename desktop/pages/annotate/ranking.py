"""The Annotate page's ranking panel: the ranking being built (best first, ties ticked), as a list the mouse
can reorder, with its hint and the submit button."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from core.annotation import RankingBuilder
from desktop.pages.annotate.common import no_focus, style_label


class RankingPanel(QWidget):
    """Shows a RankingBuilder. `rows_moved` (a drop) and `ties_changed` (a box ticked) are the mouse's edits;
    neither fires while the panel fills the list itself."""

    rows_moved = Signal()
    ties_changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._syncing = False
        self.rank_list = QListWidget()
        self.rank_list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.rank_list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.rank_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.rank_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.rank_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.rank_list.setToolTip("Drag to reorder. A ticked box ties a candidate with the one above.")
        no_focus(self.rank_list)
        self.rank_list.model().rowsMoved.connect(self._on_rows_moved)
        self.rank_list.itemChanged.connect(self._on_item_changed)
        self.rank_hint = QLabel(
            "Press numbers best first · = ties the next one with the previous · "
            "Backspace undoes · Enter submits · or drag to reorder"
        )
        self.rank_hint.setWordWrap(True)
        style_label(self.rank_hint)
        self.tie_label = QLabel()
        style_label(self.tie_label, "#8a55c9", bold=True)
        self.submit_rank = QPushButton("Submit ranking (Enter)")
        no_focus(self.submit_rank)
        rl = QVBoxLayout(self)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("<b>Your ranking</b> (best first)"))
        rl.addWidget(self.rank_list, 1)
        rl.addWidget(self.tie_label)
        rl.addWidget(self.rank_hint)
        rl.addWidget(self.submit_rank)

    def _on_rows_moved(self, *_) -> None:
        if not self._syncing:
            self.rows_moved.emit()

    def _on_item_changed(self, _item: QListWidgetItem) -> None:
        if not self._syncing:
            self.ties_changed.emit()

    def show_builder(self, builder: RankingBuilder, snippet: Callable[[int], str]) -> None:
        """The placed tiers (numbered, a tie ticked), then the candidates not placed yet."""
        self._syncing = True
        try:
            self.rank_list.clear()
            row = 0
            for k, tier in enumerate(builder.tiers):
                for j, idx in enumerate(tier):
                    tie = " (tie)" if len(tier) > 1 else ""
                    it = QListWidgetItem(f"{k + 1}.  Candidate {idx + 1}{tie} — {snippet(idx)}")
                    it.setData(Qt.ItemDataRole.UserRole, idx)
                    # the box ties this one with the row above (drawn on every row, so rows align;
                    # only placed rows after the first can be ticked)
                    it.setCheckState(Qt.CheckState.Checked if j > 0 else Qt.CheckState.Unchecked)
                    if row > 0:
                        it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    else:
                        it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                    self.rank_list.addItem(it)
                    row += 1
            for idx in builder.remaining:
                it = QListWidgetItem(f"–   Candidate {idx + 1} (not placed) — {snippet(idx)}")
                it.setData(Qt.ItemDataRole.UserRole, idx)
                it.setCheckState(Qt.CheckState.Unchecked)
                it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                it.setForeground(self.palette().color(self.palette().ColorRole.PlaceholderText))
                self.rank_list.addItem(it)
        finally:
            self._syncing = False
        self.tie_label.setText("Tie armed: the next number ties with the previous one." if builder.tie_armed else "")

    def list_state(self) -> tuple[list[int], list[bool]]:
        """(candidate per row, whether each row is ticked as tied with the one above)."""
        order, tied = [], []
        for row in range(self.rank_list.count()):
            it = self.rank_list.item(row)
            order.append(int(it.data(Qt.ItemDataRole.UserRole)))
            checkable = bool(it.flags() & Qt.ItemFlag.ItemIsUserCheckable)
            tied.append(row > 0 and checkable and it.checkState() == Qt.CheckState.Checked)
        return order, tied
