"""Data page: every prompt with its status (fast at 100,000 rows), search, filters, import, export.

The table model holds only the plaintext status rows (`proj.prompt_status()`, no decryption); prompt
text is decrypted when a row is painted, and kept in a bounded in-memory cache. Search is a core job
(core.search) over decrypted text in memory, run on the worker. Locking clears all of it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.errors import ImportFailed
from core.search import prompt_text, search_prompts
from desktop.pages.base import Page
from desktop.widgets.empty_state import EmptyState
from desktop.worker import call_job

COLUMNS = ("#", "Prompt", "Split", "Status", "Candidates", "Flagged")
STATUS_FILTERS = ("All statuses", "unranked", "ranked", "skipped", "flagged")
SPLIT_FILTERS = ("All splits", "train", "heldout")
TEXT_CACHE = 4000  # decrypted one-line prompt previews kept in memory
PREVIEW_CHARS = 240


_DISPLAY = Qt.ItemDataRole.DisplayRole
_FOREGROUND = Qt.ItemDataRole.ForegroundRole
_ALIGN = Qt.ItemDataRole.TextAlignmentRole
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_STATUS_COLOURS = {"ranked": QColor("#3f9a45"), "skipped": QColor("#b07d12")}
_FLAG_COLOUR = QColor("#d33c3c")


class PromptTableModel(QAbstractTableModel):
    """Rows: (id, position, split, status, n_responses, flagged); text decrypted on demand."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.project = None
        self.rows: list[tuple] = []  # every prompt, project order
        self.shown: list[int] = []  # indices into rows after filters
        self._text: OrderedDict[int, str] = OrderedDict()
        self.decrypted = 0  # prompts decrypted for display so far (the bench and tests read it)

    def set_rows(self, project, rows: list[tuple]) -> None:
        self.beginResetModel()
        self.project = project
        self.rows = rows
        self.shown = list(range(len(rows)))
        self._text.clear()
        self.endResetModel()

    def set_shown(self, shown: list[int]) -> None:
        self.beginResetModel()
        self.shown = shown
        self.endResetModel()

    def clear(self) -> None:
        self.set_rows(None, [])

    def row_tuple(self, row: int) -> tuple:
        return self.rows[self.shown[row]]

    def prompt_id(self, row: int) -> int:
        return self.row_tuple(row)[0]

    def row_of(self, prompt_id: int) -> Optional[int]:
        for r, i in enumerate(self.shown):
            if self.rows[i][0] == prompt_id:
                return r
        return None

    # ---- Qt model -----------------------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.shown)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole) -> Any:
        # Called ~40 times per visible row per paint (one call per role): unused roles leave first.
        if role == _DISPLAY:
            pid, position, split, status, n, flagged = self.rows[self.shown[index.row()]]
            col = index.column()
            if col == 1:
                return self.preview(pid)
            return (position, None, split, status, n, "flagged" if flagged else "")[col]
        if role == _FOREGROUND:
            col = index.column()
            if col == 3:
                return _STATUS_COLOURS.get(self.rows[self.shown[index.row()]][3])
            if col == 5 and self.rows[self.shown[index.row()]][5]:
                return _FLAG_COLOUR
            return None
        if role == _ALIGN and index.column() in (0, 4):
            return _RIGHT
        return None

    def preview(self, pid: int) -> str:
        text = self._text.get(pid)
        if text is not None:
            self._text.move_to_end(pid)
            return text
        if self.project is None or self.project.closed:
            return ""
        body = prompt_text(self.project.prompt(pid).prompt)
        self.decrypted += 1
        text = " ".join(body.split())[:PREVIEW_CHARS]
        self._text[pid] = text
        if len(self._text) > TEXT_CACHE:
            self._text.popitem(last=False)
        return text


def filter_rows(
    rows: list[tuple], status: str, split: str, ids: Optional[set[int]], index: Optional[dict[str, list[int]]] = None
) -> list[int]:
    """Indices of rows passing the status / split filters and (when searching) the matching ids.

    index: `status_index(rows)`, so a filter on 100,000 rows walks only the rows it can keep."""
    index = index if index is not None else status_index(rows)
    if status == STATUS_FILTERS[0]:
        out = list(range(len(rows)))
    else:
        out = index.get(status, [])
    if split != SPLIT_FILTERS[0]:
        out = [i for i in out if rows[i][2] == split]
    if ids is not None:
        out = [i for i in out if rows[i][0] in ids]
    return out


def _load_rows(project) -> tuple[list[tuple], dict[str, list[int]]]:
    """Worker side of a refresh: the status rows and their filter index."""
    rows = project.prompt_status()
    return rows, status_index(rows)


