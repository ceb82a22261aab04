"""The Reward model tab: base model and preset, pre-flight, training with live charts, the runs, and the
scoring view (what a reward model thinks of a prompt's candidates, beside the expert's ranking)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.jobs import Progress
from core.ops.training import prompt_choices_job, reward_preflight_job, reward_train_job, score_prompt_job
from desktop.charts import LiveChart
from desktop.config_form import ConfigDialog, changed_fields
from desktop.pages.base import error_text
from desktop.pages.models import registered_models
from desktop.pages.train.run_controls import (
    OK_STYLE,
    RESUMABLE,
    REWARD_PRESETS,
    ModelPicker,
    _item,
    _num,
    _pct,
    _steps_text,
    _Tab,
    _warn,
    runs_table,
)
from desktop.widgets.empty_state import EmptyState
from desktop.worker import JobHandle, JobProgressWidget

if TYPE_CHECKING:
    from desktop.pages.train.page import TrainPage


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
        self._preset_row(form, REWARD_PRESETS, "Every hyperparameter of the run, starting from the preset's values.")
        self.preset.setToolTip(
            "Quick: a first model in minutes. Balanced: the default. Thorough: longer "
            "sequences, more steps. Values are chosen for this device and your data size."
        )
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
        self.runs_empty = EmptyState(
            self.runs,
            "No reward-model runs yet. Rank a few prompts on the <b>Annotate</b> page, then press <b>Start</b>.",
        )
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
        self.loss_chart = LiveChart(
            ["loss/train", "loss/val"],
            title="Bradley–Terry loss",
            empty_text="No run yet: press Start, and the loss on your rankings "
            "(training and validation) is drawn here as it trains.",
        )
        self.acc_chart = LiveChart(
            ["accuracy/train", "accuracy/val"],
            title="Pairwise accuracy",
            empty_text="How often the model puts your preferred reply first, on "
            "training and on validation pairs, appears here as it trains.",
        )
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
        self.score_empty = EmptyState(
            self.score_table,
            lambda: (
                "Choose a run and a prompt and press <b>Score</b>: the reward of each candidate appears here, "
                "beside the tier you gave it."
                if self.score_run.count()
                else "Once a reward-model run has finished, its scores for each candidate of a prompt appear here, "
                "beside your own ranking."
            ),
        )
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
            _warn(
                self.preflight_label,
                "Choose a base model: add one on the Models page, or Browse… for a Hugging Face folder.",
                True,
            )
            self._update_buttons()
            return None
        self.preflight_ok = False
        self.preflight_label.setStyleSheet(OK_STYLE)
        self.preflight_label.setText("Checking data and memory…")
        self._update_buttons()
        self._preflight_seq += 1
        self.preflight_handle = self.page.run_job(
            lambda cancel: reward_preflight_job(proj, base, preset, overrides, cancel),
            "Reward pre-flight",
            on_finished=self._latest(self._preflight_done),
            on_failed=self._latest(self._preflight_failed),
        )
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
        dialog = ConfigDialog(
            "Reward model: advanced settings",
            self.config,
            self.preset_config,
            hidden={"base_model", "preset"},
            note="Hover a setting for what it does. Values start from the preset; changed "
            "ones stay changed when you switch presets.",
            parent=self,
        )
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
        if self._follow_run(m):
            return
        self.loss_chart.add_metrics(ev.step, m, only=("loss/train", "loss/val"))
        self.acc_chart.add_metrics(ev.step, m, only=("accuracy/train", "accuracy/val"))
        if "loss/train" in m:
            self._set_steps_cell(ev.step, ev.total)
        if "accuracy/val" in m:
            self.status.setText(
                f"Step {ev.step:,} of {ev.total:,}: validation accuracy {_pct(m['accuracy/val'])}, "
                f"loss {_num(m.get('loss/val'))}."
            )

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
                _item(str(run.id), run.id, right=True),
                _item(run.status),
                _item(_steps_text(steps, total), right=True),
                _item(_pct(s.get("final/accuracy/val")), right=True),
                _item(_pct(s.get("final/accuracy/heldout")), right=True),
                _item(Path(c.get("base_model", "")).name),
            ]
            cells[-1].setToolTip(
                f"{c.get('base_model', '')}\npreset: {c.get('preset', '')}, {c.get('finetune', '')} fine-tune"
            )
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
        self.page.run_job(
            lambda cancel: prompt_choices_job(proj, cancel=cancel),
            "Listing prompts",
            on_finished=self._guard(self._prompt_choices),
        )

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
            lambda cancel: score_prompt_job(proj, run_id, prompt_id, model, cancel),
            "Scoring candidates",
            on_finished=self._guard(lambda r: self._scored(run_id, prompt_id, r)),
            on_failed=self._guard(lambda e: self.score_text.setPlainText(error_text(e))),
        )
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
        self.score_button.setEnabled(
            on and not scoring and self.score_run.count() > 0 and self.score_prompt.count() > 0
        )
        if hasattr(self, "curve_box"):
            self.curve_box.update_button()
