"""Base class for the main window's pages.

    class TrainPage(Page):
        title = "Train"

        def set_project(self, project):
            super().set_project(project)
            ...  # project is None: the project is closed or locked; drop every decrypted text shown

        def on_train(self):
            self.run_job(lambda cancel: train_reward_job(self.project, cfg, cancel=cancel), "Training",
                         on_finished=self.show_result, on_failed=self.show_error)

`self.app_context` (desktop.context.AppContext) holds the job runner and settings. Pages hold no logic:
anything beyond presentation is a core function run as a job.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from core.errors import UserError
from core.jobs import CancelToken, Job
from desktop.worker import JobHandle


class Page(QWidget):
    title = "Page"
    """Name shown in the navigation."""

    def __init__(self, app_context, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.app_context = app_context
        self.project = None

    def set_project(self, project) -> None:
        """Called with the open project, or None when it is closed or locked: then clear every view
        that shows decrypted content. Subclasses call super() first."""
        self.project = project

    def data_changed(self) -> None:
        """Called after another page changed the project's content (an import, a generation run):
        reload whatever this page shows. The default does nothing."""

    def run_job(self, make_job: Callable[[CancelToken], Job] | Job, title: str = "", **callbacks: Any) -> JobHandle:
        """Run a core job on a worker thread (progress and Cancel show in the status bar)."""
        return self.app_context.run_job(make_job, title, **callbacks)

    def show_error(self, exc: BaseException, title: str = "") -> None:
        show_error(self, exc, title or self.title)


def error_text(exc: BaseException) -> str:
    """The message to show: a UserError as is; anything else by type (no traceback, no user text)."""
    if isinstance(exc, UserError):
        return str(exc)
    return f"Unexpected error ({exc.__class__.__name__}): {exc}"


def show_error(parent: QWidget, exc: BaseException, title: str = "Error") -> None:
    box = QMessageBox(QMessageBox.Icon.Warning, title, error_text(exc), QMessageBox.StandardButton.Ok, parent)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.open()


class PlaceholderPage(Page):
    """A page another engineer fills in later; says what will be there."""

    def __init__(self, app_context, title: str, text: str, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        self.title = title
        layout = QVBoxLayout(self)
        heading = QLabel(f"<h2>{title}</h2>")
        body = QLabel(text)
        body.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(body)
        layout.addStretch(1)
