"""The GUI's environment: a PySide6 build that does not corrupt CPython's refcounts, and a spec that parses.

Runs before the other GUI tests (file name order) so a broken Qt binding fails here with a reason,
not later as an interpreter crash ("Fatal Python error: none_dealloc").
"""

import ast
import gc
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]


def test_qt_binding_keeps_none_refcount(qapp):
    # PySide6 6.12.0 on CPython 3.11 drops a reference to None on every call of a method returning
    # void (setText, processEvents, ...): the interpreter aborts after a few thousand calls.
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(1000):
        label.setText("x")
        qapp.processEvents()
    gc.collect()
    lost = before - sys.getrefcount(None)
    assert lost < 100, (
        f"this PySide6 build ({__import__('PySide6').__version__}) loses a reference to None "
        f"per call ({lost} in 2000 calls); install PySide6-Essentials<6.12 on Python < 3.12"
    )


def test_pyinstaller_spec_parses():
    tree = ast.parse((ROOT / "pyinstaller.spec").read_text())
    names = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= names  # COLLECT: a one-folder build
    assert (ROOT / "desktop" / "app.py").exists()
