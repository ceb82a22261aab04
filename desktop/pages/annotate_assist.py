"""The Annotate page's queue order, model check after a submit, and review list (issue 12).

A thin view over core.active: every computation is a core job run on a worker (quiet: it does not
take over the status bar), so the GUI thread never waits for a model.

- **Queue order** (top bar): "Project order" (default) or "Most informative first". With the informative
  order, `refresh_queue` runs in the background when the page opens the project, when the order is
  chosen and after every REFRESH_EVERY judgments; its result is applied to the session when it arrives
  (the item on screen stays).
- **Model check** (Judge tab, under the buttons): after a judgment is recorded - never before - the
  model's view of it ("the model would have ranked 3 first"). It is hidden whenever the prompt it is
  about is on screen again, so it can never anchor a judgment of that prompt.
- **Review** tab: the judgments a model that never saw them disagrees with most; Enter or a double
  click shows one again (with the expert's own judgment prefilled) to confirm or correct it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.active import DEFAULT_POOL, ORDER_LABELS, ORDERS, ModelCache, explain_judgment, refresh_queue, review_list

REFRESH_EVERY = 10
MODEL_CHECK_SETTING = "annotation.model_check"
REVIEW_LIMIT = 100


class AnnotateAssist(QObject):
    def __init__(self, page):
        super().__init__(page)
        self.page = page
        self.cache = ModelCache()
        self.order: Any = None  # the core.active.QueueOrder last computed (ready or not)
        self._handles: dict[str, Any] = {}
        self._pending_refresh = False
        self._since_refresh = 0
        self._note_pid: Optional[int] = None
        self._note_text = ""
        self._own_runner = None
        self.pool_size = DEFAULT_POOL  # unjudged prompts the refresh scores (a sample on a big project)

        self.order_combo = QComboBox()
        for order in ORDERS:
            self.order_combo.addItem(ORDER_LABELS[order], order)
        self.order_combo.setToolTip(
            "Which prompt comes next. Most informative first: once a few prompts are judged, a small "
            "model of your judgments picks the prompts whose ranking would teach the reward model most "
            "(refreshed in the background every few judgments)."
        )
        self.order_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.order_combo.currentIndexChanged.connect(self._on_order_chosen)
        self.order_status = QLabel()
        self.order_status.setWordWrap(True)
        self.order_status.setForegroundRole(self.order_status.foregroundRole())

        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.hide()
        self.check_box = QCheckBox("Model check after each judgment")
        self.check_box.setToolTip(
            "After you submit (never before), say where a model of your other judgments would have ranked differently."
        )
        self.check_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.check_box.setChecked(True)
        self.check_box.toggled.connect(self._on_check_toggled)

        self.review_tab = QWidget()
        self.review_button = QPushButton("Find judgments to review")
        self.review_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.review_button.clicked.connect(self.start_review)
        self.review_status = QLabel(
            "Judgments a model of your other judgments disagrees with most: a slip of "
            "the key, or a case worth a second look. Enter or double-click shows one again."
        )
        self.review_status.setWordWrap(True)
        self.review_list = QListWidget()
        self.review_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.review_list.setWordWrap(True)
        self.review_list.itemActivated.connect(self._open_review_item)
        self.review_list.itemDoubleClicked.connect(self._open_review_item)
        layout = QVBoxLayout(self.review_tab)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.review_status)
        layout.addWidget(self.review_button)
        layout.addWidget(self.review_list, 1)

    # ---- jobs ---------------------------------------------------------------------------------------

    def _run(self, key: str, make_job: Callable, title: str, on_finished: Callable) -> None:
        ctx = self.page.app_context
        if ctx is not None and hasattr(ctx, "run_job"):
            handle = ctx.run_job(make_job, title, on_finished=on_finished, on_failed=self._failed, quiet=True)
        else:  # a page on its own (tests, screenshots): its own worker pool
            if self._own_runner is None:
                from desktop.worker import JobRunner

                self._own_runner = JobRunner(self, max_threads=2)
            handle = self._own_runner.start(
                make_job, title, on_finished=on_finished, on_failed=self._failed, quiet=True
            )
        self._handles[key] = handle

    def running(self, key: str) -> bool:
        h = self._handles.get(key)
        return h is not None and h.running

    def handle(self, key: str):
        return self._handles.get(key)

    def _failed(self, exc: BaseException) -> None:
        # A model that cannot be built is no reason to interrupt the expert: say it quietly.
        from desktop.pages.base import error_text

        self.order_status.setText(f"The queue model could not run: {error_text(exc)}")

    def cancel_all(self) -> None:
        for h in self._handles.values():
            if h is not None and h.running:
                h.cancel()
        self._handles = {}
        self._pending_refresh = False

    # ---- project and session ------------------------------------------------------------------------

    def project_set(self, project) -> None:
        self.cancel_all()
        self.cache = ModelCache()
        self.order = None
        self._since_refresh = 0
        self.clear()
        session = self.page.session
        enabled = project is not None and session is not None
        for w in (self.order_combo, self.check_box, self.review_button):
            w.setEnabled(enabled)
        if not enabled:
            self.order_status.clear()
            return
        self.order_combo.blockSignals(True)
        self.order_combo.setCurrentIndex(ORDERS.index(session.order))
        self.order_combo.blockSignals(False)
        self.check_box.blockSignals(True)
        self.check_box.setChecked(bool(project.get_setting(MODEL_CHECK_SETTING, True)))
        self.check_box.blockSignals(False)
        self._update_status()
        if session.order == "informative":
            self.refresh()

    def session_changed(self) -> None:
        """The page made a new session (another split): recompute for it."""
        self.order = None
        self._update_status()
        if self.page.session is not None and self.page.session.order == "informative":
            self.refresh()

    def clear(self) -> None:
        """Drop everything shown that came from the project."""
        self.note.clear()
        self.note.hide()
        self._note_pid, self._note_text = None, ""
        self.review_list.clear()

    def _on_order_chosen(self, index: int) -> None:
        session = self.page.session
        if session is None or index < 0:
            return
        session.set_order(ORDERS[index])
        self._update_status()
        self.page._update_progress()
        if session.order == "informative":
            self.refresh()

    def _on_check_toggled(self, on: bool) -> None:
        if self.page.project is not None:
            self.page.project.set_setting(MODEL_CHECK_SETTING, bool(on))
        if not on:
            self.note.hide()

    # ---- the informative order ----------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute the informative order in the background (one at a time; a request while one runs
        is served when it ends)."""
        project, session = self.page.project, self.page.session
        if project is None or session is None:
            return
        if self.running("refresh"):
            self._pending_refresh = True
            return
        self._pending_refresh = False
        self._since_refresh = 0
        split, cache, pool = session.split, self.cache, self.pool_size
        self._run(
            "refresh",
            lambda cancel: refresh_queue(project, split=split, cache=cache, pool_size=pool, cancel=cancel),
            "Ordering the queue",
            lambda order, p=project, s=session: self._refreshed(p, s, order),
        )

    def _refreshed(self, project, session, order) -> None:
        if project is not self.page.project or session is not self.page.session:
            return  # the project was closed or the split changed meanwhile
        self.order = order
        session.apply_order(order)
        self._update_status()
        self.page._update_progress()
        if self._pending_refresh:
            self.refresh()

    def _update_status(self) -> None:
        session = self.page.session
        if session is None:
            self.order_status.clear()
            return
        if session.order == "project":
            self.order_status.setText("The queue follows the project's order.")
        elif self.order is not None and not self.order.ready:
            self.order_status.setText(self.order.reason)
        elif session.informative:
            self.order_status.setText((self.order or session.queue_order).text())
        else:
            self.order_status.setText("Ordering the queue in the background…")

    def status_suffix(self) -> str:
        """A few words for the progress line."""
        session = self.page.session
        if session is None or session.order == "project":
            return ""
        return " · most informative first" if session.informative else " · informative order pending"

    # ---- after a judgment: model check, refresh cadence ---------------------------------------------

    def after_submit(self) -> None:
        session, project = self.page.session, self.page.project
        last = session.last_recorded if session is not None else None
        if last is None or project is None:
            return
        jid, pid, purpose = last
        if purpose != "annotation":
            return  # a blind re-check stays blind: no comment on it
        self._since_refresh += 1
        if session.order == "informative" and self._since_refresh >= REFRESH_EVERY:
            self.refresh()
        if not self.check_box.isChecked():
            return
        cache = self.cache
        self._run(
            "explain",
            lambda cancel: explain_judgment(project, jid, cache=cache, cancel=cancel),
            "Model check",
            lambda view, p=project, s=session: self._explained(p, s, view),
        )

    def _explained(self, project, session, view) -> None:
        if project is not self.page.project or session is not self.page.session:
            return
        if view is None:
            self._note_pid, self._note_text = None, ""
            self.note.hide()
            return
        self._note_pid = view.prompt_id
        self._note_text = self._view_text(session, view)
        self.item_shown(self.page.item)

    def _view_text(self, session, view, short: bool = False) -> str:
        def shown(rid):
            i = session.display_index(view.prompt_id, rid)
            return str(i + 1) if i is not None else "another"

        if view.kind == "pairwise":
            said = (
                "the model would have chosen the other answer"
                if view.flipped
                else "the model would have chosen the same answer"
            )
        elif view.top_differs:
            you = ", ".join(shown(r) for r in view.expert_top)
            verb = "rated" if view.kind == "rating" else "ranked"
            said = f"the model would have {verb} {shown(view.model_top)} first (you: {you})"
        elif view.flipped:
            said = (
                f"the model agrees on the best one but orders {view.flipped} of your {view.pairs} pairs the other way"
            )
        else:
            said = "the model agrees with your order"
        if short:
            return said
        return f"Model check on your last judgment: {said}."

    def item_shown(self, item) -> None:
        """Called after the page shows an item: the note never shows beside the prompt it is about."""
        visible = (
            bool(self._note_text) and self.check_box.isChecked() and (item is None or item.prompt_id != self._note_pid)
        )
        self.note.setText(self._note_text if visible else "")
        self.note.setVisible(visible)

    # ---- review list --------------------------------------------------------------------------------

    def start_review(self) -> None:
        project = self.page.project
        if project is None or self.running("review"):
            return
        self.review_list.clear()
        self.review_status.setText("Looking for judgments to review…")
        cache = self.cache
        self._run(
            "review",
            lambda cancel: review_list(project, limit=REVIEW_LIMIT, cache=cache, cancel=cancel),
            "Review list",
            lambda views, p=project, s=self.page.session: self._reviewed(p, s, views),
        )

    def _reviewed(self, project, session, views) -> None:
        if project is not self.page.project or session is not self.page.session:
            return
        self.review_list.clear()
        shown = [v for v in views if v.flipped and (v.top_differs or v.disagreement >= 0.3)]
        if not views:
            self.review_status.setText("Nothing to review yet: the review needs a few judged prompts first.")
            return
        self.review_status.setText(
            f"{len(shown)} of {len(views)} judgments checked are worth a second look (most doubtful first; "
            "a model fit without each one judged it). Enter or double-click shows one again."
        )
        for v in shown:
            item = QListWidgetItem(
                f"Prompt #{v.prompt_id} · {v.kind}: {self._view_text(session, v, short=True)} · "
                f"model doubts {v.disagreement:.0%} of your pairs"
            )
            item.setData(Qt.ItemDataRole.UserRole, v.prompt_id)
            self.review_list.addItem(item)

    def _open_review_item(self, item: QListWidgetItem) -> None:
        pid = item.data(Qt.ItemDataRole.UserRole)
        if pid is not None:
            self.page.goto_prompt(int(pid))


