"""Unlock dialog and new-project wizard. The Argon2id work (open / create) runs on the job worker."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from core.errors import WrongPassphrase
from core.passphrase import strength
from core.project import SUFFIX, Project
from desktop.pages.base import error_text
from desktop.worker import call_job

MIN_PASSPHRASE = 8


def _error_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setObjectName("error")
    label.setStyleSheet("QLabel#error { color: #d33c3c; font-weight: 600; }")
    label.setVisible(False)
    return label


class UnlockDialog(QDialog):
    """Asks for the passphrase of one project and opens it off the GUI thread.

    Emits `unlocked(project)`; a wrong passphrase shows a message and lets the user try again.
    """

    unlocked = Signal(object)

    def __init__(self, app_context, path: str | Path, parent: Optional[QWidget] = None, locked: bool = False):
        super().__init__(parent)
        self.app_context = app_context
        self.path = Path(path)
        self.project = None
        self.handle = None
        self.attempts = 0
        self.setWindowTitle("Unlock project")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        name = self.path.name.removesuffix(SUFFIX)
        heading = QLabel(f"<h3>{'Locked: ' if locked else ''}{_html(name)}</h3>")
        where = QLabel(str(self.path))
        where.setObjectName("path")
        where.setWordWrap(True)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        why = QLabel(
            "The project was locked after a period of inactivity. Enter the passphrase to continue."
            if locked
            else "Enter the project's passphrase."
        )
        why.setWordWrap(True)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("Passphrase")
        self.passphrase.returnPressed.connect(self.unlock)
        self.show_box = QCheckBox("Show passphrase")
        self.show_box.toggled.connect(
            lambda on: self.passphrase.setEchoMode(QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password)
        )
        self.error = _error_label()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(8)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.unlock_button = self.buttons.addButton("Unlock", QDialogButtonBox.ButtonRole.AcceptRole)
        self.unlock_button.setDefault(True)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setAutoDefault(False)
        self.buttons.accepted.connect(self.unlock)
        self.buttons.rejected.connect(self.reject)
        for w in (heading, where, why, self.passphrase, self.show_box, self.error, self.busy, self.buttons):
            layout.addWidget(w)

    def unlock(self) -> None:
        if self.handle is not None and self.handle.running:
            return
        pw = self.passphrase.text()
        if not pw:
            self._show_error("Type the passphrase.")
            return
        self.attempts += 1
        self._set_busy(True)
        self.handle = self.app_context.run_job(
            call_job(Project.open, self.path, pw, message="deriving key"),
            "Unlocking",
            on_finished=self._opened,
            on_failed=self._failed,
        )

    def _opened(self, project) -> None:
        if not self.isVisible():  # the dialog was cancelled while the key was being derived
            project.close()
            return
        self.project = project
        self.passphrase.clear()
        self._set_busy(False)
        self.unlocked.emit(project)
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, WrongPassphrase):
            self._show_error("Wrong passphrase. Try again.")
        else:
            self._show_error(error_text(exc))
        self.passphrase.selectAll()
        self.passphrase.setFocus()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(True)

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        # read-only, not disabled: a disabled field hands focus (and the Return key) to Cancel
        self.passphrase.setReadOnly(busy)
        self.unlock_button.setEnabled(not busy)
        if busy:
            self.error.setVisible(False)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _NamePage(QWizardPage):
    def __init__(self, default_folder: Path):
        super().__init__()
        self.setTitle("New project")
        self.setSubTitle(
            "A project is one encrypted folder holding your prompts, candidates, judgments and trained models."
        )
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. support-replies")
        self.folder = QLineEdit(str(default_folder))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.error = _error_label()
        form.addRow("Name:", self.name)
        form.addRow("Folder:", row)
        form.addRow("Creates:", self.result)
        form.addRow(self.error)
        self.name.textChanged.connect(self._update)
        self.folder.textChanged.connect(self._update)
        self._update()

    def target(self) -> Optional[Path]:
        name = self.name.text().strip()
        if not name:
            return None
        return Path(self.folder.text().strip()).expanduser() / (name.removesuffix(SUFFIX) + SUFFIX)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the project", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _update(self) -> None:
        t = self.target()
        self.result.setText(str(t) if t else "—")
        self.error.setVisible(False)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.target() is not None and bool(self.folder.text().strip())

    def validatePage(self) -> bool:
        name = self.name.text().strip()
        t = self.target()
        problem = None
        if any(c in name for c in '/\\:*?"<>|') or name in (".", ".."):
            problem = 'A name cannot contain / \\ : * ? " < > |'
        elif t is not None and t.exists() and (not t.is_dir() or any(t.iterdir())):
            problem = f"{t} already exists. Choose another name or folder."
        elif t is not None and t.parent.exists() and not t.parent.is_dir():
            problem = f"{t.parent} is not a folder."
        if problem:
            self.error.setText(problem)
            self.error.setVisible(True)
            return False
        return True


class _PassphrasePage(QWizardPage):
    def __init__(self):
        super().__init__()
        self.setTitle("Passphrase")
        self.setSubTitle(
            "Everything in the project is encrypted with a key derived from this passphrase. "
            "It cannot be recovered if you forget it."
        )
        form = QFormLayout(self)
        self.first = QLineEdit()
        self.second = QLineEdit()
        for f in (self.first, self.second):
            f.setEchoMode(QLineEdit.EchoMode.Password)
            f.textChanged.connect(self._update)
        self.meter = QProgressBar()
        self.meter.setRange(0, 4)
        self.meter.setTextVisible(True)
        self.meter.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.match = QLabel()
        form.addRow("Passphrase:", self.first)
        form.addRow("Again:", self.second)
        form.addRow("Strength:", self.meter)
        form.addRow("", self.hint)
        form.addRow("", self.match)
        self._update()

    def _update(self) -> None:
        s = strength(self.first.text())
        self.meter.setValue(s.score)
        self.meter.setFormat(s.label)
        colour = ["#d33c3c", "#e07b00", "#c9a400", "#4a9d3a", "#2f8f2f"][s.score]
        self.meter.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")
        hint = s.hint
        if 0 < len(self.first.text()) < MIN_PASSPHRASE:
            hint = f"Use at least {MIN_PASSPHRASE} characters. " + hint
        self.hint.setText(hint)
        if self.second.text() and self.second.text() != self.first.text():
            self.match.setText("The two passphrases differ.")
        elif self.second.text():
            self.match.setText("The passphrases match.")
        else:
            self.match.setText("")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return len(self.first.text()) >= MIN_PASSPHRASE and self.first.text() == self.second.text()


class NewProjectWizard(QWizard):
    """Name, folder, passphrase twice. `target()` and `passphrase()` after it is accepted; the caller
    creates the project on the worker (the key derivation takes a moment)."""

    def __init__(self, default_folder: Path, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setMinimumSize(560, 400)
        self.name_page = _NamePage(default_folder)
        self.pass_page = _PassphrasePage()
        self.addPage(self.name_page)
        self.addPage(self.pass_page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Create")

    def target(self) -> Optional[Path]:
        return self.name_page.target()

    def passphrase(self) -> str:
        return self.pass_page.first.text()

    def done(self, result: int) -> None:
        super().done(result)
        if result != QDialog.DialogCode.Accepted:
            self.pass_page.first.clear()
            self.pass_page.second.clear()
