"""core/ never imports Qt: checked on the source and by importing every core module in a fresh process."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QT_ROOTS = {"PySide6", "PyQt5", "PyQt6", "qtpy", "shiboken6", "pytestqt"}


def _imports(path: Path):
    tree = ast.parse(path.read_text("utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_core_source_has_no_qt_or_desktop_imports():
    bad = []
    for path in sorted((REPO / "core").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        for line, name in _imports(path):
            root = name.split(".")[0]
            if root in QT_ROOTS or root == "desktop" or name.startswith("matplotlib.backends.backend_qt"):
                bad.append(f"{rel}:{line}: imports {name}")
    assert bad == []


def test_importing_all_of_core_loads_no_qt():
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "core").rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n    importlib.import_module(m)\n"
        f"print(sorted(k for k in sys.modules if k.split('.')[0] in {sorted(QT_ROOTS)!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
