"""The main window: start screen, navigation between pages, status bar, menus, auto-lock.

Opening, creating and unlocking a project run on the job worker (Argon2id takes a moment); pages get
the project through `Page.set_project` and are handed None when it is closed or locked.
"""

from __future__ import annotations

import gc
import inspect
import os
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core.project import Project
from desktop.context import AppContext
from desktop.dialogs import NewProjectWizard, UnlockDialog
from desktop.idle import IdleWatcher
from desktop.pages.activity import ActivityPage
from desktop.pages.base import Page, PlaceholderPage, show_error
from desktop.pages.data import DataPage
from desktop.start_screen import StartScreen
from desktop.worker import JobProgressWidget, call_job

DEMO_PASSPHRASE = "demo"  # documented: the demo holds no private data
DEMO_ENV = "RLHF_STUDIO_DEMO_PROJECT"


def demo_path() -> Path:
    return Path(os.environ.get(DEMO_ENV) or Path.home() / ".local/share/rlhf-studio/demo.rlhfproj")


PLACEHOLDERS = {
    "Train": "Train a reward model on your rankings, then fine-tune the model against it (PPO, RLOO/GRPO "
    "or DPO), with live loss and reward charts, samples, cancel and resume.",
    "Evaluate": "Blind A/B comparisons of the tuned model against the base on held-out prompts, judged by "
    "you: win rate with an interval, reward distributions, and your own consistency.",
    "Models": "Base and fine-tuned models of this project, their runs and checkpoints, and export as a "
    "standard Hugging Face folder.",
}


def _annotate_page(ctx) -> QWidget:
    try:
        from desktop.pages.annotate import AnnotatePage
    except ImportError:
        return PlaceholderPage(ctx, "Annotate", "Rank, compare and rate candidates, keyboard first.")
    params = inspect.signature(AnnotatePage).parameters
    page = AnnotatePage(ctx) if params else AnnotatePage()
    if not getattr(page, "title", None) or not isinstance(getattr(page, "title"), str):
        page.title = "Annotate"
    return page


def _optional_page(ctx, module: str, cls: str, title: str) -> QWidget:
    """A page another engineer builds on `Page`; a placeholder until it lands."""
    try:
        mod = __import__(f"desktop.pages.{module}", fromlist=[cls])
        return getattr(mod, cls)(ctx)
    except (ImportError, AttributeError):
        return PlaceholderPage(ctx, title, PLACEHOLDERS[title])


