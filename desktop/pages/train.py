"""Train page: the reward model (Bradley–Terry on the expert's rankings) and the policy (PPO/RLOO/GRPO/DPO).

Each tab: choose the model and a preset, read the pre-flight check, Start; live charts, progress with ETA
and Cancel; Resume a cancelled run; the list of runs. Everything that computes — pre-flight checks (they
count parameters and read the judgments), training, scoring, export — is a core job (core.ops.training)
on the worker (desktop.worker). The page only turns Progress events into chart points and table rows.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView,
    QLabel, QMessageBox, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QTextBrowser,
    QVBoxLayout, QWidget,
)

from core.jobs import Progress
from core.ops.ml_imports import ml_job
from core.ops.training import (
    policy_preflight_job, policy_train_job, prompt_choices_job, reward_preflight_job, reward_train_job,
    score_prompt_job,
)
from desktop.charts import LiveChart
from desktop.config_form import ConfigDialog, changed_fields
from desktop.pages.base import Page, error_text
from desktop.pages.models import ask_export_model, registered_models
from desktop.widgets.empty_state import EmptyState
from desktop.worker import JobHandle, JobProgressWidget

REWARD_PRESETS = (("quick", "Quick"), ("balanced", "Balanced"), ("thorough", "Thorough"))
POLICY_PRESETS = REWARD_PRESETS
ALGORITHMS = (("ppo", "PPO"), ("rloo", "RLOO"), ("grpo", "GRPO"), ("dpo", "DPO"))
RESUMABLE = ("cancelled", "failed", "running")
OK_STYLE = ""
WARN_STYLE = "color: #d9534f;"


def json_copy(value):
    import json

    return json.loads(json.dumps(value))


# ======================================================================================================
# Small widgets
# ======================================================================================================


class ModelPicker(QWidget):
    """A combo of the project's registered models plus Browse… for any folder."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(16)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse)
        self.currentChanged = self.combo.currentIndexChanged

    def set_models(self, paths: list[str]) -> None:
        current = self.path()
        self.combo.blockSignals(True)
        self.combo.clear()
        for p in paths:
            self.combo.addItem(Path(p).name, p)
            self.combo.setItemData(self.combo.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        i = self.combo.findData(current) if current else -1
        self.combo.setCurrentIndex(i if i >= 0 else (0 if paths else -1))
        self.combo.blockSignals(False)

    def set_path(self, path: str) -> None:
        i = self.combo.findData(path)
        if i < 0:
            self.combo.addItem(Path(path).name, path)
            self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
            i = self.combo.count() - 1
        self.combo.setCurrentIndex(i)

    def path(self) -> str:
        return self.combo.currentData() or ""

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", str(Path.home()))
        if folder:
            self.set_path(folder)


def runs_table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setAlternatingRowColors(True)
    header = table.horizontalHeader()
    for i in range(len(columns)):
        header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def _item(text: str, data: Any = None, right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if data is not None:
        item.setData(Qt.ItemDataRole.UserRole, data)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _pct(v: Optional[float]) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _num(v: Optional[float], digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _warn(label: QLabel, text: str, warn: bool) -> None:
    label.setText(text)
    label.setStyleSheet(WARN_STYLE if warn else OK_STYLE)


def _steps_text(done: Optional[int], total: Optional[int]) -> str:
    if done is None:
        return ""
    return f"{done:,}" + (f" / {total:,}" if total and total != done else "")


class _Tab(QWidget):
    """What both tabs share: the page (jobs, errors), the project epoch, the job handle, the runs list."""

    kind = ""

    def __init__(self, page: "TrainPage"):
        super().__init__()
        self.page = page
        self.project = None
        self.epoch = 0
        self.handle: Optional[JobHandle] = None  # the training job
        self.preflight_handle: Optional[JobHandle] = None
        self.current_run: Optional[int] = None
        self.overrides: dict = {}
        self._preflight_seq = 0  # bumped by each pre-flight start; see _latest

    # jobs whose results belong to the project they started with
    def _guard(self, fn: Callable) -> Callable:
        epoch = self.epoch
        return lambda *a: fn(*a) if epoch == self.epoch and self.project is not None else None

    def _latest(self, fn: Callable) -> Callable:
        """Like _guard, and only for the newest pre-flight: an older check finishing late (the inputs
        changed meanwhile) must not overwrite the newer verdict and config."""
        seq = self._preflight_seq
        return self._guard(lambda *a: fn(*a) if seq == self._preflight_seq else None)

    @property
    def training(self) -> bool:
        return self.handle is not None and self.handle.running

    def selected_run(self) -> Optional[int]:
        rows = self.runs.selectionModel().selectedRows()
        if not rows:
            return None
        return self.runs.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def select_run(self, run_id: int) -> None:
        for r in range(self.runs.rowCount()):
            if self.runs.item(r, 0).data(Qt.ItemDataRole.UserRole) == run_id:
                self.runs.selectRow(r)
                return

    def _set_steps_cell(self, step: int, total: Optional[int]) -> None:
        """The running run's Steps cell follows the job (no store read per step)."""
        col = self.RUN_COLUMNS.index("Steps")
        for r in range(self.runs.rowCount()):
            if self.runs.item(r, 0).data(Qt.ItemDataRole.UserRole) == self.current_run:
                self.runs.item(r, col).setText(_steps_text(step, total))
                return

    # ---- training runs: launch, resume, outcome (the same for both tabs) ---------------------------------

    def resume(self, run_id: Optional[int] = None) -> Optional[JobHandle]:
        run_id = run_id or self.selected_run()
        if self.project is None or run_id is None or self.training:
            return None
        proj, train_job = self.project, self.train_job
        self._show_history(run_id)
        return self._launch(lambda cancel: train_job(proj, None, run_id, cancel),
                            f"Resuming {self.kind} run {run_id}", clear=False)

    def _launch(self, make_job, title: str, clear: bool = True) -> JobHandle:
        if clear:
            self._clear_views()
        self.status.setText("")
        self._t0 = time.monotonic()
        self.handle = self.page.run_job(make_job, title, on_progress=self._guard(self._on_progress),
                                        on_finished=self._guard(self._finished),
                                        on_failed=self._guard(self._failed),
                                        on_cancelled=self._guard(self._cancelled))
        self.handle.done.connect(self._update_buttons)
        self.handle.done.connect(self._guard(lambda: self.page.notify_run_ended()))  # other lists follow
        self.progress.follow(self.handle)
        self._update_buttons()
        return self.handle

    def _cancelled(self) -> None:
        self.refresh_runs()
        if self.current_run is not None:
            self.select_run(self.current_run)
        self.status.setText("Cancelled. The last checkpoint is kept: select the run and press Resume to continue.")

    def _failed(self, exc: BaseException) -> None:
        # Out of memory arrives as a UserError with advice: the run is marked failed, the GUI stays up.
        self.status.setText(error_text(exc))
        self.refresh_runs()
        self.page.show_error(exc, self.error_title)

    def _run_selected(self) -> None:
        self._update_buttons()
        run_id = self.selected_run()
        if run_id is not None and not self.training:
            self._show_history(run_id)

    def run_row(self, run_id: int) -> dict[str, str]:
        """The shown cells of a run's row by column name (tests and screenshots read them)."""
        for r in range(self.runs.rowCount()):
            if self.runs.item(r, 0).data(Qt.ItemDataRole.UserRole) == run_id:
                return {self.runs.horizontalHeaderItem(c).text(): self.runs.item(r, c).text()
                        for c in range(self.runs.columnCount())}
        raise KeyError(run_id)


# ======================================================================================================
# Reward model tab
# ======================================================================================================


class RewardTab(_Tab):
    kind = "reward"
    train_job = staticmethod(reward_train_job)
    error_title = "Reward model training"
    RUN_COLUMNS = ("Run", "Status", "Steps", "Val. acc.", "Held-out", "Base model")

    def __init__(self, page: "TrainPage"):
        super().__init__(page)
        self.config = None  # the RewardConfig Start uses (preset + overrides), from the last pre-flight
        self.preset_config = None
        self.preflight_ok = False
        self.scorers: dict[int, Any] = {}  # run id -> loaded RewardModel (dropped on lock)
        self.score_handle: Optional[JobHandle] = None
        self.last_scores: Optional[dict] = None

        splitter = QSplitter(Qt.Orientation.Horizontal)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(splitter)

        # ---- left: setup and runs
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        setup = QGroupBox("Train a reward model on your rankings")
        form = QFormLayout(setup)
        self.base = ModelPicker()
        self.base.currentChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Base model:", self.base)
        self.preset = QComboBox()
        for key, text in REWARD_PRESETS:
            self.preset.addItem(text, key)
        self.preset.setCurrentIndex(0)
        self.preset.setToolTip("Quick: a first model in minutes. Balanced: the default. Thorough: longer "
                               "sequences, more steps. Values are chosen for this device and your data size.")
        self.preset.currentIndexChanged.connect(lambda *_: self.run_preflight())
        self.advanced = QPushButton("Advanced…")
        self.advanced.setToolTip("Every hyperparameter of the run, starting from the preset's values.")
        self.advanced.clicked.connect(self.open_advanced)
        prow = QHBoxLayout()
        prow.addWidget(self.preset, 1)
        prow.addWidget(self.advanced)
        form.addRow("Preset:", prow)
        self.preflight_label = QLabel("")
        self.preflight_label.setWordWrap(True)
        self.preflight_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.preflight_label)
        brow = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(lambda: self.start())
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected cancelled or failed run from its last checkpoint.")
        self.resume_button.clicked.connect(lambda: self.resume())
        brow.addWidget(self.start_button)
        brow.addWidget(self.resume_button)
        brow.addStretch(1)
        form.addRow(brow)
        lv.addWidget(setup)

        runs_box = QGroupBox("Runs")
        rv = QVBoxLayout(runs_box)
        self.runs = runs_table(self.RUN_COLUMNS)
        self.runs.itemSelectionChanged.connect(self._run_selected)
        self.runs_empty = EmptyState(self.runs, "No reward-model runs yet. Rank a few prompts on the "
                                                "<b>Annotate</b> page, then press <b>Start</b>.")
        rv.addWidget(self.runs)
        lv.addWidget(runs_box, 1)
        from desktop.pages.learning_curve_box import LearningCurveBox

        self.curve_box = LearningCurveBox(self)  # held-out accuracy vs ranked prompts (core job)
        self.base.currentChanged.connect(lambda *_: self.curve_box.update_button())
        lv.addWidget(self.curve_box)
        splitter.addWidget(left)

        # ---- right: charts, progress, scoring
        right = QWidget()
        rvl = QVBoxLayout(right)
        rvl.setContentsMargins(6, 0, 0, 0)
        charts = QHBoxLayout()
        self.loss_chart = LiveChart(["loss/train", "loss/val"], title="Bradley–Terry loss",
                                    empty_text="No run yet: press Start, and the loss on your rankings "
                                               "(training and validation) is drawn here as it trains.")
        self.acc_chart = LiveChart(["accuracy/train", "accuracy/val"], title="Pairwise accuracy",
                                   empty_text="How often the model puts your preferred reply first, on "
                                              "training and on validation pairs, appears here as it trains.")
        charts.addWidget(self.loss_chart)
        charts.addWidget(self.acc_chart)
        rvl.addLayout(charts, 3)
        self.progress = JobProgressWidget(hide_when_idle=False)
        self.progress.cancel_button.setEnabled(False)
        rvl.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        rvl.addWidget(self.status)

        score_box = QGroupBox("What the reward model thinks")
        sv = QVBoxLayout(score_box)
        srow = QHBoxLayout()
        self.score_run = QComboBox()
        self.score_run.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.score_run.setToolTip("A finished reward-model run.")
        self.score_run.setPlaceholderText("no finished run yet")
        self.score_prompt = QComboBox()
        self.score_prompt.setMinimumContentsLength(30)
        self.score_prompt.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.score_prompt.currentIndexChanged.connect(lambda *_: self.score())
        self.score_run.currentIndexChanged.connect(lambda *_: self.score())
        self.score_button = QPushButton("Score")
        self.score_button.clicked.connect(lambda: self.score())
        srow.addWidget(QLabel("Run:"))
        srow.addWidget(self.score_run)
        srow.addWidget(QLabel("Prompt:"))
        srow.addWidget(self.score_prompt, 1)
        srow.addWidget(self.score_button)
        sv.addLayout(srow)
        self.score_text = QTextBrowser()
        self.score_text.setMaximumHeight(54)
        sv.addWidget(self.score_text)
        self.score_table = QTableWidget(0, 3)
        self.score_table.setHorizontalHeaderLabels(("Reward", "Your tier", "Candidate"))
        self.score_table.verticalHeader().setVisible(False)
        self.score_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.score_table.setWordWrap(True)
        sh = self.score_table.horizontalHeader()
        sh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        sh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        sh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.score_empty = EmptyState(self.score_table, lambda: (
            "Choose a run and a prompt and press <b>Score</b>: the reward of each candidate appears here, "
            "beside the tier you gave it." if self.score_run.count() else
            "Once a reward-model run has finished, its scores for each candidate of a prompt appear here, "
            "beside your own ranking."))
        sv.addWidget(self.score_table, 1)
        rvl.addWidget(score_box, 2)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 5)
        splitter.setSizes([380, 740])
        self._update_buttons()

    # ---- project ---------------------------------------------------------------------------------------

    def set_project(self, project) -> None:
        self.project = project
        self.epoch += 1
        self.config = self.preset_config = None
        self.preflight_ok = False
        self.overrides = {}
        self.current_run = None
        self.scorers.clear()
        self.last_scores = None
        self.loss_chart.clear()
        self.acc_chart.clear()
        self.runs.setRowCount(0)
        self.score_run.clear()
        self.score_prompt.clear()
        self.score_text.clear()
        self.score_table.setRowCount(0)
        self.preflight_label.setText("")
        self.status.setText("")
        self.advanced.setText("Advanced…")
        self.base.set_models([])
        if project is not None:
            self.refresh()
        self.curve_box.set_project(project)
        self._update_buttons()

    def refresh(self) -> None:
        """Re-read the model registry and the runs; re-check pre-flight (a job)."""
        if self.project is None:
            return
        self.base.blockSignals(True)
        self.base.set_models(registered_models(self.project))
        self.base.blockSignals(False)
        self.refresh_runs()
        self.run_preflight()
        self.refresh_prompt_choices()

    # ---- pre-flight and advanced -----------------------------------------------------------------------

    def run_preflight(self) -> Optional[JobHandle]:
        if self.project is None:
            return None
        base, preset, overrides, proj = self.base.path(), self.preset.currentData(), dict(self.overrides), self.project
        if not base:
            self.preflight_ok = False
            _warn(self.preflight_label, "Choose a base model: add one on the Models page, or Browse… for a "
                                        "Hugging Face folder.", True)
            self._update_buttons()
            return None
        self.preflight_ok = False
        self.preflight_label.setStyleSheet(OK_STYLE)
        self.preflight_label.setText("Checking data and memory…")
        self._update_buttons()
        self._preflight_seq += 1
        self.preflight_handle = self.page.run_job(
            lambda cancel: reward_preflight_job(proj, base, preset, overrides, cancel), "Reward pre-flight",
            on_finished=self._latest(self._preflight_done), on_failed=self._latest(self._preflight_failed))
        self.preflight_handle.done.connect(self._update_buttons)
        return self.preflight_handle

    def _preflight_done(self, result: dict) -> None:
        self.config, self.preset_config = result["config"], result["preset_config"]
        self.preflight_ok = result["ok"]
        _warn(self.preflight_label, result["message"], not result["ok"])
        self._update_buttons()

    def _preflight_failed(self, exc: BaseException) -> None:
        self.config = None
        self.preflight_ok = False
        _warn(self.preflight_label, error_text(exc), True)
        self._update_buttons()

    def open_advanced(self) -> Optional[ConfigDialog]:
        if self.config is None:
            return None
        dialog = ConfigDialog("Reward model: advanced settings", self.config, self.preset_config,
                              hidden={"base_model", "preset"},
                              note="Hover a setting for what it does. Values start from the preset; changed "
                                   "ones stay changed when you switch presets.", parent=self)
        dialog.accepted.connect(lambda: self._apply_advanced(dialog.values()))
        self.advanced_dialog = dialog
        dialog.open()
        return dialog

    def _apply_advanced(self, values: dict) -> None:
        self.overrides = changed_fields(values, self.preset_config) if self.preset_config else values
        n = len(self.overrides)
        self.advanced.setText(f"Advanced… ({n} changed)" if n else "Advanced…")
        self.run_preflight()

    # ---- training --------------------------------------------------------------------------------------

    def start(self, config=None) -> Optional[JobHandle]:
        """Start a new run with `config` (default: the checked preset + advanced settings)."""
        config = config or self.config
        if self.project is None or config is None or self.training:
            return None
        proj = self.project
        return self._launch(lambda cancel: reward_train_job(proj, config, None, cancel), "Training reward model")

    def _on_progress(self, ev: Progress) -> None:
        m = ev.metrics
        if "run/id" in m:
            run_id = int(m["run/id"])
            if run_id != self.current_run:
                self.current_run = run_id
                self.refresh_runs()
                self.select_run(run_id)
            return
        self.loss_chart.add_metrics(ev.step, m, only=("loss/train", "loss/val"))
        self.acc_chart.add_metrics(ev.step, m, only=("accuracy/train", "accuracy/val"))
        if "loss/train" in m:
            self._set_steps_cell(ev.step, ev.total)
        if "accuracy/val" in m:
            self.status.setText(f"Step {ev.step:,} of {ev.total:,}: validation accuracy {_pct(m['accuracy/val'])}, "
                                f"loss {_num(m.get('loss/val'))}.")

    def _finished(self, result) -> None:
        acc = result.metrics.get("accuracy/val")
        held = result.metrics.get("accuracy/heldout")
        text = f"Run {result.run_id} done after {result.steps:,} steps: validation accuracy {_pct(acc)}"
        text += f", held-out accuracy {_pct(held)}." if held is not None else "."
        if result.stopped_early:
            text += " Stopped early: validation accuracy had stopped improving."
        self.status.setText(text + " Next: the Policy tab fine-tunes the model against it.")
        self.refresh_runs()
        self.select_run(result.run_id)
        self.refresh_score_runs(select=result.run_id)

    # ---- runs ------------------------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        if self.project is None:
            return
        selected = self.selected_run()
        runs = sorted(self.project.runs(kind="reward"), key=lambda r: -r.id)
        self.runs.blockSignals(True)
        self.runs.setRowCount(len(runs))
        for i, run in enumerate(runs):
            s, c = run.summary or {}, run.config or {}
            steps = s.get("steps")
            if steps is None:  # a cancelled or running run: how far its logged curve goes
                steps = max((st for st, _ in self.project.metrics(run.id).get("loss/train", [])), default=0)
            total = s.get("total_steps")
            cells = [
                _item(str(run.id), run.id, right=True), _item(run.status),
                _item(_steps_text(steps, total), right=True),
                _item(_pct(s.get("final/accuracy/val")), right=True),
                _item(_pct(s.get("final/accuracy/heldout")), right=True),
                _item(Path(c.get("base_model", "")).name),
            ]
            cells[-1].setToolTip(f"{c.get('base_model', '')}\npreset: {c.get('preset', '')}, "
                                 f"{c.get('finetune', '')} fine-tune")
            for col, item in enumerate(cells):
                self.runs.setItem(i, col, item)
        self.runs.blockSignals(False)
        if selected is not None:
            self.select_run(selected)
        self.refresh_score_runs()
        self._update_buttons()

    def _clear_views(self) -> None:
        self.loss_chart.clear()
        self.acc_chart.clear()

    def _show_history(self, run_id: int) -> None:
        """A past run's curves (metrics are plain numbers in the store: no decryption, quick)."""
        if self.project is None:
            return
        metrics = self.project.metrics(run_id)
        self.loss_chart.clear()
        self.acc_chart.clear()
        self.loss_chart.add_points({k: list(metrics[k]) for k in ("loss/train", "loss/val") if k in metrics})
        self.acc_chart.add_points({k: list(metrics[k]) for k in ("accuracy/train", "accuracy/val") if k in metrics})

    # ---- scoring ---------------------------------------------------------------------------------------

    def refresh_score_runs(self, select: Optional[int] = None) -> None:
        if self.project is None:
            return
        current = select or self.score_run.currentData()
        done = sorted((r for r in self.project.runs(kind="reward") if r.status == "done"), key=lambda r: -r.id)
        self.score_run.blockSignals(True)
        self.score_run.clear()
        for r in done:
            acc = (r.summary or {}).get("final/accuracy/val")
            self.score_run.addItem(f"Run {r.id}" + (f" ({_pct(acc)})" if acc is not None else ""), r.id)
        i = self.score_run.findData(current) if current is not None else -1
        self.score_run.setCurrentIndex(i if i >= 0 else (0 if done else -1))
        self.score_run.blockSignals(False)
        self._update_buttons()
        self.score_empty.update()

    def refresh_prompt_choices(self) -> None:
        if self.project is None:
            return
        proj = self.project
        self.page.run_job(lambda cancel: prompt_choices_job(proj, cancel=cancel), "Listing prompts",
                          on_finished=self._guard(self._prompt_choices))

    def _prompt_choices(self, choices: list) -> None:
        current = self.score_prompt.currentData()
        self.score_prompt.blockSignals(True)
        self.score_prompt.clear()
        for pid, label in choices:
            self.score_prompt.addItem(label, pid)
        i = self.score_prompt.findData(current) if current is not None else -1
        self.score_prompt.setCurrentIndex(i if i >= 0 else (0 if choices else -1))
        self.score_prompt.blockSignals(False)
        self._update_buttons()

    def score(self, run_id: Optional[int] = None, prompt_id: Optional[int] = None) -> Optional[JobHandle]:
        run_id = run_id or self.score_run.currentData()
        prompt_id = prompt_id or self.score_prompt.currentData()
        if self.project is None or run_id is None or prompt_id is None:
            return None
        if self.score_handle is not None and self.score_handle.running:
            return None  # one scoring job at a time (it may be loading the model the next one reuses)
        proj, model = self.project, self.scorers.get(run_id)
        self.score_text.setPlainText("Scoring…")
        self.score_handle = self.page.run_job(
            lambda cancel: score_prompt_job(proj, run_id, prompt_id, model, cancel), "Scoring candidates",
            on_finished=self._guard(lambda r: self._scored(run_id, prompt_id, r)),
            on_failed=self._guard(lambda e: self.score_text.setPlainText(error_text(e))))
        self.score_handle.done.connect(self._update_buttons)
        self._update_buttons()
        return self.score_handle

    def _scored(self, run_id: int, prompt_id: int, result: dict) -> None:
        self.scorers[run_id] = result["model"]
        self.last_scores = {"run": run_id, "prompt_id": prompt_id, "rows": result["rows"]}
        self.score_text.setPlainText(result["prompt"])
        rows = result["rows"]
        self.score_table.setRowCount(len(rows))
        for i, (reward, tier, text) in enumerate(rows):
            self.score_table.setItem(i, 0, _item(f"{reward:+.3f}", right=True))
            self.score_table.setItem(i, 1, _item("" if tier is None else str(tier), right=True))
            self.score_table.setItem(i, 2, _item(" ".join(text.split())))
        self.score_table.resizeRowsToContents()
        if (self.score_run.currentData(), self.score_prompt.currentData()) != (run_id, prompt_id):
            self.score()  # the choice changed while this was scoring

    # ---- state -----------------------------------------------------------------------------------------

    def _update_buttons(self, *_) -> None:
        on = self.project is not None
        training = self.training
        checking = self.preflight_handle is not None and self.preflight_handle.running
        self.start_button.setEnabled(on and not training and not checking and self.preflight_ok)
        run_id = self.selected_run() if on else None
        status = None
        if run_id is not None:
            row = self.run_row(run_id)
            status = row["Status"]
        self.resume_button.setEnabled(on and not training and status in RESUMABLE)
        self.advanced.setEnabled(on and self.config is not None)
        self.base.setEnabled(on and not training)
        self.preset.setEnabled(on and not training)
        scoring = self.score_handle is not None and self.score_handle.running
        self.score_button.setEnabled(on and not scoring and self.score_run.count() > 0
                                     and self.score_prompt.count() > 0)
        if hasattr(self, "curve_box"):
            self.curve_box.update_button()


# ======================================================================================================
# Policy tab
# ======================================================================================================


class PolicyTab(_Tab):
    kind = "policy"
    train_job = staticmethod(policy_train_job)
    error_title = "Policy training"
    RUN_COLUMNS = ("Run", "Algorithm", "Status", "Steps", "Reward", "KL")
    SAMPLE_COLUMNS = ("Step", "Prompt", "Response", "Reward", "KL")

    def __init__(self, page: "TrainPage"):
        super().__init__(page)
        self.preflight_ok = False
        self.config = None  # the PolicyConfig Start uses, built and checked by the last pre-flight job
        self.preset_config = None
        self.suggestion: Optional[dict] = None
        self.export_confirm: Optional[QMessageBox] = None
        self.export_handle: Optional[JobHandle] = None
        self.samples_seen = 0

        splitter = QSplitter(Qt.Orientation.Horizontal)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(splitter)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        setup = QGroupBox("Fine-tune the model against the reward")
        form = QFormLayout(setup)
        self.algo = QComboBox()
        for key, text in ALGORITHMS:
            self.algo.addItem(text, key)
        self.algo.setItemData(0, "PPO: a critic, per-token KL to the reference (the classic RLHF).",
                              Qt.ItemDataRole.ToolTipRole)
        self.algo.setItemData(1, "RLOO: K samples per prompt, leave-one-out baseline, no critic.",
                              Qt.ItemDataRole.ToolTipRole)
        self.algo.setItemData(2, "GRPO: K samples per prompt, group-normalised advantages, no critic.",
                              Qt.ItemDataRole.ToolTipRole)
        self.algo.setItemData(3, "DPO: learns from your preference pairs directly; no reward model needed.",
                              Qt.ItemDataRole.ToolTipRole)
        self.algo.currentIndexChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Algorithm:", self.algo)
        self.base = ModelPicker()
        self.base.currentChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Base model:", self.base)
        self.reward_run = QComboBox()
        self.reward_run.currentIndexChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Reward run:", self.reward_run)
        self.preset = QComboBox()
        for key, text in POLICY_PRESETS:
            self.preset.addItem(text, key)
        self.preset.currentIndexChanged.connect(lambda *_: self.run_preflight())
        self.advanced = QPushButton("Advanced…")
        self.advanced.setToolTip("Every hyperparameter (and the automatic reward terms), from the preset's values.")
        self.advanced.clicked.connect(self.open_advanced)
        prow = QHBoxLayout()
        prow.addWidget(self.preset, 1)
        prow.addWidget(self.advanced)
        form.addRow("Preset:", prow)
        self.preflight_label = QLabel("")
        self.preflight_label.setWordWrap(True)
        self.preflight_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.preflight_label)
        self.apply_button = QPushButton("Apply suggestion")
        self.apply_button.clicked.connect(self.apply_suggestion)
        self.apply_button.setVisible(False)
        form.addRow(self.apply_button)
        brow = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(lambda: self.start())
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected cancelled or failed run from its last checkpoint.")
        self.resume_button.clicked.connect(lambda: self.resume())
        self.export_button = QPushButton("Export model…")
        self.export_button.setToolTip("Write the selected run's tuned model as a Hugging Face folder (unencrypted).")
        self.export_button.clicked.connect(lambda: self.export())
        from desktop.pages.policy_monitors import MonitorsPanel

        self.monitors = MonitorsPanel(self)  # reward-hacking monitors: charts, warning banner, expert check
        self.check_handle: Optional[JobHandle] = None
        for b in (self.start_button, self.resume_button, self.export_button):
            brow.addWidget(b)
        brow.addStretch(1)
        form.addRow(brow)
        form.addRow(self.monitors.check_button)
        lv.addWidget(setup)
        runs_box = QGroupBox("Runs")
        rv = QVBoxLayout(runs_box)
        self.runs = runs_table(self.RUN_COLUMNS)
        self.runs.itemSelectionChanged.connect(self._run_selected)
        self.runs_empty = EmptyState(self.runs, "No policy runs yet. Train a reward model first (or choose "
                                                "DPO), then press <b>Start</b>.")
        rv.addWidget(self.runs)
        lv.addWidget(runs_box, 1)
        splitter.addWidget(left)

        right = QWidget()
        rvl = QVBoxLayout(right)
        rvl.setContentsMargins(6, 0, 0, 0)
        grid = QGridLayout()
        self.reward_chart = LiveChart(["reward/mean"], title="Reward")
        self.kl_chart = LiveChart(["kl/mean"], title="KL to the reference (nats)")
        self.entropy_chart = LiveChart(["policy/entropy"], title="Entropy")
        self.loss_chart = LiveChart(["loss/policy"], title="Losses")
        for i, chart in enumerate((self.reward_chart, self.kl_chart, self.entropy_chart, self.loss_chart)):
            chart.canvas.setMinimumHeight(130)
            grid.addWidget(chart, i // 2, i % 2)
        grid.addWidget(self.monitors.length_chart, 0, 2)
        grid.addWidget(self.monitors.share_chart, 1, 2)
        rvl.addWidget(self.monitors.banner)
        rvl.addLayout(grid, 5)
        self.progress = JobProgressWidget(hide_when_idle=False)
        self.progress.cancel_button.setEnabled(False)
        rvl.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        rvl.addWidget(self.status)
        self.samples = QTableWidget(0, len(self.SAMPLE_COLUMNS))
        self.samples.setHorizontalHeaderLabels(self.SAMPLE_COLUMNS)
        self.samples.verticalHeader().setVisible(False)
        self.samples.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.samples.setAlternatingRowColors(True)
        self.samples.setWordWrap(True)
        self.samples.setToolTip("Live samples: the newest first, with the parts of their reward.")
        self.samples_empty = EmptyState(self.samples, "While a run trains, the policy's own replies appear "
                                                      "here, newest first, with their reward and KL.")
        rvl.addWidget(self.samples, 3)
        self._sample_columns = list(self.SAMPLE_COLUMNS)
        self._size_sample_columns()
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 5)
        splitter.setSizes([380, 740])
        self._update_buttons()

    # ---- project ---------------------------------------------------------------------------------------

    def set_project(self, project) -> None:
        self.project = project
        self.epoch += 1
        self.overrides = {}
        self.preflight_ok = False
        self.config = self.preset_config = None
        self.suggestion = None
        self.current_run = None
        for chart in self.charts():
            chart.clear()
        self._clear_samples()
        if self.monitors.dialog is not None:  # the judging window shows decrypted text: close it
            self.monitors.dialog.close()
            self.monitors.dialog = None
        self.monitors.reset()
        self.runs.setRowCount(0)
        self.reward_run.clear()
        self.preflight_label.setText("")
        self.status.setText("")
        self.apply_button.setVisible(False)
        self.advanced.setText("Advanced…")
        self.base.set_models([])
        if self.export_confirm is not None:
            self.export_confirm.close()
        if project is not None:
            self.refresh()
        self._update_buttons()

    def charts(self) -> tuple[LiveChart, ...]:
        return (self.reward_chart, self.kl_chart, self.entropy_chart, self.loss_chart, *self.monitors.charts())

    def refresh(self) -> None:
        if self.project is None:
            return
        for w in (self.base, self.reward_run):
            w.blockSignals(True)
        self.base.set_models(registered_models(self.project))
        self.refresh_reward_runs()
        for w in (self.base, self.reward_run):
            w.blockSignals(False)
        self.refresh_runs()
        self.run_preflight()

    def refresh_reward_runs(self) -> None:
        current = self.reward_run.currentData()
        done = sorted((r for r in self.project.runs(kind="reward") if r.status == "done"), key=lambda r: -r.id)
        self.reward_run.clear()
        for r in done:
            acc = (r.summary or {}).get("final/accuracy/val")
            self.reward_run.addItem(f"Run {r.id}" + (f" (accuracy {_pct(acc)})" if acc is not None else ""), r.id)
        self.reward_run.addItem("None (DPO, or automatic terms only)", None)
        i = self.reward_run.findData(current) if current is not None else -1
        self.reward_run.setCurrentIndex(i if i >= 0 else 0)

    # ---- config ----------------------------------------------------------------------------------------

    def inputs(self) -> dict:
        """What the setup fields and the advanced form say; the config is built from it on the worker
        (core.training.policy_config imports torch, which must never load on the GUI thread)."""
        return {"preset": self.preset.currentData(), "algo": self.algo.currentData(),
                "policy_path": self.base.path(), "reward_run": self.reward_run.currentData(),
                "overrides": json_copy(self.overrides)}

    def run_preflight(self) -> Optional[JobHandle]:
        if self.project is None:
            return None
        self.preflight_ok = False
        self.suggestion = None
        self.apply_button.setVisible(False)
        inputs = self.inputs()
        if not inputs["policy_path"]:
            _warn(self.preflight_label, "Choose a base model: add one on the Models page, or Browse… for a "
                                        "Hugging Face folder.", True)
            self._update_buttons()
            return None
        self.preflight_label.setStyleSheet(OK_STYLE)
        self.preflight_label.setText("Checking data and memory…")
        proj = self.project
        self._preflight_seq += 1
        self.preflight_handle = self.page.run_job(
            lambda cancel: policy_preflight_job(proj, inputs, cancel), "Policy pre-flight",
            on_finished=self._latest(self._preflight_done),
            on_failed=self._latest(lambda e: (_warn(self.preflight_label, error_text(e), True),
                                              self._update_buttons())))
        self.preflight_handle.done.connect(self._update_buttons)
        self._update_buttons()
        return self.preflight_handle

    def _preflight_done(self, result: dict) -> None:
        self.config, self.preset_config = result["config"], result["preset_config"]
        self.preflight_ok = result["ok"]
        self.suggestion = result["suggestion"]
        _warn(self.preflight_label, result["message"], not result["ok"])
        self.apply_button.setVisible(self.suggestion is not None)
        self._update_buttons()

    def apply_suggestion(self) -> None:
        if self.suggestion:
            self.overrides.update(self.suggestion)
            self._mark_advanced()
            self.run_preflight()

    def open_advanced(self) -> Optional[ConfigDialog]:
        if self.project is None or self.config is None:
            return None
        dialog = ConfigDialog("Policy: advanced settings", self.config, self.preset_config,
                              hidden={"algo", "policy_path", "reward_run"},
                              note="Hover a setting for what it does. Values start from the preset; changed "
                                   "ones stay changed when you switch presets.", parent=self)
        dialog.accepted.connect(lambda: self._apply_advanced(dialog.values()))
        self.advanced_dialog = dialog
        dialog.open()
        return dialog

    def _apply_advanced(self, values: dict) -> None:
        self.overrides = changed_fields(values, self.preset_config)
        self._mark_advanced()
        self.run_preflight()

    def _mark_advanced(self) -> None:
        n = sum(len(v) if isinstance(v, dict) else 1 for v in self.overrides.values())
        self.advanced.setText(f"Advanced… ({n} changed)" if n else "Advanced…")

    # ---- training --------------------------------------------------------------------------------------

    def start(self, config=None) -> Optional[JobHandle]:
        """Start a new run with `config` (default: the checked preset + setup + advanced settings)."""
        cfg = config or self.config
        if self.project is None or self.training or cfg is None:
            return None
        proj = self.project
        return self._launch(lambda cancel: policy_train_job(proj, cfg, None, cancel),
                            f"Training policy ({cfg.algo.upper()})")

    def _route(self, step: float, m: dict[str, float]) -> None:
        self.reward_chart.add_points({k: (step, v) for k, v in m.items()
                                      if k.startswith("reward/") and k not in ("reward/std", "reward/with_kl")})
        self.kl_chart.add_metrics(step, m, only=("kl/mean",))
        self.entropy_chart.add_metrics(step, m, only=("policy/entropy",))
        self.loss_chart.add_points({k: (step, v) for k, v in m.items() if k.startswith("loss/")})
        self.monitors.add(step, m)

    def _on_progress(self, ev: Progress) -> None:
        m = ev.metrics
        if "run/id" in m:
            run_id = int(m["run/id"])
            if run_id != self.current_run:
                self.monitors.reset(run_id, (self.project.run(run_id).config or {}).get("policy"))
                self.current_run = run_id
                self.refresh_runs()
                self.select_run(run_id)
            return
        if m:
            self._route(ev.step, m)
            self._set_steps_cell(ev.step, ev.total)
            parts = [f"Step {ev.step:,} of {ev.total:,}"]
            if "reward/mean" in m:
                parts.append(f"reward {m['reward/mean']:+.3f}")
            if "kl/mean" in m:
                parts.append(f"KL {m['kl/mean']:.3f}")
            if "kl/beta" in m:
                parts.append(f"β {m['kl/beta']:.3g}")
            if "perf/samples_per_s" in m:
                parts.append(f"{m['perf/samples_per_s']:.1f} samples/s")
            self.status.setText(" · ".join(parts))
        if ev.samples:
            self.add_samples(ev.step, ev.samples)

    def add_samples(self, step: int, rows: list[dict]) -> None:
        """Newest first; extra reward parts (reward/length, …) get their own columns."""
        for row in rows:
            for key in row:
                if key not in ("prompt", "response", "reward", "kl") and key not in self._sample_columns:
                    self._sample_columns.append(key)
        if self.samples.columnCount() != len(self._sample_columns):
            self.samples.setColumnCount(len(self._sample_columns))
            self.samples.setHorizontalHeaderLabels([c.removeprefix("reward/") for c in self._sample_columns])
            self._size_sample_columns()
        for row in reversed(rows):
            self.samples.insertRow(0)
            for c, key in enumerate(self._sample_columns):
                if key == "Step":
                    self.samples.setItem(0, c, _item(str(step), right=True))
                elif key in ("Prompt", "Response"):
                    value = row.get(key.lower(), "")
                    self.samples.setItem(0, c, _item(" ".join(str(value).split())[:400]))
                else:
                    value = row.get(key.lower() if key in ("Reward", "KL") else key)
                    self.samples.setItem(0, c, _item("" if value is None else f"{float(value):+.3f}", right=True))
        self.samples_seen += len(rows)
        while self.samples.rowCount() > 200:  # a bounded view; every table is in the project too
            self.samples.removeRow(self.samples.rowCount() - 1)

    def _size_sample_columns(self) -> None:
        h = self.samples.horizontalHeader()
        for c, key in enumerate(self._sample_columns):
            mode = QHeaderView.ResizeMode.Stretch if key in ("Prompt", "Response") else \
                QHeaderView.ResizeMode.ResizeToContents
            h.setSectionResizeMode(c, mode)

    def _clear_samples(self) -> None:
        self.samples.setRowCount(0)
        self.samples_seen = 0

    def _finished(self, result) -> None:
        m = result.metrics
        text = f"Run {result.run_id} done after {result.steps:,} steps"
        if "reward/mean" in m:
            text += f": reward {m['reward/mean']:+.3f}"
        if "kl/mean" in m:
            text += f", KL {m['kl/mean']:.3f}"
        text += ". Export model… writes it as a Hugging Face folder."
        if self.monitors.warning_codes():
            text += " The reward-hacking monitors warn (above): read the samples before you use this model."
        self.status.setText(text)
        self.refresh_runs()
        self.select_run(result.run_id)

    # ---- runs ------------------------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        if self.project is None:
            return
        selected = self.selected_run()
        runs = sorted(self.project.runs(kind="policy"), key=lambda r: -r.id)
        self.runs.blockSignals(True)
        self.runs.setRowCount(len(runs))
        for i, run in enumerate(runs):
            s = run.summary or {}
            cfg = (run.config or {}).get("policy", {})
            final = s.get("final") or {}
            steps = s.get("steps")
            cells = [_item(str(run.id), run.id, right=True), _item(str(cfg.get("algo", "")).upper()),
                     _item(run.status + (" (out of memory)" if s.get("error") == "out_of_memory" else "")),
                     _item(_steps_text(steps, cfg.get("total_steps")), right=True),
                     _item("" if "reward/mean" not in final else f"{final['reward/mean']:+.3f}", right=True),
                     _item(_num(final.get("kl/mean")), right=True)]
            for col, item in enumerate(cells):
                self.runs.setItem(i, col, item)
        self.runs.blockSignals(False)
        if selected is not None:
            self.select_run(selected)
        self._update_buttons()

    def _clear_views(self) -> None:
        for chart in self.charts():
            chart.clear()
        self._clear_samples()
        self.monitors.reset()

    def _show_history(self, run_id: int) -> None:
        if self.project is None:
            return
        for chart in self.charts():
            chart.clear()
        self._clear_samples()
        self.monitors.reset(run_id, (self.project.run(run_id).config or {}).get("policy"))
        by_step: dict[int, dict[str, float]] = {}
        for name, points in self.project.metrics(run_id).items():
            for step, value in points:
                by_step.setdefault(step, {})[name] = value
        for step in sorted(by_step):
            self._route(step, by_step[step])
        for step, rows in self.project.samples(run_id)[-20:]:
            self.add_samples(step, rows)
        from core.training.expert_check import recorded_agreement

        self.monitors.show_agreement(*recorded_agreement(self.project, run_id))

    # ---- check with the expert (core.training.expert_check; the view: desktop.pages.policy_monitors) -----

    def check_run_target(self) -> Optional[int]:
        return self.selected_run() or self.current_run

    def check_with_expert(self, run_id: Optional[int] = None, seed: Optional[int] = None) -> Optional[JobHandle]:
        """Sample fresh policy and base replies (a job), then open the blind judging window."""
        from core.training.expert_check import prepare_expert_check
        from desktop.pages.policy_monitors import CHECK_PROMPTS

        run_id = run_id or self.check_run_target()
        if self.project is None or run_id is None or (self.check_handle is not None and self.check_handle.running):
            return None
        proj = self.project
        self.status.setText("Sampling the policy's and the base model's replies for you to judge…")
        self.check_handle = self.page.run_job(
            lambda cancel: prepare_expert_check(proj, run_id, n_prompts=CHECK_PROMPTS, seed=seed, cancel=cancel),
            "Preparing a check with the expert", on_finished=self._guard(lambda r: self._check_ready(run_id, r)),
            on_failed=self._guard(lambda e: (self.status.setText(error_text(e)),
                                             self.page.show_error(e, "Check with the expert"))))
        self.check_handle.done.connect(self._update_buttons)
        self._update_buttons()
        return self.check_handle

    def _check_ready(self, run_id: int, prepared) -> None:
        from desktop.pages.policy_monitors import ExpertCheckDialog

        if not prepared.items:
            self.status.setText("The policy wrote the base model's replies on every prompt sampled: nothing to "
                                "judge yet.")
            return
        self.status.setText(f"{prepared.items} blind pairs to judge: which reply is better?")
        dialog = self.monitors.dialog = ExpertCheckDialog(self.project, prepared.check_run, self)
        dialog.finished.connect(self._guard(lambda *_: self._check_closed(run_id)))
        dialog.show()

    def _check_closed(self, run_id: int) -> None:
        ctx = self.page.app_context
        if hasattr(ctx, "notify_changed"):  # new judgments: other pages' figures follow
            ctx.notify_changed("judgment")
        self.measure_agreement(run_id)

    def measure_agreement(self, run_id: int) -> Optional[JobHandle]:
        """Score the judged check pairs with the run's reward model (a job) and show the agreement."""
        from core.training.expert_check import expert_agreement

        if self.project is None or (self.project.run(run_id).config.get("policy") or {}).get("reward_run") is None:
            return None
        proj = self.project
        self.agreement_handle = self.page.run_job(
            lambda cancel: expert_agreement(proj, run_id, cancel=cancel), "Measuring the reward model's agreement",
            on_finished=self._guard(lambda r: self._agreement_done(run_id, r)),
            on_failed=self._guard(lambda e: self.status.setText(error_text(e))))
        return self.agreement_handle

    def _agreement_done(self, run_id: int, result) -> None:
        if run_id != self.monitors.run_id:
            return
        self.monitors.show_agreement(result.agreement, result.by_check)
        a = result.agreement
        if a.pairs:
            self.status.setText(f"The reward model orders {a.rate:.0%} of the {a.pairs} fresh pairs you judged as "
                                f"you did; you preferred the policy's reply in {result.expert_prefers_policy:.0%}.")
        else:
            self.status.setText("No pair with a preference judged yet: agreement needs an A or B choice.")

    # ---- export ----------------------------------------------------------------------------------------

    def export(self, run_id: Optional[int] = None) -> Optional[QMessageBox]:
        """Ask first (the export is unencrypted), then for a folder, then export on the worker."""
        run_id = run_id or self.selected_run()
        if self.project is None or run_id is None:
            return None
        self.export_confirm = ask_export_model(self, self.page, self.project, run_id, self._export_started,
                                               self._guard(self.status.setText))
        self.export_yes = self.export_confirm.yes
        return self.export_confirm

    def _export_started(self, handle: JobHandle) -> None:
        self.export_handle = handle

    # ---- state -----------------------------------------------------------------------------------------

    def _update_buttons(self, *_) -> None:
        on = self.project is not None
        training = self.training
        checking = self.preflight_handle is not None and self.preflight_handle.running
        self.start_button.setEnabled(on and not training and not checking and self.preflight_ok)
        run_id = self.selected_run() if on else None
        status = self.run_row(run_id)["Status"].split(" ")[0] if run_id is not None else None
        self.monitors.check_button.setEnabled(
            on and (run_id or self.current_run) is not None
            and not (self.check_handle is not None and self.check_handle.running))
        self.resume_button.setEnabled(on and not training and status in RESUMABLE)
        self.export_button.setEnabled(on and run_id is not None and status in ("done", "cancelled")
                                      and not (training and run_id == self.current_run))
        for w in (self.algo, self.base, self.reward_run, self.preset):
            w.setEnabled(on and not training)
        self.advanced.setEnabled(on and not training and self.config is not None)


