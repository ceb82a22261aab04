"""Screenshots of the Annotate page: a ranking in progress and the pairwise view (`make screenshots`)."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from desktop.pages.annotate.page import AnnotatePage


def render_annotate_screens(out_dir, project, size=(1280, 800)) -> list[Path]:
    """Save `annotate.png` (a ranking in progress) and `pairwise.png` from the real page.
    Records nothing: the ranking is left unsubmitted."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = AnnotatePage()
    page.resize(*size)
    page.show()
    paths = []
    try:
        page.set_project(project)
        page.set_mode("ranking")
        app.processEvents()
        if page.item is not None:
            press = [Qt.Key.Key_3, Qt.Key.Key_1, Qt.Key.Key_Equal, Qt.Key.Key_4]
            texts = ["3", "1", "=", "4"]
            for key, text in zip(press, texts):
                page.keyPressEvent(QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text))
        if page.flag_checks:
            page.flag_checks[min(2, len(page.flag_checks) - 1)].setChecked(True)
        _settle(app)
        paths.append(out / "annotate.png")
        page.grab().save(str(paths[-1]))
        page.set_mode("pairwise")
        _settle(app)
        paths.append(out / "pairwise.png")
        page.grab().save(str(paths[-1]))
    finally:
        page.set_project(None)
        page.close()
        page.deleteLater()
    return paths


def _settle(app) -> None:
    for _ in range(3):
        app.processEvents()
        time.sleep(0.01)
