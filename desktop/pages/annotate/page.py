"""The Annotate page: a keyboard-first view over core.annotation.AnnotationSession.

Keys go to the page itself (cards, lists and buttons never take focus), so number keys rank even
while the mouse rests on a card; only the comment field and the guidelines editor take text, and Esc
gives the keys back. Every submit is recorded (and committed) by the session before the next item is
shown. `set_project(None)` clears every widget that shows decrypted text.

The page holds the state (the session, the item, the ranking being built, the ratings) and turns keys,
clicks and session results into what its parts show: the top bar (modes, progress, tools), the board
(board.py: prompt, cards, diff) and the side panel (side_panel.py, with ranking.py, pairwise.py and
rating.py). Their widgets are also attributes of the page (`page.rank_list`, `page.comment`, ...).
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
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
from desktop.pages.annotate.board import CandidateBoard
from desktop.pages.annotate.common import MODE_LABELS, SPLITS, TIE_TEXTS
from desktop.pages.annotate.common import no_focus as _no_focus
from desktop.pages.annotate.shortcuts import SHORTCUTS
from desktop.pages.annotate.side_panel import SidePanel
from desktop.pages.base import Page
from desktop.widgets.candidate_card import CandidateCard
from desktop.widgets.shortcut_overlay import ShortcutOverlay


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
        self.board = board = CandidateBoard()
        board.card_clicked.connect(self._on_card_clicked)
        board.card_rated.connect(self._on_card_rated)
        board.quality_overruled.connect(self._on_quality_overruled)

        # side panel: judge tab (mode panel, flags, comment, navigation) and guidelines tab
        self.tabs = SidePanel(self.assist)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        judge, guide = self.tabs.judge, self.tabs.guidelines
        self.ranking, self.pairwise, self.rating = judge.ranking, judge.pairwise, judge.rating
        # the parts' widgets, as the page's own attributes (the methods below, tests, bench, the assist)
        self.prompt_view = board.prompt_view
        self.cards_widget = board.cards_widget
        self.cards_layout = board.cards_layout
        self.diff_view = board.diff_view
        self.empty_label = board.empty_label
        self.center_stack = board.center_stack
        self.center_split = board.center_split
        self.message = board.message
        self.rank_list = self.ranking.rank_list
        self.rank_hint = self.ranking.rank_hint
        self.tie_label = self.ranking.tie_label
        self.submit_rank = self.ranking.submit_rank
        self.pair_buttons = self.pairwise.pair_buttons
        self.pair_existing = self.pairwise.pair_existing
        self.rating_summary = self.rating.rating_summary
        self.submit_rate = self.rating.submit_rate
        self.mode_stack = judge.mode_stack
        self.flags_box = judge.flags_box
        self.flags_layout = judge.flags_layout
        self.comment = judge.comment
        self.prev_button = judge.prev_button
        self.skip_button = judge.skip_button
        self.next_button = judge.next_button
        self.undo_button = judge.undo_button
        self.guidelines_view = guide.guidelines_view
        self.guidelines_edit = guide.guidelines_edit
        self.guidelines_button = guide.guidelines_button
        self.split_combo = guide.split_combo
        self.share_spin = guide.share_spin
        self.consistency_label = guide.consistency_label

        self.ranking.rows_moved.connect(self._on_rows_moved)
        self.ranking.ties_changed.connect(self._on_item_changed)
        self.submit_rank.clicked.connect(self.submit)
        self.pairwise.chosen.connect(self.submit_pairwise)
        self.submit_rate.clicked.connect(self.submit)
        self.comment.returnPressed.connect(self.setFocus)
        self.prev_button.clicked.connect(self.previous)
        self.skip_button.clicked.connect(self.skip)
        self.next_button.clicked.connect(self.next)
        self.undo_button.clicked.connect(self.undo)
        self.guidelines_button.clicked.connect(self._toggle_guidelines_edit)
        self.split_combo.currentIndexChanged.connect(self._on_split_changed)
        self.share_spin.valueChanged.connect(self._on_share_changed)
        for w in (self.comment, self.guidelines_edit, self.share_spin):  # Esc there gives the keys back
            w.installEventFilter(self)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(board)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 330])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    @property
    def _cards(self) -> list[CandidateCard]:
        return self.board.cards

    @property
    def flag_checks(self) -> list[QCheckBox]:
        return self.tabs.judge.flag_checks

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
        self.tabs.judge.add_flags(self.tags)
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
        self.board.clear_texts()
        self.diff_view.clear()
        self.rank_list.clear()
        self.comment.setText("")  # setText (not clear) also drops the undo history holding the old text
        self.tabs.guidelines.clear()
        self.rating_summary.clear()
        self.pair_existing.clear()
        self.progress_label.clear()
        self.message.clear()
        self.assist.clear()
        self.tabs.judge.clear_flags()
        self.builder = RankingBuilder(0)
        self.ratings = {}

    def _show_empty(self, text: str) -> None:
        self.board.show_message(text)
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

    def _show(self, item: Optional[Item]) -> None:
        self.item = item
        self.message.clear()
        self.overlay.hide()
        if item is None:
            self.board.clear_texts()
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
        self.board.ensure_cards(item.k)
        if self.mode == "pairwise" and item.pair is not None:
            shown = list(item.pair)
            for side, idx in zip("AB", shown):
                self._cards[idx].set_candidate(idx, item.candidates[idx].text, label=side)
        else:
            shown = list(range(item.k))
            for idx in shown:
                self._cards[idx].set_candidate(idx, item.candidates[idx].text)
        self.board.layout_cards(shown)
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
        self.pairwise.show_existing(item if self.mode == "pairwise" else None)
        if self.board.showing_diff():
            self._fill_diff()
        else:
            self.center_stack.setCurrentWidget(self.cards_widget)
        if item.k == 0 or (item.k < 2 and self.mode != "rating"):  # prompts imported alone, not generated yet
            self.board.show_message(
                f"This prompt has {'no candidate replies' if not item.k else 'only one candidate reply'} yet: "
                "nothing to compare. Generate candidates on the Models page (Generate candidates…) or import "
                "replies on the Data page; Skip (S) moves on."
            )
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
            self.ranking.show_builder(self.builder, self._snippet)
        elif self.mode == "rating":
            for i in range(item.k):
                card = self._cards[i]
                v = self.ratings.get(i)
                card.set_rating(v)
                card.set_badge(f"{v}/{RATING_MAX}" if v else "", "neutral")
                card.set_selected(i == self.selected)
                card.set_placed(v is not None)
            self.rating.show_summary(len(self.ratings), item.k, self.selected)
        else:
            for i in range(item.k):
                self._cards[i].set_badge("")
                self._cards[i].set_selected(False)
                self._cards[i].set_placed(False)
        self.undo_button.setEnabled(self.session is not None and self.session.can_undo)

    def _snippet(self, idx: int, n: int = 48) -> str:
        text = " ".join(self.item.candidates[idx].text.split()) if self.item else ""
        return text if len(text) <= n else text[: n - 1] + "…"

    def _update_progress(self) -> None:
        if self.session is None:
            self.progress_label.clear()
            return
        self.progress_label.setText(self.session.progress.text() + self.assist.status_suffix())

    # ---- mouse: drag and drop, checkboxes, cards -----------------------------------------------

    def _on_rows_moved(self) -> None:
        """A drop makes the list's order the ranking (every candidate placed). Applied after the drop
        has finished: rebuilding the list inside the view's own drop handler is unsafe."""
        if self.item is None or self.mode != "ranking":
            return
        QTimer.singleShot(0, self._apply_list_order)

    def _apply_list_order(self) -> None:
        if self.item is None or self.mode != "ranking" or self.rank_list.count() != self.item.k:
            return
        order, tied = self.ranking.list_state()
        self.builder.set_order(order, tied)
        self._refresh_state()

    def _on_item_changed(self) -> None:
        """A tie box was ticked or cleared: the placed rows' ties as the list shows them."""
        if self.item is None or self.mode != "ranking":
            return
        order, tied = self.ranking.list_state()
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
        self.board.forget_layout()
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
        if self.tabs.guidelines.editing():
            text = self.guidelines_edit.toPlainText()
            try:
                self.project.set_setting("guidelines", text)
            except UserError as exc:
                self.message.setText(str(exc))
                return
            self.tabs.guidelines.show_guidelines(text)
            self.setFocus()
        else:
            self.tabs.guidelines.start_editing(self.project.get_setting("guidelines", "") or "")

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
        if self.board.showing_diff():
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
            if self.board.showing_diff():
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
