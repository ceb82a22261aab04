"""Models page: the project's registered local models with device, dtype and memory; add, remove, generate.

The list of model folders is an encrypted project setting ("models"; paths can name a client or a case).
Everything that touches a model (validating a folder, counting its parameters for the memory estimate,
generation) runs as a job (core.ops.models) on the worker: the GUI thread never imports a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.ops.format import fmt_bytes, fmt_params
from core.ops.ml_imports import ml_job
from core.ops.models import describe_models_job, export_job, validate_model_job
from desktop.pages.base import Page, error_text
from desktop.widgets.empty_state import EmptyState

MODELS_KEY = "models"
COLUMNS = ("Model", "Type", "Parameters", "Device", "Dtype", "Inference", "Training", "Free", "Folder")
TUNED_COLUMNS = ("Run", "Kind", "Method", "Base model", "Status", "Steps", "Result", "Checkpoints")


# ---- the registry (an encrypted project setting) -------------------------------------------------------


def registered_models(proj) -> list[str]:
    """Registered model folders, plus the demo model of a demo project (not stored twice)."""
    paths = [str(p) for p in (proj.get_setting(MODELS_KEY, []) or [])]
    demo = proj.get_setting("demo") or {}
    if isinstance(demo, dict) and demo.get("model") and demo["model"] not in paths:
        paths.append(str(demo["model"]))
    return paths


def register_model(proj, path: str | Path) -> list[str]:
    path = str(Path(path).expanduser().resolve())
    paths = [str(p) for p in (proj.get_setting(MODELS_KEY, []) or [])]
    if path not in paths:
        paths.append(path)
        proj.set_setting(MODELS_KEY, paths)
    return paths


def unregister_model(proj, path: str) -> list[str]:
    paths = [str(p) for p in (proj.get_setting(MODELS_KEY, []) or []) if str(p) != path]
    proj.set_setting(MODELS_KEY, paths)
    return paths


# ---- export (plaintext: always asked first) ----------------------------------------------------------


def export_folder_name(project, run_id: int) -> str:
    return f"{Path(project.path).name.removesuffix('.rlhfproj')}-run-{run_id}"


def export_folder(chosen: str | Path, project, run_id: int) -> Path:
    """Where the export goes: the chosen folder when it is new or empty, else a new folder inside it named
    after the project and run (`demo-run-2`, then `demo-run-2-2`, …), so choosing Documents just works."""
    chosen = Path(chosen)
    if not chosen.exists() or (chosen.is_dir() and not any(chosen.iterdir())):
        return chosen
    name = export_folder_name(project, run_id)
    target, n = chosen / name, 1
    while target.exists():
        n += 1
        target = chosen / f"{name}-{n}"
    return target


def ask_export_model(
    parent: QWidget,
    page: Page,
    project,
    run_id: int,
    on_started: Callable[[Any], None],
    on_status: Callable[[str], None],
) -> QMessageBox:
    """A warning first (the export is unencrypted); on yes, a folder; then the export runs as a job.

    Returns the (open, non-blocking) message box; its `yes` button confirms.
    """
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Export model",
        f"Export the tuned model of run {run_id} as a standard Hugging Face folder?\n\n"
        "The weights are written unencrypted, outside the project. Anyone who can read that "
        "folder can use the model, and a model can reveal parts of its training data.\n\n"
        "You then choose a folder: the model goes into it if it is empty, else into a new "
        f"\u201c{export_folder_name(project, run_id)}\u201d folder inside it.",
        QMessageBox.StandardButton.Cancel,
        parent,
    )
    box.yes = box.addButton("Export unencrypted…", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)

    def confirmed(button) -> None:
        if button is not box.yes:
            return
        chosen = QFileDialog.getExistingDirectory(
            parent, "Export the model into (a new folder is made here unless this one is empty)", str(Path.home())
        )
        if not chosen:
            return
        folder = str(export_folder(chosen, project, run_id))
        on_status(f"Exporting run {run_id}…")

        def failed(exc: BaseException) -> None:
            on_status(error_text(exc))
            page.show_error(exc, "Export model")

        on_started(
            page.run_job(
                export_job(project, run_id, folder),
                "Exporting model",
                on_finished=lambda out: on_status(f"Exported run {run_id} to {out}."),
                on_failed=failed,
            )
        )

    box.buttonClicked.connect(confirmed)
    box.open()
    return box


# ---- the page ------------------------------------------------------------------------------------------


class ModelsPage(Page):
    title = "Models"
    models_changed = Signal(list)  # the registered paths, after an add or a remove
    candidates_added = Signal(object)  # a GenerationReport that added candidates: the other pages reload

    def __init__(self, app_context, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        self.paths: list[str] = []
        self.info: dict[str, dict[str, Any]] = {}
        self._epoch = 0  # bumped on every project change: late job results for an old project are dropped
        self.generate_dialog = None

        layout = QVBoxLayout(self)
        head = QLabel("<h2>Models</h2>")
        intro = QLabel(
            "Local Hugging Face model folders this project uses: to generate candidates, as the base "
            "of a reward model, or as the policy to fine-tune. Memory is estimated from the "
            "config, without loading the weights."
        )
        intro.setWordWrap(True)
        layout.addWidget(head)
        layout.addWidget(intro)

        row = QHBoxLayout()
        self.add_button = QPushButton("Add model folder…")
        self.add_button.clicked.connect(self.choose_folder)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.generate_button = QPushButton("Generate candidates…")
        self.generate_button.clicked.connect(self.open_generate_dialog)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        for b in (self.add_button, self.remove_button, self.generate_button, self.refresh_button):
            row.addWidget(b)
        row.addStretch(1)
        layout.addLayout(row)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        for i in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda *_: self.open_generate_dialog())
        self.table_empty = EmptyState(
            self.table,
            "<b>No models yet.</b><br>Press <b>Add model folder…</b> and "
            "choose a local Hugging Face folder (config.json, weights, "
            "tokenizer): it generates candidates and is the base you "
            "fine-tune.",
        )

        tuned_box = QGroupBox("Trained in this project (encrypted checkpoints)")
        tv = QVBoxLayout(tuned_box)
        self.tuned = QTableWidget(0, len(TUNED_COLUMNS))
        self.tuned.setHorizontalHeaderLabels(TUNED_COLUMNS)
        self.tuned.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tuned.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tuned.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tuned.verticalHeader().setVisible(False)
        self.tuned.setAlternatingRowColors(True)
        th = self.tuned.horizontalHeader()
        for i in range(len(TUNED_COLUMNS)):
            th.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        th.setStretchLastSection(True)
        self.tuned.itemSelectionChanged.connect(self._update_buttons)
        self.tuned_empty = EmptyState(
            self.tuned,
            "Nothing trained yet. Reward models and tuned policies from the "
            "<b>Train</b> page appear here; select a policy run to export it.",
        )
        tv.addWidget(self.tuned)
        trow = QHBoxLayout()
        self.export_button = QPushButton("Export model…")
        self.export_button.setToolTip(
            "Write the selected policy run's tuned model as a Hugging Face folder (unencrypted; you are asked first)."
        )
        self.export_button.clicked.connect(lambda: self.export_selected())
        trow.addWidget(self.export_button)
        trow.addStretch(1)
        tv.addLayout(trow)
        self.export_confirm = None
        self.export_handle = None

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(tuned_box)
        split.setSizes([360, 300])
        layout.addWidget(split, 1)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self.note = QLabel(
            "Inference: weights plus KV cache at a moderate batch. Training: weights, gradients "
            "and AdamW state for a full fine-tune (LoRA needs far less). Free: on that device now."
        )
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self._update_buttons()
        if hasattr(app_context, "content_changed"):
            app_context.content_changed.connect(self._content_changed)

    def _content_changed(self, what: str) -> None:
        """A run ended while this page is up (training goes on in the background): list it now."""
        if self.project is not None and self.isVisible():
            if registered_models(self.project) != self.paths:
                self.refresh()
            else:
                self.refresh_tuned()

    # ---- project ---------------------------------------------------------------------------------------

    def set_project(self, project) -> None:
        super().set_project(project)
        self._epoch += 1
        self.paths, self.info = [], {}
        self.table.setRowCount(0)
        self.tuned.setRowCount(0)
        if self.export_confirm is not None:
            self.export_confirm.close()
        self.status.setText("")
        if self.generate_dialog is not None:
            self.generate_dialog.close()
            self.generate_dialog = None
        if project is not None:
            self.refresh()
        self._update_buttons()

    def refresh(self) -> None:
        """Re-read the registry and re-estimate every model (a job)."""
        if self.project is None:
            return
        self.paths = registered_models(self.project)
        self._fill()
        self.refresh_tuned()
        if not self.paths:
            self.status.setText("No models yet. Add a model folder (config.json, weights, tokenizer).")
            return
        epoch = self._epoch
        self.status.setText("Estimating memory…")
        paths = list(self.paths)
        self.run_job(
            ml_job(lambda cancel: describe_models_job(paths, cancel)),
            "Estimating model memory",
            on_finished=lambda info: self._described(epoch, info),
            on_failed=lambda e: self._failed(epoch, e),
        )

    def _described(self, epoch: int, info: dict) -> None:
        if epoch != self._epoch:
            return
        self.info.update(info)
        bad = sum(1 for v in info.values() if "error" in v)
        self.status.setText(f"{len(self.paths)} model(s)" + (f"; {bad} could not be read" if bad else ""))
        self._fill()

    def _failed(self, epoch: int, exc: BaseException) -> None:
        if epoch == self._epoch:
            self.status.setText(error_text(exc))

    # ---- add / remove ----------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Model folder (config.json, weights, tokenizer)", str(Path.home())
        )
        if folder:
            self.add_model(folder)

    def add_model(self, folder: str | Path):
        """Validate `folder` with the loader (a job), then register it. Returns the job handle."""
        if self.project is None:
            return None
        epoch = self._epoch
        self.status.setText(f"Checking {Path(folder).name}…")
        self.add_button.setEnabled(False)
        return self.run_job(
            ml_job(lambda cancel: validate_model_job(folder, cancel)),
            "Checking model folder",
            on_finished=lambda info: self._added(epoch, info),
            on_failed=lambda e: self._add_failed(epoch, e),
            on_cancelled=lambda: self.add_button.setEnabled(self.project is not None),
        )

    def _added(self, epoch: int, info: dict) -> None:
        self.add_button.setEnabled(self.project is not None)
        if epoch != self._epoch or self.project is None:
            return
        register_model(self.project, info["path"])
        self.info[info["path"]] = info
        self.paths = registered_models(self.project)
        self._fill()
        self._select(info["path"])
        self.status.setText(
            f"Added {Path(info['path']).name}: {fmt_params(info['parameters'])} parameters on "
            f"{info['device']} ({info['dtype']})."
        )
        self.models_changed.emit(list(self.paths))

    def _add_failed(self, epoch: int, exc: BaseException) -> None:
        self.add_button.setEnabled(self.project is not None)
        if epoch != self._epoch:
            return
        self.status.setText(error_text(exc))
        self.show_error(exc, "Add model folder")

    def remove_selected(self) -> None:
        path = self.selected_path()
        if path is None or self.project is None:
            return
        unregister_model(self.project, path)
        self.paths = registered_models(self.project)
        self.info.pop(path, None)
        self._fill()
        self.status.setText(f"Removed {Path(path).name} from the project (the folder itself is untouched).")
        self.models_changed.emit(list(self.paths))

    # ---- generate --------------------------------------------------------------------------------------

    def open_generate_dialog(self, prompt_ids: Optional[list[int]] = None):
        from desktop.dialogs_generate import GenerateDialog

        if self.project is None:
            return None
        dialog = GenerateDialog(
            self.app_context, self.project, self.paths, model=self.selected_path(), prompt_ids=prompt_ids, parent=self
        )
        dialog.model_used.connect(self._generated_with)
        dialog.generated.connect(lambda report: self.candidates_added.emit(report) if report.added else None)
        self.generate_dialog = dialog
        dialog.show()  # non-modal: generation may take a while
        return dialog

    def _generated_with(self, path: str) -> None:
        if self.project is not None and path not in self.paths:
            register_model(self.project, path)
            self.refresh()

    # ---- table -----------------------------------------------------------------------------------------

    def selected_path(self) -> Optional[str]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _select(self, path: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == path:
                self.table.selectRow(r)
                return

    def row_texts(self, path: str) -> dict[str, str]:
        """The shown cells of a model's row by column name (tests and screenshots read them)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == path:
                return {c: self.table.item(r, i).text() for i, c in enumerate(COLUMNS)}
        raise KeyError(path)

    def _fill(self) -> None:
        selected = self.selected_path()
        self.table.setRowCount(len(self.paths))
        for r, path in enumerate(self.paths):
            info = self.info.get(path)
            if info is None:
                cells = [Path(path).name, "…", "", "", "", "", "", "", path]
            elif "error" in info:
                cells = [Path(path).name, "unreadable", "", "", "", "", "", "", path]
            else:
                cells = [
                    Path(path).name,
                    info["model_type"],
                    fmt_params(info["parameters"]),
                    info["device"],
                    info["dtype"],
                    fmt_bytes(info["memory_bytes"]),
                    fmt_bytes(info["memory_training_bytes"]),
                    fmt_bytes(info["available_bytes"]),
                    path,
                ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setData(Qt.ItemDataRole.UserRole, path)
                if info is not None and "error" in info:
                    item.setToolTip(info["error"])
                elif c == len(cells) - 1:
                    item.setToolTip(path)
                if c in (2, 5, 6, 7):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        if selected:
            self._select(selected)
        self._update_buttons()

    def refresh_tuned(self) -> None:
        """Reward and policy runs with their checkpoints (sizes from the store: no decryption of weights)."""
        if self.project is None:
            return
        runs = sorted((r for r in self.project.runs() if r.kind in ("reward", "policy")), key=lambda r: -r.id)
        selected = self.selected_tuned()
        self.tuned.blockSignals(True)  # no selection callback while rows are half filled
        self.tuned.setRowCount(len(runs))
        for i, run in enumerate(runs):
            s, c = run.summary or {}, run.config or {}
            if run.kind == "policy":
                pc = c.get("policy", {})
                method, base = f"{str(pc.get('algo', '')).upper()} ({pc.get('mode', '')})", pc.get("policy_path", "")
                final = s.get("final") or {}
                result = f"reward {final['reward/mean']:+.3f}" if "reward/mean" in final else ""
            else:
                method, base = f"{c.get('finetune', '')} ({c.get('preset', '')})", c.get("base_model", "")
                acc = s.get("final/accuracy/val")
                result = f"accuracy {100 * acc:.1f}%" if acc is not None else ""
            arts = self.project.artifacts(run.id)
            ckpt = ", ".join(f"{a.name} {fmt_bytes(a.size)}" for a in arts if a.name != "data")
            steps = s.get("steps")
            cells = [
                str(run.id),
                "reward model" if run.kind == "reward" else "policy",
                method,
                Path(base).name,
                run.status,
                "" if steps is None else f"{steps:,}",
                result,
                ckpt,
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, (run.id, run.kind, run.status))
                if col == 3:
                    item.setToolTip(base)
                self.tuned.setItem(i, col, item)
        self.tuned.blockSignals(False)
        if selected is not None:
            self._select_tuned(selected[0])
        else:  # the newest exportable policy run, so Export model… is one click away
            ready = [r.id for r in runs if r.kind == "policy" and r.status in ("done", "cancelled")]
            if ready:
                self._select_tuned(ready[0])
        self._update_buttons()

    def _select_tuned(self, run_id: int) -> None:
        for r in range(self.tuned.rowCount()):
            if self.tuned.item(r, 0).data(Qt.ItemDataRole.UserRole)[0] == run_id:
                self.tuned.selectRow(r)
                return

    def selected_tuned(self) -> Optional[tuple]:
        rows = self.tuned.selectionModel().selectedRows() if self.tuned.selectionModel() else []
        return self.tuned.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def export_selected(self) -> Optional[QMessageBox]:
        sel = self.selected_tuned()
        if self.project is None or sel is None or sel[1] != "policy":
            return None
        self.export_confirm = ask_export_model(
            self, self, self.project, sel[0], lambda h: setattr(self, "export_handle", h), self._status_if_open
        )
        return self.export_confirm

    def _status_if_open(self, text: str) -> None:
        if self.project is not None:
            self.status.setText(text)

    def showEvent(self, event) -> None:  # runs finish on the Train page: show them when coming back
        if self.project is not None:
            if registered_models(self.project) != self.paths:  # e.g. Browse… on the Train page added one
                self.refresh()
            else:
                self.refresh_tuned()
        super().showEvent(event)

    def _update_buttons(self) -> None:
        on = self.project is not None
        sel = self.selected_tuned() if on else None
        self.export_button.setEnabled(sel is not None and sel[1] == "policy" and sel[2] in ("done", "cancelled"))
        self.add_button.setEnabled(on)
        self.refresh_button.setEnabled(on)
        self.generate_button.setEnabled(on)
        stored = [str(p) for p in (self.project.get_setting(MODELS_KEY, []) or [])] if on else []
        # the demo project's own model is listed from its "demo" setting, not registered: nothing to remove
        self.remove_button.setEnabled(on and self.selected_path() in stored)
