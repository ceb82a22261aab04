"""The Evaluate page: prepare a blind A/B set for a policy run, judge it blind, see and export the
results, and overlay the training curves of chosen runs.

Everything here is presentation over core.evaluation: `prepare_blind_eval` and `build_report` run as jobs
on the worker; the judging view records through `record_evaluation` (each choice committed before the
next pair shows). The judging view never shows where a response came from: only "A" and "B", the text
and its word count. `set_project(None)` clears every view that shows decrypted text.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.evaluation import report as R
from core.evaluation.blind import (
    EVAL_KIND,
    BlindItem,
    EvalSettings,
    evaluation_queue,
    prepare_blind_eval,
    record_evaluation,
)
from desktop.charts import LiveChart
from desktop.pages.base import Page
from desktop.widgets.candidate_card import CandidateCard
from desktop.widgets.empty_state import EmptyState
from desktop.widgets.markdown_view import MarkdownView
from desktop.worker import JobProgressWidget

PAIR_KEYS = {Qt.Key.Key_A: "a", Qt.Key.Key_B: "b", Qt.Key.Key_T: "tie", Qt.Key.Key_X: "both_bad"}
PAIR_BUTTONS = (("a", "A is better  (A)"), ("b", "B is better  (B)"), ("tie", "Tie  (T)"),
                ("both_bad", "Both bad  (X)"))
MAX_FLAG_KEYS = 9


def _no_focus(*widgets: QWidget) -> None:
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.NoFocus)


def _muted(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def run_label(run) -> str:
    """A run as the combo boxes show it: numbers and names only (never config paths)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
    if run.kind == "policy":
        cfg = run.config.get("policy", {})
        steps = run.summary.get("steps")
        bits = [f"Run {run.id}", (cfg.get("algo") or "?").upper(), run.status]
        if steps is not None:
            bits.append(f"{steps} steps")
        return " · ".join(bits + [when])
    if run.kind == EVAL_KIND:
        n = len(run.config.get("items", []))
        return f"Eval {run.id} · {n} prompts · {when}"
    return f"Run {run.id} · {run.kind} · {run.status} · {when}"


# ---- the blind judging view --------------------------------------------------------------------------


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
            self.progress.setText(f"<b>Blind pair {min(judged + 1, self.total)} of {self.total}</b> · "
                                  f"{len(self.queue)} left")
        has = item is not None
        for w in (self.prompt_box, self.flags_widget, self.card_a, self.card_b, *self.buttons.values()):
            w.setVisible(has)
        self.done_label.setVisible(not has)
        self.undo_button.setEnabled(bool(self._undo))
        if not has:
            self.prompt_view.clear()
            self.card_a.clear()
            self.card_b.clear()
            self.done_label.setText("<h3>Every blind pair of this evaluation is judged.</h3>"
                                    "Go back to see the results (Esc).")
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
        jid = record_evaluation(self.project, self.item, result, flags=flags, comment=self.comment.text().strip(),
                                seconds=round(time.monotonic() - self.shown_at, 3))
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


# ---- the results charts ---------------------------------------------------------------------------------