class LockedScreen(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.label = QLabel("<h2>Project locked</h2>")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        note = QLabel("The key was dropped and every decrypted view was cleared.")
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        row = QHBoxLayout()
        row.addStretch(1)
        unlock = QPushButton("Unlock…")
        unlock.clicked.connect(window.show_unlock_for_locked)
        close = QPushButton("Close project")
        close.clicked.connect(window.close_project)
        row.addWidget(unlock)
        row.addWidget(close)
        row.addStretch(1)
        layout.addWidget(self.label)
        layout.addWidget(note)
        layout.addLayout(row)
        layout.addStretch(2)


class PreferencesDialog(QDialog):
    def __init__(self, ctx: AppContext, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        form = QFormLayout(self)
        self.idle = QDoubleSpinBox()
        self.idle.setRange(0, 24 * 60)
        self.idle.setDecimals(1)
        self.idle.setSuffix(" min")
        self.idle.setSpecialValueText("never")
        self.idle.setValue(ctx.idle_minutes())
        form.addRow("Lock after idle:", self.idle)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class MainWindow(QMainWindow):
    def __init__(self, ctx: Optional[AppContext] = None, detect_device: bool = True):
        super().__init__()
        self.ctx = ctx or AppContext()
        self.ctx.setParent(self)
        self.setWindowTitle("RLHF Studio")
        self.resize(1280, 800)
        self.unlock_dialog: Optional[UnlockDialog] = None
        self.wizard: Optional[NewProjectWizard] = None

        # pages
        self.pages: list[QWidget] = [
            DataPage(self.ctx),
            _annotate_page(self.ctx),
            _optional_page(self.ctx, "train", "TrainPage", "Train"),
            _optional_page(self.ctx, "evaluate", "EvaluatePage", "Evaluate"),
            _optional_page(self.ctx, "models", "ModelsPage", "Models"),
            ActivityPage(self.ctx),
        ]
        self.page("Data").imported.connect(self._data_changed)
        if hasattr(self.page("Models"), "candidates_added"):  # generated candidates: as an import does
            self.page("Models").candidates_added.connect(self._data_changed)
        self.nav = QListWidget()
        self.nav.setFixedWidth(150)
        self.nav.setObjectName("nav")
        self.nav.setStyleSheet("QListWidget#nav::item { padding: 8px 10px; }")
        self.page_stack = QStackedWidget()
        for page in self.pages:
            self.nav.addItem(page.title)
            self.page_stack.addWidget(page)
        self.nav.currentRowChanged.connect(self._nav_changed)
        workspace = QWidget()
        row = QHBoxLayout(workspace)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.nav)
        row.addWidget(self.page_stack, 1)

        self.start = StartScreen()
        self.start.new_requested.connect(self.new_project)
        self.start.open_requested.connect(self.open_project_dialog)
        self.start.demo_requested.connect(self.open_demo)
        self.start.recent_chosen.connect(self.open_path)
        self.start.recent_removed.connect(self._remove_recent)
        self.locked_screen = LockedScreen(self)
        self.stack = QStackedWidget()
        for w in (self.start, workspace, self.locked_screen):
            self.stack.addWidget(w)
        self.workspace = workspace
        self.setCentralWidget(self.stack)

        # status bar
        sb = self.statusBar()
        self.project_label = QLabel("No project")
        self.lock_label = QLabel("")
        self.device_label = QLabel("Device: …")
        self.job_widget = JobProgressWidget(self.ctx.runner)
        sb.addWidget(self.project_label)
        sb.addWidget(self.lock_label)
        sb.addPermanentWidget(self.job_widget)
        sb.addPermanentWidget(self.device_label)

        self._build_menus()
        self.idle = IdleWatcher(self.ctx.idle_minutes(), self)
        self.idle.idle.connect(self.lock)
        self.ctx.project_changed.connect(self._project_changed)
        self._project_changed(None)
        self.nav.setCurrentRow(0)
        gc.freeze()  # the pages' long-lived objects: out of the collector's way (see desktop.worker)
        if detect_device:
            from core.system import device_summary

            self.ctx.run_job(
                call_job(device_summary, message="detecting compute device"),
                "Detecting device",
                on_finished=lambda s: self.device_label.setText(s),
                on_failed=lambda e: self.device_label.setText("Device: unknown"),
                quiet=True,
            )

    # ---- menus --------------------------------------------------------------------------------------

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        SK = QKeySequence.StandardKey
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&New Project…", self.new_project, SK.New)
        self._action(f, "&Open Project…", self.open_project_dialog, SK.Open)
        self._action(f, "Open &Demo", self.open_demo)
        f.addSeparator()
        self.import_action = self._action(f, "&Import…", self._import, "Ctrl+I")
        self.export_action = self._action(f, "&Export…", self._export, "Ctrl+Shift+E")
        f.addSeparator()
        self.lock_action = self._action(f, "&Lock", self.lock, "Ctrl+L")
        self.close_action = self._action(f, "&Close Project", self.close_project, SK.Close)
        f.addSeparator()
        self._action(f, "&Preferences…", self.preferences, SK.Preferences)
        self._action(f, "&Quit", self.close, SK.Quit)
        e = mb.addMenu("&Edit")
        self.find_action = self._action(e, "&Find Prompts", self._find, SK.Find)
        v = mb.addMenu("&View")
        self.page_actions = []
        for i, page in enumerate(self.pages):
            self.page_actions.append(
                self._action(v, page.title, lambda _=False, i=i: self.show_page(i), f"Alt+{i + 1}")
            )
        v.addSeparator()
        self._action(v, "&Full Screen", self._toggle_full_screen, SK.FullScreen)
        h = mb.addMenu("&Help")
        self._action(h, "&Keyboard Shortcuts", self.show_shortcuts, SK.HelpContents)
        self._action(h, "&About RLHF Studio", self.about)

    def _project_actions(self, on: bool) -> None:
        for a in (
            self.import_action,
            self.export_action,
            self.lock_action,
            self.close_action,
            self.find_action,
            *self.page_actions,
        ):
            a.setEnabled(on)

    # ---- pages --------------------------------------------------------------------------------------

    def page(self, title: str) -> QWidget:
        return next(p for p in self.pages if p.title == title)

    def show_page(self, index_or_title) -> None:
        i = index_or_title if isinstance(index_or_title, int) else [p.title for p in self.pages].index(index_or_title)
        self.nav.setCurrentRow(i)

    def _data_changed(self, *_) -> None:
        """Content was added: let the other pages reload (Annotate's empty queue may have work now)."""
        project = self.ctx.project
        self.ctx.notify_changed("import")  # pages with derived figures (Train's pre-flight) re-read them
        for page in self.pages:
            if page is self.page("Data") or project is None:
                continue
            overridden = type(page).data_changed is not Page.data_changed if isinstance(page, Page) else False
            if overridden:
                page.data_changed()
            elif getattr(page, "item", "") is None and hasattr(page, "set_project"):
                page.set_project(project)  # an empty annotation queue: start it again

    def _nav_changed(self, row: int) -> None:
        self.page_stack.setCurrentIndex(row)
        page = self.page_stack.currentWidget()
        if page is not None and self.ctx.project is not None:
            page.setFocus()  # keys go to the page (Annotate is keyboard-first), not the list

    def _project_changed(self, project) -> None:
        for page in self.pages:
            if hasattr(page, "set_project"):
                page.set_project(project)
        on = project is not None
        self._project_actions(on)
        if on:
            self.project_label.setText(f"Project: {project.path.name.removesuffix('.rlhfproj')}")
            self.lock_label.setText("Unlocked")
            self.stack.setCurrentWidget(self.workspace)
            self.setWindowTitle(f"{project.path.name.removesuffix('.rlhfproj')} — RLHF Studio")
            self.idle.set_minutes(self.ctx.idle_minutes())
            self.idle.arm()
        else:
            self.idle.disarm()
            if self.ctx.locked:
                self.project_label.setText(f"Project: {self.ctx.project_path.name.removesuffix('.rlhfproj')}")
                self.lock_label.setText("Locked")
                self.stack.setCurrentWidget(self.locked_screen)
            else:
                self.project_label.setText("No project")
                self.lock_label.setText("")
                self.start.set_recent(self.ctx.recent_projects())
                self.stack.setCurrentWidget(self.start)
            self.setWindowTitle("RLHF Studio")

    # ---- open / create / lock -----------------------------------------------------------------------

    def _replace_project(self, then) -> None:
        """Close the current project (if any), then call `then` once it is really closed."""
        if self.ctx.project is not None or self.ctx.locked:
            self.ctx.close_project()
        self.ctx.after_closed(then)

    def new_project(self) -> NewProjectWizard:
        default = Path.home() / "Documents"
        self.wizard = NewProjectWizard(default if default.is_dir() else Path.home(), self)
        self.wizard.accepted.connect(lambda w=self.wizard: self.create_project(w.target(), w.passphrase()))
        self.wizard.open()
        return self.wizard

    def create_project(self, path: Path, passphrase: str) -> None:
        if self.wizard is not None:  # the passphrase is needed once, here
            self.wizard.pass_page.first.clear()
            self.wizard.pass_page.second.clear()
        self._replace_project(
            lambda: self.ctx.run_job(
                call_job(Project.create, path, passphrase, message="deriving key"),
                "Creating project",
                on_finished=self.ctx.set_project,
                on_failed=lambda e: show_error(self, e, "New project"),
            )
        )

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project (a .rlhfproj folder)", str(Path.home()))
        if folder:
            self.open_path(folder)

    def open_path(self, path: str | Path, locked: bool = False) -> UnlockDialog:
        path = Path(path)
        if self.unlock_dialog is not None:
            self.unlock_dialog.close()
        dialog = UnlockDialog(self.ctx, path, self, locked=locked)
        dialog.unlocked.connect(self.ctx.set_project)
        if locked:
            dialog.rejected.connect(lambda: None)  # stays on the locked screen; Unlock… reopens it
        self.unlock_dialog = dialog
        if self.ctx.project is not None and Path(self.ctx.project.path) != path:
            self._replace_project(dialog.open)
        elif self.ctx.project is not None:
            return dialog  # already open
        else:
            self.ctx.after_closed(dialog.open)
        return dialog

    def open_demo(self) -> None:
        """Open the demo project, creating it first if needed (a job: it samples candidates)."""
        path = demo_path()

        def start():
            if (path / "key.json").exists():
                self.ctx.run_job(
                    call_job(Project.open, path, DEMO_PASSPHRASE, message="deriving key"),
                    "Opening demo",
                    on_finished=self.ctx.set_project,
                    on_failed=lambda e: show_error(self, e, "Demo"),
                )
                return
            from core.demo.project import create_demo_project

            path.parent.mkdir(parents=True, exist_ok=True)
            self.start.set_busy(
                "Creating the demo project: the built-in model writes four candidate replies "
                "per prompt (the first time only)…"
            )

            def failed(e):
                self.start.set_busy("")
                show_error(self, e, "Demo")

            def created(report):
                self.start.set_busy("")
                self.ctx.set_project(report.project)

            self.ctx.run_job(
                lambda cancel: create_demo_project(path, DEMO_PASSPHRASE, keep_open=True, cancel=cancel),
                "Creating demo project",
                on_finished=created,
                on_failed=failed,
                on_cancelled=lambda: self.start.set_busy(""),
            )

        if self.ctx.project is not None and Path(self.ctx.project.path) == path:
            return
        self._replace_project(start)

    def lock(self) -> None:
        """Drop the key, clear every view, ask for the passphrase."""
        if self.ctx.project is None:
            return
        for dialog in self.findChildren(QDialog):  # import previews, export, wizards: nothing stays up
            if dialog.isVisible():
                dialog.reject()
        self.ctx.close_project(lock=True)
        self.ctx.after_closed(self.show_unlock_for_locked)

    def show_unlock_for_locked(self) -> None:
        if self.ctx.locked and self.ctx.project_path is not None:
            self.open_path(self.ctx.project_path, locked=True)

    def close_project(self) -> None:
        if self.unlock_dialog is not None:
            self.unlock_dialog.close()
        self.ctx.close_project()

    def _remove_recent(self, path: str) -> None:
        self.ctx.remove_recent(path)
        self.start.set_recent(self.ctx.recent_projects())

    # ---- other actions ------------------------------------------------------------------------------

    def _import(self) -> None:
        self.show_page("Data")
        self.page("Data").open_import_dialog()

    def _export(self) -> None:
        self.show_page("Data")
        self.page("Data").open_export_dialog()

    def _find(self) -> None:
        self.show_page("Data")
        self.page("Data").focus_search()

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def preferences(self) -> None:
        dialog = PreferencesDialog(self.ctx, self)

        def save():
            self.ctx.set_idle_minutes(dialog.idle.value())
            self.idle.set_minutes(dialog.idle.value())
            if self.ctx.project is not None:
                self.idle.arm()

        dialog.accepted.connect(save)
        dialog.open()

    def show_shortcuts(self) -> None:
        lines = [
            (a.text().replace("&", ""), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText))
            for m in self.menuBar().findChildren(QAction)
            for a in [m]
            if not a.shortcut().isEmpty()
        ]
        rows = "".join(f"<tr><td>{t}</td><td>&nbsp;&nbsp;<b>{k}</b></td></tr>" for t, k in lines)
        QMessageBox.information(
            self, "Keyboard shortcuts", f"<table>{rows}</table><p>On the Annotate page press <b>?</b> for its keys.</p>"
        )

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About RLHF Studio",
            "<b>RLHF Studio</b><br>Offline RLHF for domain experts. Projects are encrypted "
            "(Argon2id + AES-256-GCM); nothing leaves this machine.",
        )

    def closeEvent(self, event) -> None:
        self.idle.remove()
        self.ctx.shutdown()
        super().closeEvent(event)
