"""The Policy tab: algorithm, base model, reward run and preset, pre-flight with suggestions, training with
live charts and samples, the reward-hacking monitors, the expert check and export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from core.jobs import Progress
from core.ops.training import policy_preflight_job, policy_train_job
from desktop.charts import LiveChart
from desktop.config_form import ConfigDialog, changed_fields
from desktop.pages.base import error_text
from desktop.pages.models import ask_export_model, registered_models
from desktop.pages.train.run_controls import (
    ALGORITHMS,
    OK_STYLE,
    POLICY_PRESETS,
    RESUMABLE,
    ModelPicker,
    _item,
    _num,
    _pct,
    _steps_text,
    _Tab,
    _warn,
    json_copy,
    runs_table,
)
from desktop.widgets.empty_state import EmptyState
from desktop.worker import JobHandle, JobProgressWidget

if TYPE_CHECKING:
    from desktop.pages.train.page import TrainPage


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
        self.algo.setItemData(
            0, "PPO: a critic, per-token KL to the reference (the classic RLHF).", Qt.ItemDataRole.ToolTipRole
        )
        self.algo.setItemData(
            1, "RLOO: K samples per prompt, leave-one-out baseline, no critic.", Qt.ItemDataRole.ToolTipRole
        )
        self.algo.setItemData(
            2, "GRPO: K samples per prompt, group-normalised advantages, no critic.", Qt.ItemDataRole.ToolTipRole
        )
        self.algo.setItemData(
            3, "DPO: learns from your preference pairs directly; no reward model needed.", Qt.ItemDataRole.ToolTipRole
        )
        self.algo.currentIndexChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Algorithm:", self.algo)
        self.base = ModelPicker()
        self.base.currentChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Base model:", self.base)
        self.reward_run = QComboBox()
        self.reward_run.currentIndexChanged.connect(lambda *_: self.run_preflight())
        form.addRow("Reward run:", self.reward_run)
        self._preset_row(
            form, POLICY_PRESETS, "Every hyperparameter (and the automatic reward terms), from the preset's values."
        )
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
        self.runs_empty = EmptyState(
            self.runs, "No policy runs yet. Train a reward model first (or choose DPO), then press <b>Start</b>."
        )
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
        self.samples_empty = EmptyState(
            self.samples,
            "While a run trains, the policy's own replies appear here, newest first, with their reward and KL.",
        )
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
        return {
            "preset": self.preset.currentData(),
            "algo": self.algo.currentData(),
            "policy_path": self.base.path(),
            "reward_run": self.reward_run.currentData(),
            "overrides": json_copy(self.overrides),
        }

    def run_preflight(self) -> Optional[JobHandle]:
        if self.project is None:
            return None
        self.preflight_ok = False
        self.suggestion = None
        self.apply_button.setVisible(False)
        inputs = self.inputs()
        if not inputs["policy_path"]:
            _warn(
                self.preflight_label,
                "Choose a base model: add one on the Models page, or Browse… for a Hugging Face folder.",
                True,
            )
            self._update_buttons()
            return None
        self.preflight_label.setStyleSheet(OK_STYLE)
        self.preflight_label.setText("Checking data and memory…")
        proj = self.project
        self._preflight_seq += 1
        self.preflight_handle = self.page.run_job(
            lambda cancel: policy_preflight_job(proj, inputs, cancel),
            "Policy pre-flight",
            on_finished=self._latest(self._preflight_done),
            on_failed=self._latest(
                lambda e: (_warn(self.preflight_label, error_text(e), True), self._update_buttons())
            ),
        )
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
        dialog = ConfigDialog(
            "Policy: advanced settings",
            self.config,
            self.preset_config,
            hidden={"algo", "policy_path", "reward_run"},
            note="Hover a setting for what it does. Values start from the preset; changed "
            "ones stay changed when you switch presets.",
            parent=self,
        )
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
        return self._launch(
            lambda cancel: policy_train_job(proj, cfg, None, cancel), f"Training policy ({cfg.algo.upper()})"
        )

    def _route(self, step: float, m: dict[str, float]) -> None:
        self.reward_chart.add_points(
            {
                k: (step, v)
                for k, v in m.items()
                if k.startswith("reward/") and k not in ("reward/std", "reward/with_kl")
            }
        )
        self.kl_chart.add_metrics(step, m, only=("kl/mean",))
        self.entropy_chart.add_metrics(step, m, only=("policy/entropy",))
        self.loss_chart.add_points({k: (step, v) for k, v in m.items() if k.startswith("loss/")})
        self.monitors.add(step, m)

    def _run_started(self, run_id: int) -> None:
        self.monitors.reset(run_id, (self.project.run(run_id).config or {}).get("policy"))

    def _on_progress(self, ev: Progress) -> None:
        m = ev.metrics
        if self._follow_run(m):
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
            mode = (
                QHeaderView.ResizeMode.Stretch
                if key in ("Prompt", "Response")
                else QHeaderView.ResizeMode.ResizeToContents
            )
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
            cells = [
                _item(str(run.id), run.id, right=True),
                _item(str(cfg.get("algo", "")).upper()),
                _item(run.status + (" (out of memory)" if s.get("error") == "out_of_memory" else "")),
                _item(_steps_text(steps, cfg.get("total_steps")), right=True),
                _item("" if "reward/mean" not in final else f"{final['reward/mean']:+.3f}", right=True),
                _item(_num(final.get("kl/mean")), right=True),
            ]
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
            "Preparing a check with the expert",
            on_finished=self._guard(lambda r: self._check_ready(run_id, r)),
            on_failed=self._guard(
                lambda e: (self.status.setText(error_text(e)), self.page.show_error(e, "Check with the expert"))
            ),
        )
        self.check_handle.done.connect(self._update_buttons)
        self._update_buttons()
        return self.check_handle

    def _check_ready(self, run_id: int, prepared) -> None:
        from desktop.pages.policy_monitors import ExpertCheckDialog

        if not prepared.items:
            self.status.setText(
                "The policy wrote the base model's replies on every prompt sampled: nothing to judge yet."
            )
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
            lambda cancel: expert_agreement(proj, run_id, cancel=cancel),
            "Measuring the reward model's agreement",
            on_finished=self._guard(lambda r: self._agreement_done(run_id, r)),
            on_failed=self._guard(lambda e: self.status.setText(error_text(e))),
        )
        return self.agreement_handle

    def _agreement_done(self, run_id: int, result) -> None:
        if run_id != self.monitors.run_id:
            return
        self.monitors.show_agreement(result.agreement, result.by_check)
        a = result.agreement
        if a.pairs:
            self.status.setText(
                f"The reward model orders {a.rate:.0%} of the {a.pairs} fresh pairs you judged as "
                f"you did; you preferred the policy's reply in {result.expert_prefers_policy:.0%}."
            )
        else:
            self.status.setText("No pair with a preference judged yet: agreement needs an A or B choice.")

    # ---- export ----------------------------------------------------------------------------------------

    def export(self, run_id: Optional[int] = None) -> Optional[QMessageBox]:
        """Ask first (the export is unencrypted), then for a folder, then export on the worker."""
        run_id = run_id or self.selected_run()
        if self.project is None or run_id is None:
            return None
        self.export_confirm = ask_export_model(
            self, self.page, self.project, run_id, self._export_started, self._guard(self.status.setText)
        )
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
            on
            and (run_id or self.current_run) is not None
            and not (self.check_handle is not None and self.check_handle.running)
        )
        self.resume_button.setEnabled(on and not training and status in RESUMABLE)
        self.export_button.setEnabled(
            on
            and run_id is not None
            and status in ("done", "cancelled")
            and not (training and run_id == self.current_run)
        )
        for w in (self.algo, self.base, self.reward_run, self.preset):
            w.setEnabled(on and not training)
        self.advanced.setEnabled(on and not training and self.config is not None)