class ResultsCanvas(QWidget):
    """The report's charts (the same drawing functions as the exported report) on one canvas.

    Rebuilding five axes costs matplotlib a good fraction of a second, so `show_report` only records the
    report; the figure is rebuilt once per event-loop turn, and only while the canvas is visible."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.figure = Figure(figsize=(9, 5), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.report: Optional[dict] = None
        self._drawn: object = ()  # the report the figure shows now (() = nothing drawn yet)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)
        self.rebuilds = 0

    def show_report(self, report: Optional[dict]) -> None:
        self.report = report
        if self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._timer.start()

    def flush(self, force: bool = False) -> None:
        """Rebuild the figure now if the report changed since it was drawn."""
        if not force and self._drawn == self.report:
            return
        self._drawn = self.report
        self.rebuilds += 1
        fig = self.figure
        fig.clear()
        grid = fig.add_gridspec(2, 3, width_ratios=[1, 1.1, 1.1])
        rep = self.report or {}
        R.draw_outcomes(fig.add_subplot(grid[0, 0]), rep)
        R.draw_win_rate(fig.add_subplot(grid[0, 1]), rep)
        R.draw_rewards(fig.add_subplot(grid[0, 2]), rep)
        R.draw_flags(fig.add_subplot(grid[1, 0]), rep)
        R.draw_calibration(fig.add_subplot(grid[1, 1:]), rep)
        self._apply_palette()
        self.canvas.draw_idle()

    def _apply_palette(self) -> None:
        pal = self.palette()
        bg = pal.color(QPalette.ColorRole.Window).name()
        fg = pal.color(QPalette.ColorRole.WindowText).name()
        grid = pal.color(QPalette.ColorRole.Mid).name()
        self.figure.set_facecolor(bg)
        for ax in self.figure.axes:
            ax.set_facecolor(bg)
            for spine in ax.spines.values():
                spine.set_color(grid)
            ax.tick_params(colors=fg, labelsize=8.5)
            ax.title.set_color(fg)
            ax.xaxis.label.set_color(fg)
            ax.yaxis.label.set_color(fg)
            for text in ax.texts:
                if text.get_color() in ("black", "#000000", "k"):
                    text.set_color(fg)
            legend = ax.get_legend()
            if legend is not None:
                for text in legend.get_texts():
                    text.set_color(fg)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.PaletteChange and self._drawn != ():
            self._drawn = ()
            self.show_report(self.report)
        super().changeEvent(event)


# ---- the page -------------------------------------------------------------------------------------------


class EvaluatePage(Page):
    title = "Evaluate"
    report_ready = Signal(object)  # the report dict shown

    def __init__(self, app_context=None, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        self.report: Optional[dict] = None
        self.handle = None
        self._refresh_wanted = False
        self._stale = False
        self._runs_seen: tuple = ()
        self._build()
        self.set_project(None)
        if hasattr(app_context, "content_changed"):
            app_context.content_changed.connect(self._content_changed)

    # ---- layout ---------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.policy_combo = QComboBox()
        self.policy_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.policy_combo.setMinimumContentsLength(22)
        self.policy_combo.setPlaceholderText("no policy run yet: train one on the Train page")
        self.policy_combo.currentIndexChanged.connect(self._on_policy_changed)
        self.max_prompts = QSpinBox()
        self.max_prompts.setRange(0, 100_000)
        self.max_prompts.setSpecialValueText("all")
        self.max_prompts.setToolTip("How many held-out prompts to use (all, or a random subset)")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setSpecialValueText("greedy")
        self.temperature.setToolTip("Decoding for both models: greedy, or sampling at this temperature")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(0, 4096)
        self.max_tokens.setSpecialValueText("as trained")
        self.max_tokens.setToolTip("Most tokens per answer (default: the policy run's own limit)")
        self.prepare_button = QPushButton("Prepare blind set")
        self.prepare_button.setToolTip("Generate one answer per held-out prompt from the base and from the "
                                       "tuned model, and queue them as blind pairs")
        self.prepare_button.clicked.connect(self.prepare)

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Policy run:"))
        row1.addWidget(self.policy_combo, 1)
        row1.addWidget(QLabel("Prompts:"))
        row1.addWidget(self.max_prompts)
        row1.addWidget(QLabel("Decoding:"))
        row1.addWidget(self.temperature)
        row1.addWidget(QLabel("Max tokens:"))
        row1.addWidget(self.max_tokens)
        row1.addWidget(self.prepare_button)

        self.eval_combo = QComboBox()
        self.eval_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.eval_combo.setMinimumContentsLength(22)
        self.eval_combo.setPlaceholderText("none yet: press Prepare blind set")
        self.eval_combo.currentIndexChanged.connect(self._on_eval_changed)
        self.judge_button = QPushButton("Judge blind pairs")
        self.judge_button.clicked.connect(self.open_judging)
        self.refresh_button = QPushButton("Refresh results")
        self.refresh_button.setToolTip("Recount and score both models with the reward model")
        self.refresh_button.clicked.connect(self.refresh_report)
        self.export_button = QPushButton("Export report…")
        self.export_button.clicked.connect(self.export_dialog)
        self.job_widget = JobProgressWidget(None, hide_when_idle=True)
        # a long progress message must never widen the page (it sits beside the navigation)
        self.job_widget.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.job_widget.layout().setStretch(0, 2)  # ...but it keeps a share: "loading the tuned model", etc.
        self.job_widget.layout().setStretch(1, 3)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Evaluation:"))
        row2.addWidget(self.eval_combo, 1)
        row2.addWidget(self.judge_button)
        row2.addWidget(self.refresh_button)
        row2.addWidget(self.export_button)

        # results tab
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.results = ResultsCanvas()
        results_tab = QWidget()
        rl = QVBoxLayout(results_tab)
        rl.setContentsMargins(4, 4, 4, 4)
        rl.addWidget(self.summary)
        rl.addWidget(self.results, 1)

        # compare tab: overlay the training curves of chosen runs
        self.run_list = QListWidget()
        self.run_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.run_list.itemChanged.connect(self._refresh_curves)
        self.metric_combo = QComboBox()
        self.metric_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.metric_combo.setMinimumContentsLength(12)
        self.metric_combo.currentIndexChanged.connect(self._draw_curves)
        self.curves = LiveChart(title="", xlabel="step",
                                empty_text="Tick runs on the left to overlay their training curves here.")
        self.run_list_empty = EmptyState(self.run_list, "No training runs yet: reward-model and policy runs "
                                                        "from the Train page appear here.")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("<b>Runs to compare</b>"))
        ll.addWidget(self.run_list, 1)
        ll.addWidget(QLabel("Metric:"))
        ll.addWidget(self.metric_combo)
        compare_split = QSplitter(Qt.Orientation.Horizontal)
        compare_split.addWidget(left)
        compare_split.addWidget(self.curves)
        compare_split.setSizes([300, 800])
        compare_split.setChildrenCollapsible(False)

        self.tabs = QTabWidget()
        self.tabs.addTab(results_tab, "Results")
        self.tabs.addTab(compare_split, "Compare training runs")

        self.main = QWidget()
        ml = QVBoxLayout(self.main)
        ml.setContentsMargins(8, 8, 8, 8)
        ml.addLayout(row1)
        ml.addLayout(row2)
        ml.addWidget(self.job_widget)
        ml.addWidget(self.tabs, 1)

        self.judge_view = BlindJudgeView()
        self.judge_view.judged.connect(self._on_judged)
        self.judge_view.closed.connect(self.close_judging)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.main)
        self.stack.addWidget(self.judge_view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    def run_job(self, make_job, title: str = "", **callbacks):
        """Through the app's runner (status bar, cancel on close); a page of its own uses a private one."""
        if self.app_context is not None:
            return super().run_job(make_job, title, **callbacks)
        if getattr(self, "_runner", None) is None:
            from desktop.worker import JobRunner

            self._runner = JobRunner(self)
        return self._runner.start(make_job, title, **callbacks)

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Process events until the page's job has ended (screenshots and tests)."""
        deadline = time.monotonic() + timeout_s
        while (self._refresh_wanted or (self.handle is not None and self.handle.running)) \
                and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)
        QApplication.processEvents()

    # ---- project --------------------------------------------------------------------------------------

    def set_project(self, project) -> None:
        super().set_project(project)
        if self.handle is not None and self.handle.running:
            self.handle.cancel()
        self._refresh_wanted = False
        self._stale = False
        self._runs_seen = ()
        self.judge_view.clear()
        self.stack.setCurrentWidget(self.main)
        self.report = None
        self.results.show_report(None)
        self.curves.clear()
        self.run_list.clear()
        self.metric_combo.clear()
        self.policy_combo.clear()
        self.eval_combo.clear()
        if project is None:
            self.summary.setText("No project is open.")
            self._update_buttons()
            return
        self.reload_runs()

    def reload_runs(self, select_eval: Optional[int] = None) -> None:
        """Fill the run choosers from the project (numbers and names only)."""
        if self.project is None:
            return
        self._runs_seen = self._runs_signature()
        current = self.selected_policy()
        self.policy_combo.blockSignals(True)
        self.policy_combo.clear()
        policy_runs = [r for r in self.project.runs(kind="policy")]
        for run in policy_runs:
            self.policy_combo.addItem(run_label(run), run.id)
        if select_eval is not None:
            current = self.project.run(select_eval).config.get("policy_run", current)
        idx = self.policy_combo.findData(current) if current is not None else -1
        self.policy_combo.setCurrentIndex(idx if idx >= 0 else self.policy_combo.count() - 1)
        self.policy_combo.blockSignals(False)
        self._fill_evals(select_eval)
        self._fill_run_list()
        if not policy_runs:
            self.summary.setText("No policy runs yet. Train a policy (Train page), then prepare a blind set "
                                 "here to compare it with its base model.")

    def _fill_evals(self, select_eval: Optional[int] = None) -> None:
        self.eval_combo.blockSignals(True)
        self.eval_combo.clear()
        pid = self.selected_policy()
        if pid is not None:
            for run in self.project.runs(kind=EVAL_KIND):
                if run.config.get("policy_run") == pid:
                    self.eval_combo.addItem(run_label(run), run.id)
        idx = self.eval_combo.findData(select_eval) if select_eval is not None else -1
        self.eval_combo.setCurrentIndex(idx if idx >= 0 else self.eval_combo.count() - 1)
        self.eval_combo.blockSignals(False)
        self._on_eval_changed()

    def selected_policy(self) -> Optional[int]:
        return self.policy_combo.currentData() if self.policy_combo.count() else None

    def selected_eval(self) -> Optional[int]:
        return self.eval_combo.currentData() if self.eval_combo.count() else None

    def _on_policy_changed(self, *_) -> None:
        if self.project is not None:
            self._fill_evals()

    def _on_eval_changed(self, *_) -> None:
        self.report = None
        self.results.show_report(None)
        ev = self.selected_eval()
        if self.project is None:
            return
        if ev is None:
            if self.selected_policy() is not None:
                self.summary.setText("This policy run has no evaluation yet. Choose how many held-out prompts "
                                     "to use and press <b>Prepare blind set</b>.")
            self._update_buttons()
            return
        self.show_report(self._quick_report(ev))
        if self.isVisible():
            self.refresh_report()
        else:  # the full report loads the reward model: only once someone looks at this page
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.project is None:
            return
        if self._runs_seen != self._runs_signature():  # e.g. a policy run finished on the Train page
            seen = {rid for rid, _ in self._runs_seen}
            new_evals = [r.id for r in self.project.runs(kind=EVAL_KIND) if r.id not in seen]
            self.reload_runs(select_eval=new_evals[-1] if new_evals else self.selected_eval())
        elif self._stale:
            self.refresh_report()

    def _content_changed(self, what: str) -> None:
        """A judgment (the expert's consistency, the reward model's held-out accuracy), an import or a run
        ended elsewhere: follow now if shown, else when next shown (the full report loads a model)."""
        if self.project is None:
            return
        if not self.isVisible():
            self._stale = self._stale or self.selected_eval() is not None
        elif self._runs_seen != self._runs_signature() and not (self.handle is not None and self.handle.running):
            self.reload_runs(select_eval=self.selected_eval())

    def _runs_signature(self) -> tuple:
        return tuple((r.id, r.status) for r in self.project.runs()) if self.project is not None else ()

    def _quick_report(self, eval_run: int) -> dict:
        """Counts only (no model): instant, so the page follows each judgment at once."""
        rep = dict(self.report or {})
        rep.setdefault("format", R.FORMAT)
        rep["eval"] = R.eval_section(self.project, eval_run)
        if rep.get("reward") and rep["reward"].get("eval_run") not in (None, eval_run):
            rep["reward"] = None
        return rep

    def _update_buttons(self) -> None:
        busy = self.handle is not None and self.handle.running
        has_project = self.project is not None
        self.prepare_button.setEnabled(has_project and not busy and self.selected_policy() is not None)
        ev = self.selected_eval()
        pending = (self.report or {}).get("eval", {}) or {}
        n = pending.get("pending") if pending.get("run") == ev else None
        self.judge_button.setEnabled(has_project and ev is not None)
        self.judge_button.setText("Judge blind pairs" + (f" ({n} left)" if n else ""))
        self.refresh_button.setEnabled(has_project and not busy and ev is not None)
        self.export_button.setEnabled(has_project and not busy and ev is not None)

    # ---- preparing --------------------------------------------------------------------------------------

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(max_new_tokens=self.max_tokens.value(), temperature=self.temperature.value(),
                            max_prompts=self.max_prompts.value())

    def prepare(self, seed: Optional[int] = None):
        """Start the blind-set job for the chosen policy run; returns the job handle."""
        run_id = self.selected_policy()
        if self.project is None or run_id is None:
            return None
        proj, settings = self.project, self.eval_settings()
        self.handle = self.run_job(
            lambda cancel: prepare_blind_eval(proj, run_id, cancel=cancel, seed=seed, settings=settings),
            "Preparing the blind set", on_finished=self._on_prepared, on_failed=self._on_failed,
            on_cancelled=self._on_job_cancelled)
        self._follow(self.handle)
        return self.handle

    def _follow(self, handle) -> None:
        self.job_widget.follow(handle)
        handle.done.connect(self._after_job)
        self._update_buttons()

    def _after_job(self) -> None:
        self._update_buttons()
        if self._refresh_wanted:
            self._refresh_wanted = False
            self.refresh_report()

    def _on_prepared(self, result) -> None:
        self.reload_runs(select_eval=result.eval_run)
        if self.app_context is not None:  # a new run, and held-out prompts gained candidates (Data page)
            self.app_context.notify_changed("run")
        extra = f" {result.identical} identical pairs count as ties." if result.identical else ""
        self.summary.setText(f"{result.items} blind pairs are ready.{extra} Press <b>Judge blind pairs</b>.")

    def _on_failed(self, exc: BaseException) -> None:
        self._update_buttons()
        self.show_error(exc)

    def _on_job_cancelled(self) -> None:
        self._update_buttons()

    # ---- judging ----------------------------------------------------------------------------------------

    def open_judging(self) -> None:
        ev = self.selected_eval()
        if self.project is None or ev is None:
            return
        self.judge_view.start(self.project, ev)
        self.stack.setCurrentWidget(self.judge_view)
        self.judge_view.setFocus()

    def close_judging(self) -> None:
        self.judge_view.clear()
        self.stack.setCurrentWidget(self.main)
        if self.project is not None and self.selected_eval() is not None:
            self.show_report(self._quick_report(self.selected_eval()))

    def _on_judged(self) -> None:
        if self.project is not None and self.selected_eval() is not None:
            self.show_report(self._quick_report(self.selected_eval()))

    # ---- results ----------------------------------------------------------------------------------------

    def refresh_report(self):
        """Rebuild the full report (reward-model scores, consistency, cycles) on the worker."""
        ev = self.selected_eval()
        if self.project is None or ev is None:
            return None
        self._stale = False
        if self.handle is not None and self.handle.running:
            self._refresh_wanted = True  # once the running job ends
            return None
        proj = self.project
        self.handle = self.run_job(lambda cancel: R.build_report(proj, ev, cancel=cancel), "Building the report",
                                   on_finished=lambda rep, ev=ev: self._on_report(rep, ev), on_failed=self._on_failed,
                                   on_cancelled=self._on_job_cancelled)
        self._follow(self.handle)
        return self.handle

    def _on_report(self, report: dict, eval_run: int) -> None:
        if self.project is None or self.selected_eval() != eval_run:
            return
        if report.get("reward") is not None:
            report["reward"]["eval_run"] = eval_run
        self.show_report(report)

    def show_report(self, report: Optional[dict]) -> None:
        self.report = report
        self.results.show_report(report)
        if report:
            lines = R.summary_lines(report)
            # Plain-words warnings first (e.g. the run barely changed the model), with what to try.
            notes = "".join(f"<p style='color:#b23b3b'><b>{n}</b></p>" for n in R.notices(report))
            self.summary.setText(notes + "<br>".join(lines))
        self._update_buttons()
        self.report_ready.emit(report)

    def export_dialog(self) -> None:
        ev = self.selected_eval()
        if self.project is None or ev is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Export the report to a folder")
        if folder:
            self.export_to(folder)

    def export_to(self, folder):
        """Write the report (JSON, PNG, PDF) for the chosen eval run into `folder` (a job)."""
        ev = self.selected_eval()
        if self.project is None or ev is None:
            return None
        proj = self.project
        self.handle = self.run_job(lambda cancel: R.export_report(proj, ev, folder, cancel=cancel),
                                   "Exporting the report", on_finished=self._on_exported, on_failed=self._on_failed,
                                   on_cancelled=self._on_job_cancelled)
        self._follow(self.handle)
        return self.handle

    def _on_exported(self, paths) -> None:
        self.summary.setText(self.summary.text() + f"<br><i>Report written to {Path(paths['pdf']).parent}</i>")

    # ---- comparing training runs -------------------------------------------------------------------------

    def _fill_run_list(self) -> None:
        self.run_list.blockSignals(True)
        checked = set(self.checked_runs())
        self.run_list.clear()
        runs = [r for r in self.project.runs() if r.kind in ("policy", "reward")]
        for run in runs:
            item = QListWidgetItem(run_label(run))
            item.setData(Qt.ItemDataRole.UserRole, run.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if run.id in checked else Qt.CheckState.Unchecked)
            self.run_list.addItem(item)
        self.run_list.blockSignals(False)
        self._refresh_curves()

    def checked_runs(self) -> list[int]:
        return [self.run_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.run_list.count())
                if self.run_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_compared_runs(self, run_ids: list[int], metric: Optional[str] = None) -> None:
        self.run_list.blockSignals(True)
        for i in range(self.run_list.count()):
            item = self.run_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in run_ids
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.run_list.blockSignals(False)
        self._refresh_curves()
        if metric is not None:
            idx = self.metric_combo.findText(metric)
            if idx >= 0:
                self.metric_combo.setCurrentIndex(idx)

    def _refresh_curves(self, *_) -> None:
        """Metric names present in the chosen runs; keep the chosen metric when it is still there."""
        if self.project is None:
            return
        self._metrics = {rid: self.project.metrics(rid) for rid in self.checked_runs()}
        names = sorted({n for m in self._metrics.values() for n in m if not n.startswith("run/")})
        current = self.metric_combo.currentText()
        self.metric_combo.blockSignals(True)
        self.metric_combo.clear()
        self.metric_combo.addItems(names)
        for preferred in (current, "reward/mean", "loss/train", "loss/policy"):
            if preferred in names:
                self.metric_combo.setCurrentText(preferred)
                break
        self.metric_combo.blockSignals(False)
        self._draw_curves()

    def _draw_curves(self, *_) -> None:
        self.curves.clear()
        metric = self.metric_combo.currentText()
        if not metric:
            return
        for rid, metrics in getattr(self, "_metrics", {}).items():
            if metric in metrics:
                self.curves.add_points({f"run {rid}: {metric}": list(metrics[metric])})

    def curve_series(self) -> dict:
        return self.curves.series()


