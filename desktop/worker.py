"""Run core jobs (generators, see core/jobs.py) on worker threads and turn their events into Qt signals.

One mechanism for every long action in the GUI (open, unlock, import, export, search, demo creation,
training):

    handle = runner.start(lambda cancel: import_file(proj, path, cancel=cancel), title="Importing")
    handle.progress.connect(...)      # Progress, throttled to what a screen can show
    handle.finished.connect(...)      # the job's return value
    handle.failed.connect(...)        # the exception (UserError: show its message)
    handle.cancelled.connect(...)     # the job stopped at a step boundary
    handle.cancel()                   # sets the CancelToken; the job raises Cancelled at its next check

Exactly one of finished / failed / cancelled is emitted, on the GUI thread, after the job's generator
has returned. A plain blocking call (Project.open's Argon2id) becomes a one-step job with `call_job`
(core.jobs, re-exported here).
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any, Callable, Optional

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QRunnable, QThreadPool, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from core.jobs import USER_ACTIVITY, Cancelled, CancelToken, Job, Progress, call_job

__all__ = ["JobHandle", "JobRunner", "JobProgressWidget", "call_job", "format_eta"]

# Progress events are forwarded at most this often (seconds): a job may yield thousands per second and
# each signal costs the GUI thread an event. Events that carry metrics or samples are always forwarded
# (charts need every point); the last event before the end is always forwarded too.
PROGRESS_INTERVAL = 0.05

# The GUI thread must get the GIL back within a few ms while a job runs pure-Python code. (Job threads
# are not niced: a job thread preempted while holding the GIL would stall the GUI thread longer.)
GIL_SWITCH_INTERVAL = 0.001


def tune_for_responsiveness() -> None:
    """A garbage collection holds the GIL for its whole pass: with a job building many objects (an
    import's records) CPython's defaults run full passes often enough to freeze the window for ~100 ms.
    Move everything alive at startup out of the collector's sight, keep young generations small (their
    passes take a millisecond or two) and run full passes a hundred times less often."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
    _watch_input()
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


class _InputWatcher(QObject):
    """Tells core.jobs.USER_ACTIVITY about every key press and click, whatever widget gets it, so
    courteous background jobs step aside while the person works (see UserActivity)."""

    INPUT = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel}

    def eventFilter(self, obj, event) -> bool:
        if event.type() in self.INPUT:
            USER_ACTIVITY.touch()
        return False


def _watch_input() -> None:
    app = QCoreApplication.instance()
    if app is not None and getattr(app, "_rlhf_input_watcher", None) is None:
        app._rlhf_input_watcher = _InputWatcher(app)
        app.installEventFilter(app._rlhf_input_watcher)


class JobHandle(QObject):
    """One running job: its signals, its cancel token, and what it has reported so far."""

    progress = Signal(object)  # Progress
    finished = Signal(object)  # the job's return value
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()  # after any of finished / failed / cancelled

    def __init__(self, title: str = "", parent: Optional[QObject] = None):
        super().__init__(parent)
        self.title = title
        self.token = CancelToken()
        self.started_at = time.monotonic()
        self.last: Optional[Progress] = None
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.state = "running"  # running | finished | failed | cancelled
        self.quiet = False

    def cancel(self) -> None:
        """Ask the job to stop at its next step boundary (thread-safe, returns at once)."""
        self.token.cancel()

    @property
    def running(self) -> bool:
        return self.state == "running"

    # Slots below run on the GUI thread (queued from the worker).
    def _on_progress(self, event: Progress) -> None:
        self.last = event
        self.progress.emit(event)

    def _on_end(self, state: str, payload: Any) -> None:
        self.state = state
        if state == "finished":
            self.result = payload
            self.finished.emit(payload)
        elif state == "failed":
            self.error = payload
            self.failed.emit(payload)
        else:
            self.cancelled.emit()
        self.done.emit()


class _Bridge(QObject):
    """Lives on the GUI thread; the worker emits these, Qt queues them to the GUI thread."""

    progress = Signal(object)
    ended = Signal(str, object)


class _JobRunnable(QRunnable):
    def __init__(self, make_job: Callable[[CancelToken], Job], token: CancelToken, bridge: _Bridge):
        super().__init__()
        self.make_job = make_job
        self.token = token
        self.bridge = bridge

    def run(self) -> None:  # worker thread
        last_sent = 0.0
        pending: Optional[Progress] = None
        try:
            job = self.make_job(self.token)
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                now = time.monotonic()
                if event.metrics or event.samples or now - last_sent >= PROGRESS_INTERVAL:
                    self.bridge.progress.emit(event)
                    last_sent, pending = now, None
                else:
                    pending = event
            if pending is not None:
                self.bridge.progress.emit(pending)
            self.bridge.ended.emit("finished", result)
        except Cancelled:
            self.bridge.ended.emit("cancelled", None)
        except BaseException as exc:  # noqa: BLE001 - reported to the GUI, never swallowed
            self.bridge.ended.emit("failed", exc)


