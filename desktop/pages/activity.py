"""Activity page: the project's tamper-evident audit log and whether its chain verifies."""

from __future__ import annotations

import datetime as dt
import json
from typing import Optional

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.ops.data import audit_job
from desktop.pages.base import Page

COLUMNS = ("#", "When", "Event", "Details")


class ActivityPage(Page):
    title = "Activity"

    def __init__(self, app_context, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        self.entries: list[dict] = []
        self.problems: list[str] = []
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(self.verdict, 1)
        top.addWidget(refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 60), (1, 170), (2, 170)):
            self.table.setColumnWidth(col, width)
        note = QLabel(
            "Each entry is chained to the previous one with a keyed MAC: removing or altering "
            "an entry is detected. Entries hold counts and ids, never your text."
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)

    def set_project(self, project) -> None:
        super().set_project(project)
        self.entries, self.problems = [], []
        self.table.setRowCount(0)
        self.verdict.setText("")
        if project is not None and self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:
        self.refresh()
        super().showEvent(event)

    def refresh(self) -> None:
        project = self.project
        if project is None:
            return
        self.run_job(
            lambda cancel: audit_job(project, cancel),
            "Reading activity",
            on_finished=lambda res, p=project: self._show(p, *res),
            on_failed=self.show_error,
        )

    def _show(self, project, entries: list[dict], problems: list[str]) -> None:
        if project is not self.project:
            return
        self.entries, self.problems = entries, problems
        self.table.setRowCount(len(entries))
        for r, e in enumerate(reversed(entries)):  # newest first
            when = dt.datetime.fromtimestamp(e["ts"]).strftime("%Y-%m-%d %H:%M:%S")
            details = ", ".join(f"{k}={json.dumps(v)}" for k, v in (e.get("details") or {}).items())
            for c, text in enumerate((str(e["id"]), when, e["event"].replace("_", " "), details)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        if problems:
            self.verdict.setText("<b style='color:#d33c3c'>The audit log does not verify:</b> " + "; ".join(problems))
        else:
            self.verdict.setText(f"<b style='color:#3f9a45'>Audit chain intact</b>: {len(entries):,} entries verified.")
