"""The Evaluate page: runs to evaluate, the blind judging view, results and the comparison of training curves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
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
from core.evaluation.blind import EVAL_KIND, EvalSettings, prepare_blind_eval
from desktop.charts import LiveChart
from desktop.pages.base import Page
from desktop.pages.evaluate.judge_view import BlindJudgeView
from desktop.pages.evaluate.results import ResultsCanvas
from desktop.widgets.empty_state import EmptyState
from desktop.worker import JobProgressWidget


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
        self.prepare_button.setToolTip(
            "Generate one answer per held-out prompt from the base and from the "
            "tuned model, and queue them as blind pairs"
        )
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
        self.curves = LiveChart(
            title="", xlabel="step", empty_text="Tick runs on the left to overlay their training curves here."
        )
        self.run_list_empty = EmptyState(
            self.run_list, "No training runs yet: reward-model and policy runs from the Train page appear here."
        )
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
        while (
            self._refresh_wanted or (self.handle is not None and self.handle.running)
        ) and time.monotonic() < deadline:
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
            self.summary.setText(
                "No policy runs yet. Train a policy (Train page), then prepare a blind set "
                "here to compare it with its base model."
            )

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
                self.summary.setText(
                    "This policy run has no evaluation yet. Choose how many held-out prompts "
                    "to use and press <b>Prepare blind set</b>."
                )
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
        return EvalSettings(
            max_new_tokens=self.max_tokens.value(),
            temperature=self.temperature.value(),
            max_prompts=self.max_prompts.value(),
        )

    def prepare(self, seed: Optional[int] = None):
        """Start the blind-set job for the chosen policy run; returns the job handle."""
        run_id = self.selected_policy()
        if self.project is None or run_id is None:
            return None
        proj, settings = self.project, self.eval_settings()
        self.handle = self.run_job(
            lambda cancel: prepare_blind_eval(proj, run_id, cancel=cancel, seed=seed, settings=settings),
            "Preparing the blind set",
            on_finished=self._on_prepared,
            on_failed=self._on_failed,
            on_cancelled=self._on_job_cancelled,
        )
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
        self.handle = self.run_job(
            lambda cancel: R.build_report(proj, ev, cancel=cancel),
            "Building the report",
            on_finished=lambda rep, ev=ev: self._on_report(rep, ev),
            on_failed=self._on_failed,
            on_cancelled=self._on_job_cancelled,
        )
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
        self.handle = self.run_job(
            lambda cancel: R.export_report(proj, ev, folder, cancel=cancel),
            "Exporting the report",
            on_finished=self._on_exported,
            on_failed=self._on_failed,
            on_cancelled=self._on_job_cancelled,
        )
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
        return [
            self.run_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.run_list.count())
            if self.run_list.item(i).checkState() == Qt.CheckState.Checked
        ]

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
