"""The Train page's shared parts: presets, the model picker, the runs table and the run controls both tabs
use (`_Tab`: start, resume, cancel, progress, charts, the run's outcome)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from desktop.pages.base import error_text
from desktop.worker import JobHandle

if TYPE_CHECKING:
    from desktop.pages.train.page import TrainPage


REWARD_PRESETS = (("quick", "Quick"), ("balanced", "Balanced"), ("thorough", "Thorough"))
POLICY_PRESETS = REWARD_PRESETS
ALGORITHMS = (("ppo", "PPO"), ("rloo", "RLOO"), ("grpo", "GRPO"), ("dpo", "DPO"))
RESUMABLE = ("cancelled", "failed", "running")
OK_STYLE = ""
WARN_STYLE = "color: #d9534f;"


def json_copy(value):
    import json

    return json.loads(json.dumps(value))


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

    def _preset_row(self, form: QFormLayout, presets: tuple, advanced_tip: str) -> None:
        """The preset combo with its Advanced… button, and the pre-flight verdict under them."""
        self.preset = QComboBox()
        for key, text in presets:
            self.preset.addItem(text, key)
        self.preset.currentIndexChanged.connect(lambda *_: self.run_preflight())
        self.advanced = QPushButton("Advanced…")
        self.advanced.setToolTip(advanced_tip)
        self.advanced.clicked.connect(self.open_advanced)
        prow = QHBoxLayout()
        prow.addWidget(self.preset, 1)
        prow.addWidget(self.advanced)
        form.addRow("Preset:", prow)
        self.preflight_label = QLabel("")
        self.preflight_label.setWordWrap(True)
        self.preflight_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.preflight_label)

    def _follow_run(self, metrics: dict) -> bool:
        """A training job's first event names its run: show that run, selected. True for that event."""
        if "run/id" not in metrics:
            return False
        run_id = int(metrics["run/id"])
        if run_id != self.current_run:
            self._run_started(run_id)
            self.current_run = run_id
            self.refresh_runs()
            self.select_run(run_id)
        return True

    def _run_started(self, run_id: int) -> None:
        """A new run began reporting (before it is shown); a tab that keeps per-run state resets it here."""

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
        return self._launch(
            lambda cancel: train_job(proj, None, run_id, cancel), f"Resuming {self.kind} run {run_id}", clear=False
        )

    def _launch(self, make_job, title: str, clear: bool = True) -> JobHandle:
        if clear:
            self._clear_views()
        self.status.setText("")
        self._t0 = time.monotonic()
        self.handle = self.page.run_job(
            make_job,
            title,
            on_progress=self._guard(self._on_progress),
            on_finished=self._guard(self._finished),
            on_failed=self._guard(self._failed),
            on_cancelled=self._guard(self._cancelled),
        )
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
                return {
                    self.runs.horizontalHeaderItem(c).text(): self.runs.item(r, c).text()
                    for c in range(self.runs.columnCount())
                }
        raise KeyError(run_id)
