"""Shared GUI test helpers (pytest-qt, offscreen). Import from tests: `from gui_helpers import ...`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def gui_settings(tmp_path):
    """A QSettings file of the test's own (never the user's real settings)."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    yield settings
    settings.sync()


def wait_job(qtbot, handle, timeout=30_000):
    """Wait for a JobHandle to end; return its result (raise its error)."""
    if handle.running:
        with qtbot.waitSignal(handle.done, timeout=timeout):
            pass
    if handle.state == "failed":
        raise handle.error
    return handle.result


def write_jsonl(path, n=8, k=4, offset=0):
    """n prompts with k candidate replies each, in the {"prompt", "responses"} shape."""
    import json

    lines = []
    for i in range(offset, offset + n):
        prompt = f"Customer {i} asks how to return item {i * 7 % 97} bought {i % 30} days ago."
        responses = [
            f"Reply {r} to customer {i}: " + ("returns are accepted within 30 days. " * (r + 1)) for r in range(k)
        ]
        lines.append(json.dumps({"prompt": prompt, "responses": responses}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def _module_window(qapp, tmp_path_factory):
    """One real main window per test module (building the pages takes seconds), with its own settings."""
    from desktop.context import AppContext
    from desktop.main_window import MainWindow
    from desktop.theme import apply_theme

    apply_theme(qapp)
    settings = QSettings(str(tmp_path_factory.mktemp("gui") / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(AppContext(settings), detect_device=False)
    win.resize(1280, 800)
    win.show()
    yield win
    win.close()
    win.deleteLater()


@pytest.fixture
def window(_module_window, qtbot):
    """The module's main window, back on the start screen with no project and default settings."""
    from desktop.context import DEFAULT_IDLE_MINUTES

    win = _module_window
    yield win
    for dialog in (win.unlock_dialog, win.wizard):
        if dialog is not None:
            dialog.close()
    win.unlock_dialog = win.wizard = None
    win.close_project()
    qtbot.waitUntil(lambda: not win.ctx.runner.active and not win.ctx._pending_close, timeout=15_000)
    win.ctx.set_idle_minutes(DEFAULT_IDLE_MINUTES)
    win.idle.set_minutes(DEFAULT_IDLE_MINUTES)


def unlock(qtbot, win, path, passphrase=PASSPHRASE):
    """Open `path` through the unlock dialog, typing the passphrase; returns the open project."""
    from PySide6.QtCore import Qt

    dialog = win.open_path(path)
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    qtbot.keyClicks(dialog.passphrase, passphrase)
    qtbot.keyClick(dialog.passphrase, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: win.ctx.project is not None or dialog.error.isVisible(), timeout=15_000)
    assert win.ctx.project is not None, dialog.error.text()
    return win.ctx.project


def create_through_wizard(qtbot, win, folder, name="proj", passphrase=PASSPHRASE):
    from PySide6.QtWidgets import QWizard

    wizard = win.new_project()
    qtbot.waitUntil(wizard.isVisible, timeout=5000)
    qtbot.keyClicks(wizard.name_page.name, name)
    wizard.name_page.folder.setText(str(folder))
    wizard.button(QWizard.WizardButton.NextButton).click()
    qtbot.keyClicks(wizard.pass_page.first, passphrase)
    finish = wizard.button(QWizard.WizardButton.FinishButton)
    assert not finish.isEnabled()  # typed once only
    qtbot.keyClicks(wizard.pass_page.second, passphrase)
    assert finish.isEnabled()
    finish.click()
    qtbot.waitUntil(lambda: win.ctx.project is not None, timeout=15_000)
    return win.ctx.project
