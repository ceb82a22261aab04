"""The Generate dialog: K candidates per prompt from a local model (core.models.candidates, on the worker).

Non-modal: generation may take minutes; the dialog shows progress, ETA and Cancel, and a cancelled run
is simply started again (prompts that already have K candidates from that model are skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.models import DEFAULT_K
from core.ops.data import generation_job
from core.ops.ml_imports import ml_job
from desktop.pages.base import error_text
from desktop.worker import JobProgressWidget

SCOPES = (
    ("all", "All prompts without K candidates"),
    ("train", "Training prompts"),
    ("heldout", "Held-out prompts"),
    ("selected", "Selected prompts"),
)


def parse_temperatures(text: str) -> Optional[tuple[float, ...]]:
    """ "0.7, 1.0 1.3" -> (0.7, 1.0, 1.3); empty -> None. UserError on anything else."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        return None
    try:
        temps = tuple(float(p) for p in parts)
    except ValueError:
        raise UserError(f"Temperature mix: {text.strip()!r} is not a list of numbers (e.g. 0.7, 1.0, 1.3).") from None
    if any(t < 0 for t in temps):
        raise UserError("Temperature mix: temperatures must be 0 or more.")
    return temps


class GenerateDialog(QDialog):
    model_used = Signal(str)  # the model folder, after a run that added candidates
    generated = Signal(object)  # the GenerationReport

    def __init__(
        self,
        app_context,
        project,
        models: list[str],
        model: Optional[str] = None,
        prompt_ids: Optional[list[int]] = None,
        parent: Optional[QWidget] = None,
    ):
        super().__init__(parent)
        self.app_context, self.project = app_context, project
        self.prompt_ids = list(prompt_ids or [])
        self.handle = None
        self.report = None
        self.setWindowTitle("Generate candidates")
        self.setMinimumWidth(560)

        layout = QVBoxLayout(self)
        form = QFormLayout()
        layout.addLayout(form)

        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(28)
        for path in models:
            self.model_combo.addItem(Path(path).name, path)
            self.model_combo.setItemData(self.model_combo.count() - 1, path, 3)  # tooltip role
        if model and model in models:
            self.model_combo.setCurrentIndex(models.index(model))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(browse)
        form.addRow("Model folder:", model_row)

        self.k = QSpinBox()
        self.k.setRange(1, 32)
        self.k.setValue(DEFAULT_K)
        self.k.setToolTip("Candidates per prompt; prompts that already have this many from the model are skipped.")
        form.addRow("Candidates per prompt (K):", self.k)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 3.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.8)
        self.temperature.setToolTip("Softmax temperature; 0 is greedy.")
        form.addRow("Temperature:", self.temperature)
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(0.95)
        self.top_p.setToolTip("Nucleus sampling: 1 turns it off.")
        form.addRow("Top-p:", self.top_p)
        self.max_new_tokens = QSpinBox()
        self.max_new_tokens.setRange(1, 8192)
        self.max_new_tokens.setValue(128)
        form.addRow("Max new tokens:", self.max_new_tokens)
        self.temperature_mix = QLineEdit()
        self.temperature_mix.setPlaceholderText("optional, e.g. 0.7, 1.0, 1.3 (candidate k uses the k-th)")
        self.temperature_mix.setToolTip("A mix of temperatures for more varied candidates; overrides Temperature.")
        form.addRow("Temperature mix:", self.temperature_mix)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The same seed and prompts give the same candidates.")
        form.addRow("Seed:", self.seed)
        self.scope = QComboBox()
        for key, text in SCOPES:
            if key == "selected":
                if not self.prompt_ids:
                    continue
                text = f"{text} ({len(self.prompt_ids)})"
            self.scope.addItem(text, key)
        form.addRow("Prompts:", self.scope)

        self.progress = JobProgressWidget(hide_when_idle=False)
        self.progress.cancel_button.setEnabled(False)
        layout.addWidget(self.progress)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        layout.addWidget(self.result)

        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton("Generate", QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.start_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.close)
        layout.addWidget(self.buttons)
        self._update()

    # ---- actions -------------------------------------------------------------------------------------

    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", str(Path.home()))
        if folder:
            self.set_model(folder)

    def set_model(self, path: str) -> None:
        i = self.model_combo.findData(path)
        if i < 0:
            self.model_combo.addItem(Path(path).name, path)
            i = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(i)
        self._update()

    def settings(self) -> dict:
        """SamplingSettings fields (the dataclass is built on the worker: its module imports torch)."""
        temps = parse_temperatures(self.temperature_mix.text())
        return {
            "temperature": self.temperature.value(),
            "top_p": self.top_p.value(),
            "max_new_tokens": self.max_new_tokens.value(),
            "seed": self.seed.value(),
            "temperatures": list(temps) if temps else None,
        }

    def start(self):
        """Start the generation job; returns its handle (None when a setting is wrong)."""
        model = self.model_combo.currentData()
        if not model or self.project is None or (self.handle is not None and self.handle.running):
            return None
        try:
            settings = self.settings()
        except UserError as exc:
            self.result.setText(str(exc))
            return None
        scope = self.scope.currentData()
        split = scope if scope in ("train", "heldout") else None
        ids = self.prompt_ids if scope == "selected" else None
        proj, k = self.project, self.k.value()
        self.result.setText("")
        self.handle = self.app_context.run_job(
            ml_job(lambda cancel: generation_job(proj, model, k, settings, split, ids, cancel)),
            "Generating candidates",
            on_finished=lambda r: self._finished(model, r),
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )
        self.handle.done.connect(self._update)
        self.progress.follow(self.handle)
        self._update()
        return self.handle

    def _finished(self, model: str, report) -> None:
        self.report = report
        text = (
            f"Added {report.added:,} candidates over {report.prompts - report.skipped:,} prompts; "
            f"{report.skipped:,} prompts already had {self.k.value()}."
        )
        if report.short:
            text += f" {len(report.short)} prompts stayed short of K (the model repeated itself)."
        if report.seconds:
            text += f" {report.tokens_per_second:,.0f} tokens/s."
        self.result.setText(text)
        if report.added:
            self.model_used.emit(model)
        self.generated.emit(report)

    def _failed(self, exc: BaseException) -> None:
        self.result.setText(error_text(exc))

    def _cancelled(self) -> None:
        self.result.setText("Cancelled. Whole batches that finished are kept; Generate again to continue.")

    def _update(self, *_) -> None:
        running = self.handle is not None and self.handle.running
        self.start_button.setEnabled(not running and self.model_combo.count() > 0 and self.project is not None)