# ---- screenshots -----------------------------------------------------------------------------------------


def _screen_page(project, size):
    page = EvaluatePage()
    page.resize(*size)
    page.show()
    page.set_project(project)
    return page


def _close_screen_page(page) -> None:
    page.wait_idle(30)
    page.set_project(None)
    page.close()
    page.deleteLater()


def render_judge_screen(out_dir, project, eval_run: int, size=(1280, 800)) -> Path:
    """Save `evaluate_judge.png`: the blind judging view on the first pending pair. Records nothing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = _screen_page(project, size)
    try:
        page.reload_runs(select_eval=eval_run)
        page.wait_idle(120)
        page.open_judging()
        _settle(app)
        path = out / "evaluate_judge.png"
        page.grab().save(str(path))
    finally:
        _close_screen_page(page)
    return path


def render_evaluate_screens(out_dir, project, eval_run: int, compare_runs=(), metric: Optional[str] = None,
                            size=(1280, 800)) -> list[Path]:
    """Save `evaluate.png` (results) and `evaluate_compare.png` (training curves of `compare_runs`)
    from the real page. Records nothing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = _screen_page(project, size)
    paths = []
    try:
        page.reload_runs(select_eval=eval_run)
        page.wait_idle(120)
        _settle(app)
        page.results.flush()
        _settle(app)
        paths.append(out / "evaluate.png")
        page.grab().save(str(paths[-1]))
        page.tabs.setCurrentIndex(1)
        page.set_compared_runs(list(compare_runs), metric)
        page.curves._redraw()
        _settle(app)
        page.curves._redraw()
        _settle(app)
        paths.append(out / "evaluate_compare.png")
        page.grab().save(str(paths[-1]))
    finally:
        _close_screen_page(page)
    return paths


def _settle(app) -> None:
    for _ in range(4):
        app.processEvents()
        time.sleep(0.02)