# ======================================================================================================
# The page
# ======================================================================================================


class TrainPage(Page):
    title = "Train"

    def __init__(self, app_context, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.reward = RewardTab(self)
        self.policy = PolicyTab(self)
        self.tabs.addTab(self.reward, "Reward model")
        self.tabs.addTab(self.policy, "Policy")
        layout.addWidget(self.tabs)
        self._shown_epoch = None
        self._stale = False  # the project's content changed while this page was hidden
        if hasattr(app_context, "content_changed"):
            app_context.content_changed.connect(self._content_changed)

    def run_job(self, make_job, title: str = "", **callbacks) -> JobHandle:
        if not callable(make_job):  # an already-built generator (call_job)
            job = make_job
            make_job = lambda _cancel: job  # noqa: E731
        return super().run_job(ml_job(make_job), title, **callbacks)

    def set_project(self, project) -> None:
        super().set_project(project)
        self.reward.set_project(project)
        self.policy.set_project(project)
        self._shown_epoch = self.reward.epoch if self.isVisible() else None

    def notify_run_ended(self) -> None:
        """A run of either tab ended (finished, failed or cancelled): every page listing runs follows,
        this one included (the Policy tab's reward-run choice and pre-flight)."""
        if hasattr(self.app_context, "notify_changed"):
            self.app_context.notify_changed("run")

    def _content_changed(self, _what: str) -> None:
        """Judgments, imports and runs change the pre-flight figures: re-check now if shown, else on show."""
        if self.project is None:
            return
        if not self.isVisible():
            self._stale = True
            return
        if not self.reward.training:
            self.reward.refresh()
        if not self.policy.training:
            self.policy.refresh()

    def showEvent(self, event) -> None:
        # Models and rankings change on other pages: re-read them when the page comes back into view
        # (also on the first show after the project opened, when something changed since).
        if self.project is not None and (self._shown_epoch == self.reward.epoch or self._stale):
            if not self.reward.training:
                self.reward.refresh()
            if not self.policy.training:
                self.policy.refresh()
        self._shown_epoch = self.reward.epoch
        self._stale = False
        super().showEvent(event)
