"""A hidden self-test for the real-window smoke test (tests/test_real_window.py), off unless
RLHF_STUDIO_SMOKE names a PNG path: once the demo project is open the app switches every page, ranks
one item on Annotate by key events, grabs its own window from the screen into that PNG and quits with
exit code 0 (2 if the ranking was not recorded). Nothing here runs in normal use.
"""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

ENV = "RLHF_STUDIO_SMOKE"


def install(app: QApplication, window) -> bool:
    target = os.environ.get(ENV)
    if not target:
        return False
    state = {"step": "wait", "before": 0}

    def log(msg: str) -> None:
        print(f"smoke: {msg}", file=sys.stderr, flush=True)

    def tick() -> None:
        ctx = window.ctx
        if state["step"] == "wait":
            if ctx.project is None or ctx.runner.active:
                return
            state["step"] = "pages"
            state["pages"] = list(range(len(window.pages)))
            log("project open")
        if state["step"] == "pages":
            if state["pages"]:
                i = state["pages"].pop(0)
                window.show_page(i)
                log(f"page {window.pages[i].title}")
                return
            window.show_page("Annotate")
            state["step"] = "rank"
            return
        if state["step"] == "rank":
            page = window.page("Annotate")
            if getattr(page, "item", None) is None:
                return
            from PySide6.QtTest import QTest

            state["before"] = len(ctx.project.judgments())
            page.setFocus()
            # every candidate but the last, best first (the last one is implied), then Enter
            keys = [Qt.Key(Qt.Key.Key_1 + i) for i in range(min(page.item.k, 9) - 1)]
            for key in (*keys, Qt.Key.Key_Return):
                QTest.keyClick(page, key)
            state["step"] = "shot"
            return
        if state["step"] == "shot":
            after = len(ctx.project.judgments())
            log(f"judgments {state['before']} -> {after}")
            screen = window.screen() or app.primaryScreen()
            pix = screen.grabWindow(0)  # the real screen, where the window is
            pix.save(target, "PNG")
            log(f"screenshot {pix.width()}x{pix.height()} -> {target}")
            state["step"] = "done"
            timer.stop()
            code = 0 if after == state["before"] + 1 else 2
            QTimer.singleShot(0, lambda: (window.close(), app.exit(code)))

    timer = QTimer(app)
    timer.setInterval(300)
    timer.timeout.connect(tick)
    timer.start()
    return True
