"""State shared by the main window and every page: the open project, the job runner, the settings.

Pages never open or close projects themselves; they call `app_context.run_job(...)` for long work and
receive the project through `Page.set_project` (None while closed or locked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QSettings, Signal

from core.jobs import CancelToken, Job
from desktop.worker import JobHandle, JobRunner

ORG, APP = "RLHF Studio", "rlhf-studio"

# QSettings keys (paths and preferences only: never project content).
RECENT_KEY = "recent_projects"
IDLE_KEY = "auto_lock_minutes"
DEFAULT_IDLE_MINUTES = 10
MAX_RECENT = 8


def app_settings() -> QSettings:
    return QSettings(ORG, APP)


class AppContext(QObject):
    project_changed = Signal(object)  # core.project.Project or None (closed / locked)
    content_changed = Signal(str)  # the open project's content changed: "judgment", "import", "run"

    def __init__(self, settings: Optional[QSettings] = None, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else app_settings()
        self.runner = JobRunner(self)
        self.project = None
        self.project_path: Optional[Path] = None  # kept while locked, to unlock the same project
        self.locked = False
        self._pending_close: list = []
        self._after_close: list[Callable[[], None]] = []
        self.runner.job_ended.connect(self._close_if_idle)

    # ---- jobs ---------------------------------------------------------------------------------------

    def run_job(self, make_job: Callable[[CancelToken], Job] | Job, title: str = "", **callbacks: Any) -> JobHandle:
        """Start a core job on a worker thread; see desktop.worker.JobRunner.start for the callbacks."""
        return self.runner.start(make_job, title, **callbacks)

    # ---- project ------------------------------------------------------------------------------------

    def notify_changed(self, what: str) -> None:
        """A page changed the project's content (a judgment, an import, a finished run): pages showing
        figures derived from it refresh now if visible, else when next shown."""
        if self.project is not None:
            self.content_changed.emit(what)

    def set_project(self, project) -> None:
        """Make `project` (already open) the current one; the caller closed any previous one."""
        self.project = project
        self.locked = False
        if project is not None:
            self.project_path = Path(project.path)
            self.add_recent(project.path)
        self.project_changed.emit(project)

    def close_project(self, lock: bool = False) -> None:
        """Close the project (dropping its key). `lock=True` keeps its path for the unlock dialog.

        Pages clear their views at once. Running jobs are cancelled; the key goes when the last one
        has stopped at its next step (never while a job still uses it), without blocking this thread.
        """
        project, self.project = self.project, None
        self.locked = lock and self.project_path is not None
        if not lock:
            self.project_path = None
        self.project_changed.emit(None)
        if project is None:
            return
        self._pending_close.append(project)
        self.runner.cancel_all()
        self._close_if_idle()

    def after_closed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every project being closed is really closed (at once if none is)."""
        if self._pending_close:
            self._after_close.append(callback)
        else:
            callback()

    def _close_if_idle(self, *_: Any) -> None:
        if self.runner.active or not self._pending_close:
            return
        while self._pending_close:
            self._pending_close.pop().close()
        callbacks, self._after_close = self._after_close, []
        for cb in callbacks:
            cb()

    def shutdown(self) -> None:
        """At exit: cancel jobs, wait for them (bounded), close the project."""
        self.runner.cancel_all()
        self.runner.wait(15_000)
        if self.project is not None:
            self.project.close()
            self.project = None
        while self._pending_close:
            self._pending_close.pop().close()

    # ---- settings (paths and numbers only) ----------------------------------------------------------

    def recent_projects(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):  # QSettings returns a lone string for a one-item list
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_projects() if p != path]
        self.settings.setValue(RECENT_KEY, [path, *items][:MAX_RECENT])

    def remove_recent(self, path) -> None:
        path = str(path)
        self.settings.setValue(RECENT_KEY, [p for p in self.recent_projects() if p != path])

    def idle_minutes(self) -> float:
        try:
            return float(self.settings.value(IDLE_KEY, DEFAULT_IDLE_MINUTES))
        except (TypeError, ValueError):
            return float(DEFAULT_IDLE_MINUTES)

    def set_idle_minutes(self, minutes: float) -> None:
        self.settings.setValue(IDLE_KEY, float(minutes))
