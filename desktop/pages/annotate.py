"""The Annotate page: a keyboard-first view over core.annotation.AnnotationSession.

Keys go to the page itself (cards, lists and buttons never take focus), so number keys rank even
while the mouse rests on a card; only the comment field and the guidelines editor take text, and Esc
gives the keys back. Every submit is recorded (and committed) by the session before the next item is
shown. `set_project(None)` clears every widget that shows decrypted text.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.annotation import (
    MODES,
    PAIRWISE_KEYS,
    RATING_MAX,
    RATING_MIN,
    AnnotationSession,
    Item,
    RankingBuilder,
    consistency_checks,
    consistency_summary,
)
from core.errors import UserError
from desktop.pages.base import Page
from desktop.widgets.candidate_card import CandidateCard
from desktop.widgets.diff_view import DiffView
from desktop.widgets.markdown_view import MarkdownView
from desktop.widgets.shortcut_overlay import ShortcutOverlay

MODE_LABELS = {"ranking": "Rank", "pairwise": "Pairwise", "rating": "Rate"}
SPLITS = [("All prompts", None), ("Train split", "train"), ("Held-out split", "heldout")]
TIE_TEXTS = ("=", "t", "T")
MAX_FLAG_KEYS = 9  # F1..F9

SHORTCUTS = [
    (
        "Rank (Ctrl+1)",
        [
            ("1 … 9", "place that candidate next, best first"),
            ("= or T", "tie the next candidate with the previous one"),
            ("Backspace", "take back the last placement"),
            ("Enter", "submit the ranking (a last single candidate goes last)"),
        ],
    ),
    ("Pairwise (Ctrl+2)", [("A / B", "A is better / B is better (submits)"), ("T", "tie"), ("X", "both bad")]),
    (
        "Rate (Ctrl+3)",
        [
            ("Tab / → / ↓", "select the next card"),
            ("Shift+Tab / ← / ↑", "select the previous card"),
            ("1 … 7", "rate the selected card"),
            ("Backspace", "clear its rating"),
            ("Enter", "submit the ratings"),
        ],
    ),
    (
        "Any mode",
        [
            ("F1 … F9", "toggle a flag"),
            ("C", "write a comment (Esc to leave)"),
            ("S", "skip this item"),
            ("Alt+← or ,", "previous item"),
            ("Alt+→ or .", "next item"),
            ("Ctrl+Z", "undo the last submitted judgment"),
            ("D", "diff two candidates"),
            ("G", "show the guidelines"),
            ("?", "this overview"),
            ("Esc", "close overlay / diff"),
        ],
    ),
]


def _style_label(label: QLabel, colour: Optional[str] = None, bold: bool = False) -> None:
    """Colour and weight through palette and font, not style sheets (those slow every repaint)."""
    if colour is None:
        label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    else:
        pal = label.palette()
        pal.setColor(QPalette.ColorRole.WindowText, QColor(colour))
        label.setPalette(pal)
    if bold:
        font = label.font()
        font.setBold(True)
        label.setFont(font)


def _no_focus(*widgets: QWidget) -> None:
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.NoFocus)


class AnnotatePage(Page):
    title = "Annotate"
    item_shown = Signal(object)  # core.annotation.Item or None, after the widgets show it

    def __init__(self, app_context=None, parent: Optional[QWidget] = None):
        if parent is None and isinstance(app_context, QWidget):  # AnnotatePage(parent) works too
            app_context, parent = None, app_context
        super().__init__(app_context, parent)
        self.session: Optional[AnnotationSession] = None
        self.item: Optional[Item] = None
        self.builder = RankingBuilder(0)
        self.ratings: dict[int, int] = {}
        self.selected = 0
        self.mode = "ranking"
        self.split: Optional[str] = None
        self.tags: list[str] = []
        self._cards: list[CandidateCard] = []
        self._grid_shape: tuple = ()
        self._syncing = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._build()
        self.overlay = ShortcutOverlay(self)
        self.overlay.set_sections(SHORTCUTS)
        self._show_empty("No project is open.")

    # ---- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        from desktop.pages.annotate_assist import AnnotateAssist

        self.assist = AnnotateAssist(self)  # queue order, model check after a submit, review list
        # top bar: modes, progress, tools
        self.mode_group = QButtonGroup(self)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        for k, mode in enumerate(MODES):
            b = QToolButton()
            b.setText(f"{MODE_LABELS[mode]}")
            b.setToolTip(f"{MODE_LABELS[mode]} mode (Ctrl+{k + 1})")
            b.setCheckable(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setMinimumWidth(72)
            _no_focus(b)
            self.mode_group.addButton(b, k)
            top.addWidget(b)
        self.mode_group.button(0).setChecked(True)
        self.mode_group.idClicked.connect(lambda k: self.set_mode(MODES[k]))
        self.progress_label = QLabel()
        self.progress_label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        # fixed size policies: a new text must not re-lay-out the page (it costs ms per item)
        self.progress_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top.addSpacing(12)
        top.addWidget(self.assist.order_combo)
        top.addSpacing(12)
        top.addWidget(self.progress_label, 1)
        self.diff_button = QPushButton("Diff (D)")
        self.help_button = QPushButton("Shortcuts (?)")
        _no_focus(self.diff_button, self.help_button)
        self.diff_button.clicked.connect(self.toggle_diff)
        self.help_button.clicked.connect(self.toggle_overlay)
        top.addWidget(self.diff_button)
        top.addWidget(self.help_button)

        # centre: prompt over candidates (or the diff, or a message)
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
        _style_label(self.message, "#c0392b", bold=True)
        self.message.setFixedHeight(self.message.fontMetrics().height() + 6)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.center_split, 1)
        cl.addWidget(self.message)

        # side panel: judge tab (mode panel, flags, comment, navigation) and guidelines tab
        self.tabs = QTabWidget()
        _no_focus(self.tabs, self.tabs.tabBar())
        self.tabs.addTab(self._build_judge_tab(), "Judge")
        self.tabs.addTab(self._build_guidelines_tab(), "Guidelines (G)")
        self.tabs.addTab(self.assist.review_tab, "Review")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.tabs.setMinimumWidth(300)
        self.tabs.setMaximumWidth(420)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(center)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 330])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    def _build_judge_tab(self) -> QWidget:
        # ranking panel
        self.rank_list = QListWidget()
        self.rank_list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.rank_list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.rank_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.rank_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.rank_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.rank_list.setToolTip("Drag to reorder. A ticked box ties a candidate with the one above.")
        _no_focus(self.rank_list)
        self.rank_list.model().rowsMoved.connect(self._on_rows_moved)
        self.rank_list.itemChanged.connect(self._on_item_changed)
        self.rank_hint = QLabel(
            "Press numbers best first · = ties the next one with the previous · "
            "Backspace undoes · Enter submits · or drag to reorder"
        )
        self.rank_hint.setWordWrap(True)
        _style_label(self.rank_hint)
        self.tie_label = QLabel()
        _style_label(self.tie_label, "#8a55c9", bold=True)
        self.submit_rank = QPushButton("Submit ranking (Enter)")
        self.submit_rank.clicked.connect(self.submit)
        rank_panel = QWidget()
        rl = QVBoxLayout(rank_panel)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("<b>Your ranking</b> (best first)"))
        rl.addWidget(self.rank_list, 1)
        rl.addWidget(self.tie_label)
        rl.addWidget(self.rank_hint)
        rl.addWidget(self.submit_rank)

        # pairwise panel
        pair_panel = QWidget()
        pl = QVBoxLayout(pair_panel)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(QLabel("<b>Which answer is better?</b>"))
        self.pair_buttons = {}
        for key, result, text in (
            ("A", "a", "A is better"),
            ("B", "b", "B is better"),
            ("T", "tie", "Tie"),
            ("X", "both_bad", "Both bad"),
        ):
            b = QPushButton(f"{text}  ({key})")
            b.clicked.connect(lambda _=False, r=result: self.submit_pairwise(r))
            self.pair_buttons[result] = b
            pl.addWidget(b)
        self.pair_existing = QLabel()
        self.pair_existing.setWordWrap(True)
        pl.addWidget(self.pair_existing)
        pl.addStretch(1)

        # rating panel
        rate_panel = QWidget()
        tl = QVBoxLayout(rate_panel)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(QLabel(f"<b>Rate each answer</b> {RATING_MIN} (worst) – {RATING_MAX} (best)"))
        hint = QLabel("Tab or arrows select a card; press 1–7 to rate it. Or click the buttons on a card.")
        hint.setWordWrap(True)
        _style_label(hint)
        tl.addWidget(hint)
        self.rating_summary = QLabel()
        self.rating_summary.setWordWrap(True)
        tl.addWidget(self.rating_summary)
        tl.addStretch(1)
        self.submit_rate = QPushButton("Submit ratings (Enter)")
        self.submit_rate.clicked.connect(self.submit)
        tl.addWidget(self.submit_rate)

        self.mode_stack = QStackedWidget()
        for w in (rank_panel, pair_panel, rate_panel):
            self.mode_stack.addWidget(w)

        self.flags_box = QGroupBox("Flags")
        self.flags_layout = QVBoxLayout(self.flags_box)
        self.flags_layout.setContentsMargins(8, 4, 8, 4)
        self.flag_checks: list[QCheckBox] = []

        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (C to type, Esc to leave)")
        self.comment.setClearButtonEnabled(True)
        self.comment.returnPressed.connect(self.setFocus)
        self.comment.installEventFilter(self)

        self.prev_button = QPushButton("◀ Previous")
        self.skip_button = QPushButton("Skip (S)")
        self.next_button = QPushButton("Next ▶")
        self.undo_button = QPushButton("Undo last judgment (Ctrl+Z)")
        self.prev_button.clicked.connect(self.previous)
        self.skip_button.clicked.connect(self.skip)
        self.next_button.clicked.connect(self.next)
        self.undo_button.clicked.connect(self.undo)
        nav = QHBoxLayout()
        for b in (self.prev_button, self.skip_button, self.next_button):
            nav.addWidget(b)
        _no_focus(
            self.submit_rank,
            self.submit_rate,
            self.prev_button,
            self.skip_button,
            self.next_button,
            self.undo_button,
            *self.pair_buttons.values(),
        )

        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.mode_stack, 1)
        layout.addWidget(self.flags_box)
        layout.addWidget(QLabel("Comment"))
        layout.addWidget(self.comment)
        layout.addLayout(nav)
        layout.addWidget(self.undo_button)
        layout.addWidget(self.assist.note)
        return tab

    def _build_guidelines_tab(self) -> QWidget:
        self.guidelines_view = MarkdownView()
        self.guidelines_edit = QPlainTextEdit()
        self.guidelines_edit.hide()
        self.guidelines_edit.installEventFilter(self)
        self.guidelines_button = QPushButton("Edit")
        self.guidelines_button.clicked.connect(self._toggle_guidelines_edit)
        self.split_combo = QComboBox()
        for text, _ in SPLITS:
            self.split_combo.addItem(text)
        self.split_combo.currentIndexChanged.connect(self._on_split_changed)
        self.share_spin = QSpinBox()
        self.share_spin.setRange(0, 50)
        self.share_spin.setSuffix(" %")
        self.share_spin.setToolTip("Share of items re-shown blindly to measure your consistency")
        self.share_spin.valueChanged.connect(self._on_share_changed)
        _no_focus(self.guidelines_button, self.split_combo)
        self.share_spin.installEventFilter(self)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.guidelines_view, 1)
        layout.addWidget(self.guidelines_edit, 1)
        layout.addWidget(self.guidelines_button)
        form = QGridLayout()
        form.addWidget(QLabel("Queue"), 0, 0)
        form.addWidget(self.split_combo, 0, 1)
        form.addWidget(QLabel("Consistency re-checks"), 1, 0)
        form.addWidget(self.share_spin, 1, 1)
        form.addWidget(self.assist.check_box, 2, 0, 1, 2)
        layout.addLayout(form)
        layout.addWidget(self.assist.order_status)
        self.consistency_label = QLabel()
        self.consistency_label.setWordWrap(True)
        layout.addWidget(self.consistency_label)
        return tab

    # ---- project ------------------------------------------------------------------------------

    def set_project(self, project) -> None:
        super().set_project(project)
        self.session = None
        self.item = None
        self._clear_views()
        if project is None:
            self.assist.project_set(None)
            self._show_empty("The project is locked or closed.")
            return
        self.tags = project.tags()
        for k, tag in enumerate(self.tags):
            cb = QCheckBox(f"{tag}  (F{k + 1})" if k < MAX_FLAG_KEYS else tag)
            _no_focus(cb)
            self.flags_layout.addWidget(cb)
            self.flag_checks.append(cb)
        self.guidelines_view.show_text(
            project.get_setting("guidelines", "") or "*No guidelines yet. Press Edit to write them.*"
        )
        self.session = AnnotationSession(project, mode=self.mode, split=self.split)
        self.share_spin.blockSignals(True)
        self.share_spin.setValue(int(round(self.session.consistency_share * 100)))
        self.share_spin.blockSignals(False)
        self._show(self.session.start())
        self.assist.project_set(project)

    def data_changed(self) -> None:
        """Candidates were imported or generated: an empty queue, or a prompt shown with too few to compare,
        starts again (a prompt mid-judgment stays as it is)."""
        if self.project is not None and (self.item is None or self.item.k < 2):
            self.set_project(self.project)

    def _clear_views(self) -> None:
        """Drop every decrypted text from the widgets."""
        self.overlay.hide()
        self.prompt_view.clear()
        for card in self._cards:
            card.clear()
        self.diff_view.clear()
        self.rank_list.clear()
        self.comment.setText("")  # setText (not clear) also drops the undo history holding the old text
        self.guidelines_view.clear()
        self.guidelines_edit.clear()
        self.guidelines_edit.document().clearUndoRedoStacks()
        self.guidelines_edit.hide()
        self.guidelines_view.show()
        self.guidelines_button.setText("Edit")
        self.rating_summary.clear()
        self.pair_existing.clear()
        self.progress_label.clear()
        self.message.clear()
        self.consistency_label.clear()
        self.assist.clear()
        for cb in self.flag_checks:
            cb.deleteLater()
        self.flag_checks = []
        self.builder = RankingBuilder(0)
        self.ratings = {}

    def _show_empty(self, text: str) -> None:
        self.empty_label.setText(text)
        self.center_stack.setCurrentWidget(self.empty_label)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        self.guidelines_button.setEnabled(self.project is not None)
        for w in (
            self.submit_rank,
            self.submit_rate,
            self.skip_button,
            self.prev_button,
            self.next_button,
            self.diff_button,
            *self.pair_buttons.values(),
        ):
            w.setEnabled(on)
        self.undo_button.setEnabled(self.session is not None and self.session.can_undo)

    # ---- showing an item ----------------------------------------------------------------------

    def _ensure_cards(self, n: int) -> None:
        while len(self._cards) < n:
            card = CandidateCard()
            card.clicked.connect(self._on_card_clicked)
            card.rated.connect(self._on_card_rated)
            card.overruled.connect(self._on_quality_overruled)
            self._cards.append(card)

    def _layout_cards(self, shown: list[int]) -> None:
        """Grid of the shown cards: two columns up to four, three beyond."""
        cols = 2 if len(shown) <= 4 else 3
        shape = (tuple(shown), cols)
        if shape == self._grid_shape:
            return
        self._grid_shape = shape
        for card in self._cards:
            self.cards_layout.removeWidget(card)
            card.hide()
        for pos, idx in enumerate(shown):
            self.cards_layout.addWidget(self._cards[idx], pos // cols, pos % cols)
            self._cards[idx].show()
        rows = (len(shown) + cols - 1) // cols
        for r in range(4):
            self.cards_layout.setRowStretch(r, 1 if r < rows else 0)

    def _show(self, item: Optional[Item]) -> None:
        self.item = item
        self.message.clear()
        self.overlay.hide()
        if item is None:
            self.prompt_view.clear()
            for card in self._cards:
                card.clear()
            self.rank_list.clear()
            self.comment.setText("")
            self._show_empty(
                "Every prompt in the queue is judged. Import or generate more, or go back with ◀ Previous."
            )
            self._update_progress()
            self.prev_button.setEnabled(self.session is not None and self.session.index >= 0)
            self.assist.item_shown(None)
            self.item_shown.emit(None)
            return
        self._set_enabled(True)
        self.prompt_view.show_prompt(item.prompt.prompt)
        self._ensure_cards(item.k)
        if self.mode == "pairwise" and item.pair is not None:
            shown = list(item.pair)
            for side, idx in zip("AB", shown):
                self._cards[idx].set_candidate(idx, item.candidates[idx].text, label=side)
        else:
            shown = list(range(item.k))
            for idx in shown:
                self._cards[idx].set_candidate(idx, item.candidates[idx].text)
        self._layout_cards(shown)
        for idx in shown:
            self._cards[idx].set_rating_visible(self.mode == "rating")
            self._cards[idx].set_quality(item.quality.get(idx, ()))
        # state for this item, prefilled from the stored judgment when revisiting
        self.builder = RankingBuilder(item.k)
        tiers = item.prefill_tiers()
        if tiers and self.mode == "ranking":
            self.builder.set_tiers(tiers)
        self.ratings = item.prefill_ratings() if self.mode == "rating" else {}
        self.selected = 0
        flags = set(item.existing.flags) if item.existing else set()
        for tag, cb in zip(self.tags, self.flag_checks):
            cb.setChecked(tag in flags)
        self.comment.setText(item.existing.comment if item.existing else "")
        self.pair_existing.setText(_existing_pair_text(item) if self.mode == "pairwise" else "")
        if self.center_stack.currentWidget() is self.diff_view:
            self._fill_diff()
        else:
            self.center_stack.setCurrentWidget(self.cards_widget)
        if item.k == 0 or (item.k < 2 and self.mode != "rating"):  # prompts imported alone, not generated yet
            self.empty_label.setText(
                f"This prompt has {'no candidate replies' if not item.k else 'only one candidate reply'} yet: "
                "nothing to compare. Generate candidates on the Models page (Generate candidates…) or import "
                "replies on the Data page; Skip (S) moves on."
            )
            self.center_stack.setCurrentWidget(self.empty_label)
            for w in (self.submit_rank, self.submit_rate, self.diff_button, *self.pair_buttons.values()):
                w.setEnabled(False)
        self._refresh_state()
        self._update_progress()
        if not (self.comment.hasFocus() or self.guidelines_edit.hasFocus()):
            self.setFocus()
        self.assist.item_shown(item)
        self.item_shown.emit(item)

    def _refresh_state(self) -> None:
        """Badges, the ranking list and the rating summary from the current builder / ratings."""
        item = self.item
        if item is None:
            return
        if self.mode == "ranking":
            for i in range(item.k):
                rank = self.builder.rank_of(i)
                card = self._cards[i]
                if rank is None:
                    card.set_badge("")
                else:
                    tied = len(self.builder.tiers[rank - 1]) > 1
                    card.set_badge(f"#{rank}" + (" (tie)" if tied else ""), "tie" if tied else "rank")
                card.set_placed(rank is not None)
                card.set_selected(False)
            self._fill_rank_list()
            self.tie_label.setText(
                "Tie armed: the next number ties with the previous one." if self.builder.tie_armed else ""
            )
        elif self.mode == "rating":
            for i in range(item.k):
                card = self._cards[i]
                v = self.ratings.get(i)
                card.set_rating(v)
                card.set_badge(f"{v}/{RATING_MAX}" if v else "", "neutral")
                card.set_selected(i == self.selected)
                card.set_placed(v is not None)
            done = len(self.ratings)
            self.rating_summary.setText(f"Rated {done} of {item.k}. Selected: card {self.selected + 1}.")
        else:
            for i in range(item.k):
                self._cards[i].set_badge("")
                self._cards[i].set_selected(False)
                self._cards[i].set_placed(False)
        self.undo_button.setEnabled(self.session is not None and self.session.can_undo)

    def _fill_rank_list(self) -> None:
        self._syncing = True
        try:
            self.rank_list.clear()
            row = 0
            for k, tier in enumerate(self.builder.tiers):
                for j, idx in enumerate(tier):
                    tie = " (tie)" if len(tier) > 1 else ""
                    it = QListWidgetItem(f"{k + 1}.  Candidate {idx + 1}{tie} — {self._snippet(idx)}")
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
            for idx in self.builder.remaining:
                it = QListWidgetItem(f"–   Candidate {idx + 1} (not placed) — {self._snippet(idx)}")
                it.setData(Qt.ItemDataRole.UserRole, idx)
                it.setCheckState(Qt.CheckState.Unchecked)
                it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                it.setForeground(self.palette().color(self.palette().ColorRole.PlaceholderText))
                self.rank_list.addItem(it)
        finally:
            self._syncing = False

    def _snippet(self, idx: int, n: int = 48) -> str:
        text = " ".join(self.item.candidates[idx].text.split()) if self.item else ""
        return text if len(text) <= n else text[: n - 1] + "…"

    def _update_progress(self) -> None:
        if self.session is None:
            self.progress_label.clear()
            return
        self.progress_label.setText(self.session.progress.text() + self.assist.status_suffix())

    # ---- mouse: drag and drop, checkboxes, cards -----------------------------------------------

    def _list_state(self) -> tuple[list[int], list[bool]]:
        order, tied = [], []
        for row in range(self.rank_list.count()):
            it = self.rank_list.item(row)
            order.append(int(it.data(Qt.ItemDataRole.UserRole)))
            checkable = bool(it.flags() & Qt.ItemFlag.ItemIsUserCheckable)
            tied.append(row > 0 and checkable and it.checkState() == Qt.CheckState.Checked)
        return order, tied

    def _on_rows_moved(self, *_) -> None:
        """A drop makes the list's order the ranking (every candidate placed). Applied after the drop
        has finished: rebuilding the list inside the view's own drop handler is unsafe."""
        if self._syncing or self.item is None or self.mode != "ranking":
            return
        QTimer.singleShot(0, self._apply_list_order)

    def _apply_list_order(self) -> None:
        if self.item is None or self.mode != "ranking" or self.rank_list.count() != self.item.k:
            return
        order, tied = self._list_state()
        self.builder.set_order(order, tied)
        self._refresh_state()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing or self.item is None or self.mode != "ranking":
            return
        order, tied = self._list_state()
        n = len(self.builder.placed)  # only placed rows have a box
        self.builder.set_order(order[:n], tied[:n])
        self._refresh_state()

    def _on_card_clicked(self, idx: int) -> None:
        if self.item is None or idx < 0:
            return
        if self.mode == "rating":
            self.selected = idx
            self._refresh_state()
        self.setFocus()

    def _on_card_rated(self, idx: int, value: int) -> None:
        if self.item is None or self.mode != "rating" or idx < 0:
            return
        self.ratings[idx] = value
        self.selected = idx
        self._refresh_state()
        self.setFocus()

    # ---- actions ------------------------------------------------------------------------------

    def _run(self, fn) -> bool:
        """Call a session action and show the item it returns; a UserError shows as a message."""
        if self.session is None:
            return False
        try:
            item = fn()
        except UserError as exc:
            self.message.setText(str(exc))
            return False
        self._show(item)
        return True

    def _changed(self, ok: bool) -> bool:
        """After a judgment is saved: tell the other pages (Train's pre-flight counts pairs)."""
        if ok and hasattr(self.app_context, "notify_changed"):
            self.app_context.notify_changed("judgment")
        if ok:
            self.assist.after_submit()  # the model check (after, never before) and the queue's refresh
        return ok

    def _flags(self) -> tuple[str, ...]:
        return tuple(tag for tag, cb in zip(self.tags, self.flag_checks) if cb.isChecked())

    def submit(self) -> bool:
        if self.item is None or self.session is None:
            return False
        if self.mode == "ranking":
            try:
                tiers = self.builder.final_tiers()
            except UserError as exc:
                self.message.setText(str(exc))
                return False
            return self._changed(
                self._run(lambda: self.session.submit_ranking(tiers, self._flags(), self.comment.text()))
            )
        if self.mode == "rating":
            return self._changed(
                self._run(lambda: self.session.submit_ratings(dict(self.ratings), self._flags(), self.comment.text()))
            )
        return False

    def submit_pairwise(self, result: str) -> bool:
        if self.item is None or self.session is None or self.mode != "pairwise":
            return False
        return self._changed(
            self._run(lambda: self.session.submit_pairwise(result, self._flags(), self.comment.text()))
        )

    def skip(self) -> bool:
        return self.item is not None and self._run(lambda: self.session.skip())

    def next(self) -> bool:
        return self._run(lambda: self.session.next())

    def previous(self) -> bool:
        return self._run(lambda: self.session.previous())

    def undo(self) -> bool:
        return self._run(lambda: self.session.undo())

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            return
        self.mode = mode
        self.mode_group.button(MODES.index(mode)).setChecked(True)
        self.mode_stack.setCurrentIndex(MODES.index(mode))
        self._grid_shape = ()
        if self.session is not None:
            self._run(lambda: self.session.set_mode(mode))

    def _on_split_changed(self, index: int) -> None:
        self.split = SPLITS[index][1]
        if self.project is not None:
            self.session = AnnotationSession(self.project, mode=self.mode, split=self.split)
            self._show(self.session.start())
            self.assist.session_changed()

    def goto_prompt(self, prompt_id: int) -> bool:
        """Show a prompt again (the review list): its stored judgment is prefilled."""
        if self.session is None:
            return False
        self.tabs.setCurrentIndex(0)
        return self._run(lambda: self.session.goto(prompt_id))

    def _on_quality_overruled(self, idx: int, tag: str) -> None:
        """The expert says an automatic quality tag on a card is wrong: saved at once."""
        if self.session is None or self.item is None or idx < 0:
            return
        try:
            item = self.session.overrule_quality(idx, tag)
        except UserError as exc:
            self.message.setText(str(exc))
            return
        self._cards[idx].set_quality(item.quality.get(idx, ()))
        self.setFocus()

    def _on_tab_changed(self, index: int) -> None:
        if index == 1:
            self.update_consistency()

    def update_consistency(self) -> None:
        """How often the expert agreed with themselves on blind re-checks (computed when shown)."""
        if self.project is None:
            self.consistency_label.clear()
            return
        summary = consistency_summary(consistency_checks(self.project))
        if not summary["checks"]:
            self.consistency_label.setText(
                "No re-checks yet: a share of judged items comes back blindly to measure your consistency."
            )
            return
        tau = f", mean Kendall τ {summary['mean_tau']:.2f}" if summary["mean_tau"] is not None else ""
        self.consistency_label.setText(
            f"Re-checks: {summary['checks']}; you agreed with yourself on {summary['agreement']:.0%} "
            f"(same best answer / same choice){tau}."
        )

    def _on_share_changed(self, value: int) -> None:
        if self.session is not None:
            self.session.set_consistency_share(value / 100.0)

    def _toggle_guidelines_edit(self) -> None:
        if self.project is None:
            return
        if self.guidelines_edit.isVisible():
            text = self.guidelines_edit.toPlainText()
            try:
                self.project.set_setting("guidelines", text)
            except UserError as exc:
                self.message.setText(str(exc))
                return
            self.guidelines_view.show_text(text)
            self.guidelines_edit.hide()
            self.guidelines_view.show()
            self.guidelines_button.setText("Edit")
            self.setFocus()
        else:
            self.guidelines_edit.setPlainText(self.project.get_setting("guidelines", "") or "")
            self.guidelines_view.hide()
            self.guidelines_edit.show()
            self.guidelines_button.setText("Save")
            self.guidelines_edit.setFocus()

    def toggle_overlay(self) -> None:
        if self.overlay.isVisible():
            self.overlay.hide()
        else:
            self.overlay.open()
        self.setFocus()

    def _fill_diff(self) -> None:
        item = self.item
        if item is None or item.k < 2:
            return
        if self.mode == "pairwise" and item.pair is not None:
            labels = [
                ("A" if i == item.pair[0] else "B" if i == item.pair[1] else f"Candidate {i + 1}")
                for i in range(item.k)
            ]
            left, right = item.pair
        else:
            labels = [f"Candidate {i + 1}" for i in range(item.k)]
            left, right = 0, 1
        self.diff_view.set_texts(labels, [c.text for c in item.candidates], left, right)

    def toggle_diff(self) -> None:
        if self.item is None:
            return
        if self.center_stack.currentWidget() is self.diff_view:
            self.center_stack.setCurrentWidget(self.cards_widget)
            self.diff_view.clear()
        else:
            self._fill_diff()
            self.center_stack.setCurrentWidget(self.diff_view)
        self.setFocus()

    # ---- keyboard -----------------------------------------------------------------------------

    def _select(self, delta: int) -> None:
        if self.item is None:
            return
        self.selected = (self.selected + delta) % self.item.k
        self._refresh_state()

    def _handle_key(self, e: QKeyEvent) -> bool:
        """Returns True when the key is one of ours (and was handled)."""
        key, mods, text = e.key(), e.modifiers(), e.text()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        alt = bool(mods & Qt.KeyboardModifier.AltModifier)
        K = Qt.Key
        if self.overlay.isVisible():
            self.overlay.hide()
            return True
        if text == "?" or key == K.Key_Question:
            self.toggle_overlay()
            return True
        if key == K.Key_Escape:
            if self.center_stack.currentWidget() is self.diff_view:
                self.toggle_diff()
            return True
        if ctrl and key == K.Key_Z:
            self.undo()
            return True
        if ctrl and K.Key_1 <= key <= K.Key_3:
            self.set_mode(MODES[key - K.Key_1])
            return True
        if ctrl:
            return False
        if K.Key_F1 <= key <= K.Key_F9:
            k = key - K.Key_F1
            if k < len(self.flag_checks):
                self.flag_checks[k].toggle()
            return True
        if (alt and key == K.Key_Left) or text == ",":
            self.previous()
            return True
        if (alt and key == K.Key_Right) or text == ".":
            self.next()
            return True
        if alt or self.item is None:
            return False
        lower = text.lower()
        if lower == "s":
            self.skip()
            return True
        if lower == "d":
            self.toggle_diff()
            return True
        if lower == "g":
            self.tabs.setCurrentIndex(0 if self.tabs.currentIndex() == 1 else 1)
            return True
        if lower == "c":
            self.tabs.setCurrentIndex(0)
            self.comment.setFocus()
            return True
        self.message.clear()
        digit = key - K.Key_0 if K.Key_1 <= key <= K.Key_9 else None
        enter = key in (K.Key_Return, K.Key_Enter)
        if self.mode == "ranking":
            if digit is not None:
                if not self.builder.place(digit - 1):
                    self.message.setText(
                        f"Candidate {digit} is already placed or does not exist."
                        if digit <= self.item.k
                        else f"There is no candidate {digit}."
                    )
                self._refresh_state()
                return True
            if text in TIE_TEXTS:
                if not self.builder.tie():
                    self.message.setText("Place a candidate first; the tie key joins the next one to it.")
                self._refresh_state()
                return True
            if key == K.Key_Backspace:
                self.builder.undo()
                self._refresh_state()
                return True
            if enter:
                self.submit()
                return True
        elif self.mode == "pairwise":
            if lower in PAIRWISE_KEYS:
                self.submit_pairwise(PAIRWISE_KEYS[lower])
                return True
        elif self.mode == "rating":
            if digit is not None and RATING_MIN <= digit <= RATING_MAX:
                self.ratings[self.selected] = digit
                unrated = [i for i in range(self.item.k) if i not in self.ratings]
                if unrated:  # move on to the next card without a rating
                    after = [i for i in unrated if i > self.selected]
                    self.selected = (after or unrated)[0]
                self._refresh_state()
                return True
            if key in (K.Key_Right, K.Key_Down):
                self._select(1)
                return True
            if key in (K.Key_Left, K.Key_Up):
                self._select(-1)
                return True
            if key == K.Key_Backspace:
                self.ratings.pop(self.selected, None)
                self._refresh_state()
                return True
            if enter:
                self.submit()
                return True
        return False

    def event(self, e: QEvent) -> bool:
        t = e.type()
        if t == QEvent.Type.ShortcutOverride and self._is_ours(e):
            e.accept()  # our keys beat window-level shortcuts (e.g. a menu's Ctrl+Z) while we have focus
            return True
        if (
            t == QEvent.Type.KeyPress
            and e.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)
            and self.mode == "rating"
            and self.item is not None
            and not self.overlay.isVisible()
        ):
            back = e.key() == Qt.Key.Key_Backtab or bool(e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self._select(-1 if back else 1)
            return True
        return super().event(e)

    def _is_ours(self, e: QKeyEvent) -> bool:
        ctrl = bool(e.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if ctrl:
            return e.key() == Qt.Key.Key_Z or Qt.Key.Key_1 <= e.key() <= Qt.Key.Key_3
        if e.modifiers() & Qt.KeyboardModifier.AltModifier:
            return e.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right)
        return True  # plain keys: the page handles or ignores them

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if self._handle_key(e):
            e.accept()
        else:
            super().keyPressEvent(e)

    def eventFilter(self, obj, e) -> bool:
        # Esc in the comment or the guidelines editor gives the keys back to the page
        if e.type() == QEvent.Type.KeyPress and e.key() == Qt.Key.Key_Escape:
            self.setFocus()
            return True
        return super().eventFilter(obj, e)

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self.setFocus()


def _existing_pair_text(item: Item) -> str:
    """What the expert chose for this pair before, in terms of the sides shown now."""
    j = item.existing
    if j is None or item.pair is None:
        return ""
    if j.choice in ("tie", "both_bad"):
        said = "tie" if j.choice == "tie" else "both bad"
    else:
        winner = j.a if j.choice == "a" else j.b
        said = "A is better" if item.candidates[item.pair[0]].id == winner else "B is better"
    return f"You judged this pair before: {said}. A new choice replaces it."


def render_annotate_screens(out_dir, project, size=(1280, 800)) -> list[Path]:
    """Save `annotate.png` (a ranking of 4 in progress) and `pairwise.png` from the real page.
    Records nothing: the ranking is left unsubmitted."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = AnnotatePage()
    page.resize(*size)
    page.show()
    paths = []
    try:
        page.set_project(project)
        page.set_mode("ranking")
        app.processEvents()
        if page.item is not None:
            press = [Qt.Key.Key_3, Qt.Key.Key_1, Qt.Key.Key_Equal, Qt.Key.Key_4]
            texts = ["3", "1", "=", "4"]
            for key, text in zip(press, texts):
                page.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text))
        if page.flag_checks:
            page.flag_checks[min(2, len(page.flag_checks) - 1)].setChecked(True)
        _settle(app)
        paths.append(out / "annotate.png")
        page.grab().save(str(paths[-1]))
        page.set_mode("pairwise")
        _settle(app)
        paths.append(out / "pairwise.png")
        page.grab().save(str(paths[-1]))
    finally:
        page.set_project(None)
        page.close()
        page.deleteLater()
    return paths


def _settle(app) -> None:
    for _ in range(3):
        app.processEvents()
        time.sleep(0.01)
