"""Screenshots of the Evaluate page (make screenshots, bench/eval_loop.py): drawn from the real page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QApplication

from desktop.pages.evaluate.page import EvaluatePage


def _screen_page(project, size):
    page = EvaluatePage()
    page.resize(*size)
    page.show()
    page.set_project(project)
    return page


def _close_screen_page(page) -> None:
    page.wait_idle(30)
    page.set_project(None)
    page.close()
    page.deleteLater()


def render_judge_screen(out_dir, project, eval_run: int, size=(1280, 800)) -> Path:
    """Save `evaluate_judge.png`: the blind judging view on the first pending pair. Records nothing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = _screen_page(project, size)
    try:
        page.reload_runs(select_eval=eval_run)
        page.wait_idle(120)
        page.open_judging()
        _settle(app)
        path = out / "evaluate_judge.png"
        page.grab().save(str(path))
    finally:
        _close_screen_page(page)
    return path


def render_evaluate_screens(
    out_dir, project, eval_run: int, compare_runs=(), metric: Optional[str] = None, size=(1280, 800)
) -> list[Path]:
    """Save `evaluate.png` (results) and `evaluate_compare.png` (training curves of `compare_runs`)
    from the real page. Records nothing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    page = _screen_page(project, size)
    paths = []
    try:
        page.reload_runs(select_eval=eval_run)
        page.wait_idle(120)
        _settle(app)
        page.results.flush()
        _settle(app)
        paths.append(out / "evaluate.png")
        page.grab().save(str(paths[-1]))
        page.tabs.setCurrentIndex(1)
        page.set_compared_runs(list(compare_runs), metric)
        page.curves._redraw()
        _settle(app)
        page.curves._redraw()
        _settle(app)
        paths.append(out / "evaluate_compare.png")
        page.grab().save(str(paths[-1]))
    finally:
        _close_screen_page(page)
    return paths


def _settle(app) -> None:
    for _ in range(4):
        app.processEvents()
        time.sleep(0.02)
