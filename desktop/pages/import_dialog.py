"""Import dialog: choose a file, see its detected format and first rows, and every error by line.

The preview (core.data.preview reads the whole file to find every error) runs on the worker; the
import itself is started by the Data page as a job once the user confirms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.search import prompt_text
from desktop.pages.base import error_text

FORMATS = (("Detect", None), ("JSONL", "jsonl"), ("JSON", "json"), ("CSV", "csv"))
SPLITS = (("As in the file (else train)", None), ("Training", "train"), ("Held out", "heldout"))
SHAPES = {
    "prompts": "prompts only (to generate candidates for)",
    "responses": "prompts with unranked candidates",
    "ranking": "prompts with ranked candidates",
    "pairs": "preference pairs (chosen / rejected)",
    "rated": "prompts with rated candidates",
}
PREVIEW_COLUMNS = ("Line", "Prompt", "Candidates", "Judgment", "Split")


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def judgment_summary(record) -> str:
    if record.preference is not None:
        return f"{record.preference[0] + 1} preferred to {record.preference[1] + 1}"
    if record.ranking is not None:
        return " > ".join(" = ".join(str(i + 1) for i in tier) for tier in record.ranking)
    if record.ratings is not None:
        return "ratings " + ", ".join("–" if r is None else f"{r:g}" for r in record.ratings)
    return ""


class ImportDialog(QDialog):
    import_requested = Signal(str, object, object)  # path, fmt or None, split or None

    def __init__(self, app_context, parent: Optional[QWidget] = None, path: Optional[str] = None):
        super().__init__(parent)
        self.app_context = app_context
        self.preview_result = None
        self.handle = None
        self.setWindowTitle("Import data")
        self.resize(980, 620)
        layout = QVBoxLayout(self)

        self.path_edit = QLineEdit()
        self.path_edit.setReadOnly(True)
        self.path_edit.setPlaceholderText("Choose a JSONL, JSON or CSV file")
        choose = QPushButton("Choose file…")
        choose.clicked.connect(self.choose_file)
        self.fmt_box = QComboBox()
        for label, key in FORMATS:
            self.fmt_box.addItem(label, key)
        self.fmt_box.currentIndexChanged.connect(self.load_preview)
        self.split_box = QComboBox()
        for label, key in SPLITS:
            self.split_box.addItem(label, key)
        top = QHBoxLayout()
        top.addWidget(self.path_edit, 1)
        top.addWidget(choose)
        form = QFormLayout()
        form.addRow("File:", top)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("Format:"))
        opts.addWidget(self.fmt_box)
        opts.addSpacing(16)
        opts.addWidget(QLabel("Split:"))
        opts.addWidget(self.split_box)
        opts.addStretch(1)
        form.addRow(opts)
        layout.addLayout(form)

        self.summary = QLabel("No file chosen.")
        self.summary.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(8)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        layout.addWidget(self.summary)
        layout.addWidget(self.busy)

        self.table = QTableWidget(0, len(PREVIEW_COLUMNS))
        self.table.setHorizontalHeaderLabels(PREVIEW_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 60), (2, 95), (3, 170), (4, 80)):
            self.table.setColumnWidth(col, width)
        layout.addWidget(self.table, 3)

        self.errors_label = QLabel()
        self.errors_label.setObjectName("error")
        self.errors_label.setStyleSheet("QLabel#error { color: #d33c3c; font-weight: 600; }")
        self.errors_label.setWordWrap(True)
        self.errors = QListWidget()
        self.errors_label.setVisible(False)
        self.errors.setVisible(False)
        layout.addWidget(self.errors_label)
        layout.addWidget(self.errors, 1)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setEnabled(False)
        self.buttons.accepted.connect(self._import)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        if path:
            self.set_path(path)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import data", str(Path.home()), "Data files (*.jsonl *.json *.csv);;All files (*)"
        )
        if path:
            self.set_path(path)

    def set_path(self, path: str) -> None:
        self.path_edit.setText(str(path))
        self.load_preview()

    def load_preview(self) -> None:
        from core.data import preview

        path = self.path_edit.text()
        if not path:
            return
        if self.handle is not None and self.handle.running:
            self.handle.cancel()
        fmt = self.fmt_box.currentData()
        self.preview_result = None
        self.import_button.setEnabled(False)
        self.busy.setVisible(True)
        self.summary.setText("Reading the file…")

        def job(cancel):
            from core.jobs import Progress

            yield Progress(0, None, "checking every record")
            return preview(path, limit=20, fmt=fmt)

        self.handle = self.app_context.run_job(
            job, "Checking file", on_finished=self._show_preview, on_failed=self._preview_failed
        )

    def _show_preview(self, result) -> None:
        self.busy.setVisible(False)
        self.preview_result = result
        shape = SHAPES.get(result.shape, result.shape)
        self.summary.setText(
            f"<b>{result.fmt.upper()}</b>, {shape}: {result.total:,} valid records"
            + (f", <b>{len(result.errors):,} with errors</b>" if result.errors else "")
            + ". The first rows:"
        )
        self.table.setRowCount(len(result.records))
        for r, rec in enumerate(result.records):
            cells = (
                str(rec.line),
                _one_line(prompt_text(rec.prompt)),
                str(len(rec.responses)),
                judgment_summary(rec),
                rec.split or "",
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (0, 2):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.errors.clear()
        if result.errors:
            self.errors_label.setText(
                f"{len(result.errors):,} problem(s). Nothing is imported until every one is fixed:"
            )
            self.errors.addItems(result.errors)
        self.errors_label.setVisible(bool(result.errors))
        self.errors.setVisible(bool(result.errors))
        self.import_button.setEnabled(not result.errors and result.total > 0)

    def _preview_failed(self, exc: BaseException) -> None:
        self.busy.setVisible(False)
        self.table.setRowCount(0)
        self.summary.setText("")
        self.errors.clear()
        self.errors_label.setText("The file cannot be read:")
        self.errors.addItem(error_text(exc))
        self.errors_label.setVisible(True)
        self.errors.setVisible(True)

    def _import(self) -> None:
        if self.preview_result is None or self.preview_result.errors:
            return
        self.import_requested.emit(self.path_edit.text(), self.fmt_box.currentData(), self.split_box.currentData())
        self.accept()