def status_index(rows: list[tuple]) -> dict[str, list[int]]:
    """{status or "flagged": row indices} in one pass."""
    index: dict[str, list[int]] = {s: [] for s in STATUS_FILTERS[1:]}
    for i, row in enumerate(rows):
        index[row[3]].append(i)
        if row[5]:
            index["flagged"].append(i)
    return index


class DataPage(Page):
    title = "Data"
    imported = Signal(object)  # ImportReport, after a successful import

    def __init__(self, app_context, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        self.model = PromptTableModel(self)
        self._search_cache: dict = {}
        self._search_ids: Optional[set[int]] = None
        self._search_handle = None
        self._load_handle = None
        self._stale = True
        self._loading = False
        self._index: dict = {}
        self._index_rows: Optional[list] = None
        self.last_import = None
        self.last_export = None

        # toolbar: search, filters, import/export
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompt text (all words must appear)")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self.run_search)
        self.search.textChanged.connect(lambda t: self.clear_search() if not t.strip() else None)
        self.in_candidates = QCheckBox("Candidates too")
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.run_search)
        self.status_filter = QComboBox()
        self.status_filter.addItems(STATUS_FILTERS)
        self.split_filter = QComboBox()
        self.split_filter.addItems(SPLIT_FILTERS)
        self.status_filter.currentIndexChanged.connect(self.apply_filters)
        self.split_filter.currentIndexChanged.connect(self.apply_filters)
        self.import_button = QPushButton("Import…")
        self.import_button.clicked.connect(self.open_import_dialog)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.open_export_dialog)
        bar = QHBoxLayout()
        bar.addWidget(self.search, 3)
        bar.addWidget(self.in_candidates)
        bar.addWidget(self.search_button)
        bar.addSpacing(12)
        bar.addWidget(self.status_filter)
        bar.addWidget(self.split_filter)
        bar.addStretch(1)
        bar.addWidget(self.import_button)
        bar.addWidget(self.export_button)

        self.count = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        vh = self.table.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows: no per-row sizing at 100k
        vh.setDefaultSectionSize(self.fontMetrics().height() + 10)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 70), (2, 80), (3, 90), (4, 90), (5, 70)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(self._show_detail)
        self.empty = EmptyState(self.table, self._empty_text)

        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        self.detail.setPlaceholderText("Select a prompt to see it with its candidates.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        status_row = QHBoxLayout()
        status_row.addWidget(self.count)
        status_row.addWidget(self.message, 1)
        layout.addLayout(status_row)
        # core.quality counts (duplicates, degenerate outputs), from a quiet background scan
        self.quality_label = QLabel()
        self.quality_label.setWordWrap(True)
        self.quality_label.setToolTip(
            "Automatic checks of the candidates: copies within a prompt, and empty, "
            "looping, cut-off or garbled replies. They show as tags on the Annotate "
            "page's cards, where you can overrule them."
        )
        self._quality_handle = None
        layout.addWidget(self.quality_label)
        layout.addWidget(split, 1)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self, activated=self.focus_search)
        self._set_enabled(False)
        if hasattr(app_context, "content_changed"):
            app_context.content_changed.connect(self._content_changed)

    def _empty_text(self) -> str:
        if self.project is None:
            return "No project is open."
        if self._loading and self.model.project is not self.project:  # the first load only: no flicker
            return "Loading prompts…"
        if self.model.rows:
            return "No prompt matches these filters. Clear the search or choose <i>All statuses</i>."
        return (
            "<b>No prompts yet.</b><br>Press <b>Import…</b> (Ctrl+I) to add prompts with candidate replies "
            "from a JSONL, JSON or CSV file, or import prompts alone and generate replies with a local "
            "model on the <b>Models</b> page."
        )

    # ---- project ------------------------------------------------------------------------------------

    def set_project(self, project) -> None:
        super().set_project(project)
        for h in (self._search_handle, self._load_handle, self._quality_handle):
            if h is not None and h.running:
                h.cancel()
        self._search_cache = {}
        self._search_ids = None
        self.search.clear()
        self.detail.clear()
        self.message.clear()
        self.model.clear()
        self.count.setText("")
        self.quality_label.clear()
        self._set_enabled(project is not None)
        self._stale = True
        if project is not None:
            self.refresh()

    def _set_enabled(self, on: bool) -> None:
        for w in (
            self.search,
            self.in_candidates,
            self.search_button,
            self.status_filter,
            self.split_filter,
            self.import_button,
            self.export_button,
        ):
            w.setEnabled(on)

    def refresh(self) -> None:
        """Reload the status rows (on the worker: a plain query, but 100,000 rows of it)."""
        project = self.project
        if project is None:
            return
        if self._load_handle is not None and self._load_handle.running:
            return
        self._stale = False
        self._loading = True
        self._load_handle = self.run_job(
            call_job(_load_rows, project, message="loading prompts"),
            "Loading prompts",
            on_finished=lambda rows, p=project: self._loaded(p, rows),
            on_failed=self._load_failed,
        )
        self.empty.update()

    def _load_failed(self, exc: BaseException) -> None:
        self._loading = False
        self.empty.update()
        self.show_error(exc)

    def _loaded(self, project, loaded) -> None:
        if project is not self.project:
            return  # closed or switched while loading
        self._loading = False
        rows, self._index = loaded
        self._index_rows = rows
        selected = self.current_prompt_id()
        self.model.set_rows(project, rows)
        self.apply_filters()
        if selected is not None:
            self.select_prompt(selected)
        self._scan_quality(project)

    def _scan_quality(self, project) -> None:
        if self._quality_handle is not None and self._quality_handle.running:
            return
        from core.quality import quality_scan

        self._quality_handle = self.run_job(
            lambda cancel: quality_scan(project, cancel=cancel),
            "Checking candidates",
            on_finished=lambda report, p=project: (
                self.quality_label.setText(report.text()) if p is self.project else None
            ),
            quiet=True,
        )

    def _content_changed(self, what: str) -> None:
        """Judgments, imports, runs (an evaluation adds candidates): re-read the statuses now if shown."""
        if self.project is None:
            return
        if self.isVisible():
            self.refresh()
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        if self._stale or (self.project is not None and self.model.project is self.project):
            # the Annotate page changes statuses; a cheap reload when coming back keeps them true
            self.refresh()
        super().showEvent(event)

    def apply_filters(self) -> None:
        if self._index_rows is not self.model.rows:
            self._index, self._index_rows = status_index(self.model.rows), self.model.rows
        shown = filter_rows(
            self.model.rows,
            self.status_filter.currentText(),
            self.split_filter.currentText(),
            self._search_ids,
            self._index,
        )
        self.model.set_shown(shown)
        total = len(self.model.rows)
        text = f"{len(shown):,} of {total:,} prompts" if len(shown) != total else f"{total:,} prompts"
        if total:
            counts = [
                f"{len(self._index.get(s, [])):,} {s}" for s in ("ranked", "skipped", "flagged") if self._index.get(s)
            ]
            text += " · " + (" · ".join(counts) if counts else "none judged yet: rank them on the Annotate page")
        self.count.setText(text)
        self.empty.update()

    # ---- search -------------------------------------------------------------------------------------

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def run_search(self) -> None:
        query = self.search.text().strip()
        if self.project is None:
            return
        if not query:
            self.clear_search()
            return
        if self._search_handle is not None and self._search_handle.running:
            self._search_handle.cancel()
        project = self.project
        self._search_handle = self.run_job(
            lambda cancel: search_prompts(
                project, query, responses=self.in_candidates.isChecked(), cache=self._search_cache, cancel=cancel
            ),
            "Searching",
            on_finished=lambda ids, p=project: self._search_done(p, ids),
            on_failed=self.show_error,
        )

    def _search_done(self, project, ids) -> None:
        if project is not self.project:
            return
        self._search_ids = set(ids)
        self.apply_filters()
        self.message.setText(f"{len(ids):,} match{'es' if len(ids) != 1 else ''}")

    def clear_search(self) -> None:
        if self._search_ids is not None:
            self._search_ids = None
            self.message.clear()
            self.apply_filters()

    # ---- selection and detail -----------------------------------------------------------------------

    def current_prompt_id(self) -> Optional[int]:
        idx = self.table.currentIndex()
        if not idx.isValid() or idx.row() >= self.model.rowCount():
            return None
        return self.model.prompt_id(idx.row())

    def select_prompt(self, prompt_id: int) -> None:
        row = self.model.row_of(prompt_id)
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))

    def _show_detail(self, current: QModelIndex, _previous=None) -> None:
        if self.project is None or not current.isValid():
            self.detail.clear()
            return
        pid = self.model.prompt_id(current.row())
        p = self.project.prompt(pid)
        parts = [f"<h4>Prompt #{p.position} · {p.split}</h4>", _pre(prompt_text(p.prompt))]
        if p.reference:
            parts += ["<h4>Reference</h4>", _pre(p.reference)]
        responses = self.project.responses(pid)
        for i, r in enumerate(responses, 1):
            parts += [f"<h4>Candidate {i}</h4>", _pre(r.text)]
        if not responses:
            parts.append("<p><i>No candidates yet.</i></p>")
        self.detail.setHtml("".join(parts))

    # ---- import / export ----------------------------------------------------------------------------

    def open_import_dialog(self, path: Optional[str] = None):
        from desktop.pages.import_dialog import ImportDialog

        if self.project is None:
            return None
        dialog = ImportDialog(self.app_context, self, path=path)
        dialog.import_requested.connect(self.start_import)
        dialog.open()
        if path is None:
            dialog.choose_file()
        return dialog

    def start_import(self, path: str, fmt: Optional[str], split: Optional[str]):
        project = self.project
        if project is None:
            return None

        def job(cancel):
            from core.data import import_file  # imported on the worker: the first import compiles

            return (yield from import_file(project, path, fmt=fmt, split=split, cancel=cancel))

        return self.run_job(
            job,
            f"Importing {Path(path).name}",
            on_finished=self._imported,
            on_failed=self._import_failed,
            on_cancelled=lambda: self.message.setText("Import cancelled; nothing was changed."),
        )

    def _imported(self, report) -> None:
        self.last_import = report
        self.message.setText(
            f"Imported {report.records:,} records: {report.prompts_added:,} new prompts, "
            f"{report.responses_added:,} candidates, {report.judgments_added:,} judgments."
        )
        self.refresh()
        self.imported.emit(report)

    def _import_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ImportFailed):
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Import rejected",
                f"{Path(exc.path).name}: nothing was imported. {len(exc.errors)} problem(s) found:",
                QMessageBox.StandardButton.Ok,
                self,
            )
            box.setDetailedText("\n".join(exc.errors))
            box.open()
        else:
            self.show_error(exc, "Import")

    def open_export_dialog(self):
        if self.project is None:
            return None
        dialog = ExportDialog(self)
        dialog.accepted.connect(lambda: self.confirm_export(dialog.path(), dialog.what(), dialog.fmt()))
        dialog.open()
        return dialog

    def confirm_export(self, path: str, what: str, fmt: str) -> QMessageBox:
        """Ask before writing anything in plaintext; the export starts only on Yes."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Export unencrypted data",
            f"This writes your {what} to\n{path}\nas an ordinary, unencrypted {fmt.upper()} file. "
            "Anyone who can read that file can read the text in it.\n\nExport anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText("Export unencrypted")
        box.finished.connect(
            lambda result: self.start_export(path, what, fmt) if result == QMessageBox.StandardButton.Yes else None
        )
        box.open()
        self.export_confirmation = box
        return box

    def start_export(self, path: str, what: str, fmt: str):
        project = self.project
        if project is None:
            return None

        def job(cancel):
            from core.data import export_data

            return (yield from export_data(project, path, what=what, fmt=fmt, plaintext=True, cancel=cancel))

        return self.run_job(
            job,
            f"Exporting {what}",
            on_finished=lambda n: self._exported(path, n),
            on_failed=lambda e: self.show_error(e, "Export"),
        )

    def _exported(self, path: str, rows: int) -> None:
        self.last_export = (path, rows)
        self.message.setText(f"Exported {rows:,} rows to {path} (unencrypted).")


def _pre(text: str) -> str:
    esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<pre style='white-space: pre-wrap; font-family: inherit;'>{esc}</pre>"


class ExportDialog(QDialog):
    """What to export, in which format, where. Nothing is written until the user confirms plaintext."""

    WHAT = (("Preference pairs (TRL)", "pairs"), ("Rankings (re-importable)", "rankings"), ("Prompts", "prompts"))
    FORMATS = (("JSONL", "jsonl"), ("JSON", "json"), ("CSV", "csv"))

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.setMinimumWidth(520)
        form = QFormLayout(self)
        self.what_box = QComboBox()
        for label, key in self.WHAT:
            self.what_box.addItem(label, key)
        self.fmt_box = QComboBox()
        for label, key in self.FORMATS:
            self.fmt_box.addItem(label, key)
        self.path_edit = QLineEdit(str(Path.home() / "export.jsonl"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        note = QLabel("Exported files are not encrypted. You will be asked to confirm.")
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.addButton("Export…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow("Export:", self.what_box)
        form.addRow("Format:", self.fmt_box)
        form.addRow("File:", row)
        form.addRow(note)
        form.addRow(self.buttons)
        self.fmt_box.currentIndexChanged.connect(self._fix_suffix)

    def _fix_suffix(self) -> None:
        p = Path(self.path_edit.text())
        if p.suffix.lower() in (".jsonl", ".json", ".csv"):
            self.path_edit.setText(str(p.with_suffix("." + self.fmt())))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text())
        if path:
            self.path_edit.setText(path)

    def path(self) -> str:
        return self.path_edit.text().strip()

    def what(self) -> str:
        return self.what_box.currentData()

    def fmt(self) -> str:
        return self.fmt_box.currentData()
