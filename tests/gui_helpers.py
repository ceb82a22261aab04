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