class JobRunner(QObject):
    """Starts jobs on its own thread pool and keeps their handles alive until they end."""

    job_started = Signal(object)  # JobHandle
    job_ended = Signal(object)  # JobHandle

    def __init__(self, parent: Optional[QObject] = None, max_threads: int = 4):
        super().__init__(parent)
        tune_for_responsiveness()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._active: list[JobHandle] = []
        self._bridges: dict[int, _Bridge] = {}

    def start(
        self,
        make_job: Callable[[CancelToken], Job] | Job,
        title: str = "",
        *,
        on_finished: Optional[Callable[[Any], None]] = None,
        on_failed: Optional[Callable[[BaseException], None]] = None,
        on_cancelled: Optional[Callable[[], None]] = None,
        on_progress: Optional[Callable[[Progress], None]] = None,
        quiet: bool = False,
    ) -> JobHandle:
        """Run `make_job(cancel_token)` (or an already-built generator) on a worker thread.

        quiet: a short background check that the status-bar progress widget does not show."""
        handle = JobHandle(title, self)
        handle.quiet = quiet
        if not callable(make_job):
            job = make_job
            make_job = lambda _token: job  # noqa: E731 - the caller wired its own token
        bridge = _Bridge()  # created on this (GUI) thread, so its queued signals land here
        bridge.progress.connect(handle._on_progress, Qt.ConnectionType.QueuedConnection)
        bridge.ended.connect(handle._on_end, Qt.ConnectionType.QueuedConnection)
        if on_progress:
            handle.progress.connect(on_progress)
        if on_finished:
            handle.finished.connect(on_finished)
        if on_failed:
            handle.failed.connect(on_failed)
        if on_cancelled:
            handle.cancelled.connect(on_cancelled)
        handle.done.connect(lambda h=handle: self._forget(h))
        self._active.append(handle)
        self._bridges[id(handle)] = bridge
        self.job_started.emit(handle)
        self.pool.start(_JobRunnable(make_job, handle.token, bridge))
        return handle

    def _forget(self, handle: JobHandle) -> None:
        if handle in self._active:
            self._active.remove(handle)
        self._bridges.pop(id(handle), None)
        self.job_ended.emit(handle)

    @property
    def active(self) -> list[JobHandle]:
        return list(self._active)

    def cancel_all(self) -> None:
        for handle in self._active:
            handle.cancel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until every worker thread is idle (shutdown and tests only, never in normal use)."""
        return self.pool.waitForDone(msecs)


def format_eta(seconds: Optional[float]) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min left"


class JobProgressWidget(QWidget):
    """A progress bar with message, ETA and a Cancel button for the runner's newest job.

    Put one in the status bar (`JobProgressWidget(runner)`) or on a page (`follow(handle)` for one job).
    Hidden while nothing runs.
    """

    def __init__(
        self, runner: Optional[JobRunner] = None, parent: Optional[QWidget] = None, hide_when_idle: bool = True
    ):
        super().__init__(parent)
        self.hide_when_idle = hide_when_idle
        self.handle: Optional[JobHandle] = None
        self.runner = runner
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setMinimumWidth(160)
        self.bar.setMaximumHeight(18)
        self.eta = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        for w in (self.label, self.bar, self.eta, self.cancel_button):
            layout.addWidget(w)
        self._tick = QTimer(self)  # ETA refresh even when the job is quiet
        self._tick.setInterval(500)
        self._tick.timeout.connect(self._refresh)
        if runner is not None:
            runner.job_started.connect(lambda h: None if h.quiet else self.follow(h))
            runner.job_ended.connect(self._on_runner_job_ended)
        self.setVisible(not hide_when_idle)

    def follow(self, handle: JobHandle) -> None:
        if self.handle is not None:
            try:
                self.handle.progress.disconnect(self._on_progress)
            except (RuntimeError, TypeError):
                pass
        self.handle = handle
        handle.progress.connect(self._on_progress)
        if self.runner is None:
            handle.done.connect(self._on_done)
        self.label.setText(handle.title)
        self.bar.setRange(0, 0)  # busy until the first event says how much there is
        self.eta.setText("")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.setVisible(True)
        self._tick.start()

    def cancel(self) -> None:
        if self.handle is not None and self.handle.running:
            self.handle.cancel()
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling…")

    def _on_progress(self, event: Progress) -> None:
        self._refresh()

    def _refresh(self) -> None:
        h = self.handle
        if h is None:
            return
        event = h.last
        if event is None:
            return
        text = h.title + (f": {event.message}" if event.message else "")
        self.label.setText(text)
        if event.total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * (event.fraction or 0.0)))
            self.bar.setFormat(f"{event.step:,} / {event.total:,}")
            elapsed = time.monotonic() - h.started_at
            frac = event.fraction or 0.0
            self.eta.setText(format_eta(elapsed * (1 - frac) / frac) if frac > 0.02 and elapsed > 1 else "")
        else:
            self.bar.setRange(0, 0)
            self.eta.setText("")

    def _on_runner_job_ended(self, handle: JobHandle) -> None:
        if handle is not self.handle:
            return
        remaining = [h for h in self.runner.active if not h.quiet] if self.runner else []
        if remaining:
            self.follow(remaining[-1])
        else:
            self._on_done()

    def _on_done(self) -> None:
        self._tick.stop()
        self.handle = None
        if self.hide_when_idle:
            self.setVisible(False)
        else:
            self.label.setText("")
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.eta.setText("")
            self.cancel_button.setEnabled(False)