def render_queue_screens(out_dir, project, size=(1280, 800)) -> list:
    """Save `annotate_queue.png` (the informative order chosen, a model check after a submit) and
    `annotate_review.png` (the Review tab's list) from the real page. Records one ranking."""
    import time
    from pathlib import Path

    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    from desktop.pages.annotate import AnnotatePage

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = AnnotatePage()
    page.resize(*size)
    page.show()

    def settle(until=None, timeout=120.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
            if until is None or until():
                if until is None:
                    return
                break
        for _ in range(3):
            app.processEvents()

    def idle(key):
        h = page.assist.handle(key)
        return h is not None and not h.running

    paths = []
    try:
        page.set_project(project)
        page.session.consistency_share = 0.0
        page.assist.order_combo.setCurrentIndex(ORDERS.index("informative"))
        settle(lambda: idle("refresh"))
        page.next()  # the queue's first pick
        item = page.item
        if item is not None:  # rank it, so the model check has something to say about
            for d in range(item.k - 1):
                page.keyPressEvent(
                    QKeyEvent(
                        QEvent.Type.KeyPress,
                        Qt.Key.Key_1 + item.k - 1 - d,
                        Qt.KeyboardModifier.NoModifier,
                        str(item.k - d),
                    )
                )
            page.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier, "\r"))
            settle(lambda: idle("explain"))
        page.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_2, Qt.KeyboardModifier.NoModifier, "2"))
        settle()
        paths.append(out / "annotate_queue.png")
        page.grab().save(str(paths[-1]))
        page.tabs.setCurrentIndex(2)
        page.assist.start_review()
        settle(lambda: idle("review"))
        if page.assist.review_list.count():
            page.assist.review_list.setCurrentRow(0)
        settle()
        paths.append(out / "annotate_review.png")
        page.grab().save(str(paths[-1]))
    finally:
        page.set_project(None)
        if page.assist._own_runner is not None:
            page.assist._own_runner.wait(60_000)
        page.close()
        page.deleteLater()
    return paths
