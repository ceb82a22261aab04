"""Auto-lock: an application-wide event filter notes user input; after N idle minutes, `idle` fires."""

from __future__ import annotations

import time
from typing import Optional

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

INPUT_EVENTS = {
    QEvent.Type.KeyPress,
    QEvent.Type.KeyRelease,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
    QEvent.Type.TouchBegin,
    QEvent.Type.TabletPress,
    QEvent.Type.ShortcutOverride,
}


class IdleWatcher(QObject):
    idle = Signal()

    def __init__(self, minutes: float, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.last_input = time.monotonic()
        self.armed = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._check)
        self.set_minutes(minutes)
        QApplication.instance().installEventFilter(self)

    def set_minutes(self, minutes: float) -> None:
        self.limit = max(0.0, float(minutes)) * 60.0
        # check often enough to lock within ~10% of the limit, but never busily
        self._timer.setInterval(int(max(100, min(5000, self.limit * 100))))

    def arm(self) -> None:
        """Start watching (a project is open); 0 minutes means never lock."""
        self.last_input = time.monotonic()
        self.armed = self.limit > 0
        if self.armed:
            self._timer.start()

    def disarm(self) -> None:
        self.armed = False
        self._timer.stop()

    def eventFilter(self, obj, event) -> bool:
        if event.type() in INPUT_EVENTS:
            self.last_input = time.monotonic()
        return False

    def _check(self) -> None:
        if self.armed and time.monotonic() - self.last_input >= self.limit:
            self.disarm()
            self.idle.emit()

    def remove(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self.disarm()
