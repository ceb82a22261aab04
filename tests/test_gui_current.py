"""Pages show current figures: judgments recorded on Annotate change the Train page's pre-flight counts
(issue 15); charts with no data say what will appear there."""
from __future__ import annotations

import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402

from tests.gui_helpers import _module_window, gui_settings, unlock, window  # noqa: F401,E402
from tests.train_gui_helpers import make_project, tiny_model  # noqa: F401,E402

K = Qt.Key


def _pairs(text: str) -> int:
    m = re.search(r"(\d+) preference pairs", text)
    return int(m.group(1)) if m else -1


def test_train_preflight_counts_follow_annotate_judgments(qtbot, window, tmp_path, tiny_model):
    win = window
    proj = make_project(tmp_path / "fresh.rlhfproj", n_prompts=6, n_heldout=0, rank=False)
    proj.set_setting("models", [tiny_model])
    proj.close()
    unlock(qtbot, win, tmp_path / "fresh.rlhfproj")
    train = win.page("Train")
    win.show_page("Annotate")  # the Train page is not shown before the judgments (the reported bug)
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)
    assert not train.isVisible()
    before = train.reward.preflight_label.text()  # checked when the project opened
    assert _pairs(before) == 0, before

    annotate = win.page("Annotate")
    qtbot.waitUntil(lambda: annotate.item is not None, timeout=15_000)
    annotate.session.consistency_share = 0.0
    for _ in range(3):
        for k in (K.Key_1, K.Key_2, K.Key_3, K.Key_Return):
            qtbot.keyClick(annotate, k)
    assert len(win.ctx.project.judgments(kind="ranking")) == 3

    win.show_page("Train")  # first show since the project opened: the counts must be re-read
    qtbot.waitUntil(lambda: _pairs(train.reward.preflight_label.text()) > 0, timeout=60_000)
    assert _pairs(train.reward.preflight_label.text()) == 3 * 6  # 4 replies ranked: 6 pairs each


def test_empty_chart_says_what_will_appear(qtbot):
    from desktop.charts import LiveChart

    chart = LiveChart(["loss"], title="Loss", empty_text="No run yet: the loss appears here once training starts.")
    qtbot.addWidget(chart)
    chart.resize(400, 300)
    chart.show()
    assert chart.empty_label.isVisible()
    assert "No run yet" in chart.empty_label.text()
    chart.add_points({"loss": (0, 1.0)})
    assert not chart.empty_label.isVisible()
    chart.clear()
    assert chart.empty_label.isVisible()


def test_make_run_preflight_names_the_apt_packages(monkeypatch):
    import subprocess

    from desktop import app

    assert app.missing_xcb_libraries({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}) == []
    assert app.missing_xcb_libraries({"QT_QPA_PLATFORM": "xcb"}) == []  # no display: nothing to check

    class Done:
        stdout = "\tlibxcb-icccm.so.4 => not found\n\tlibc.so.6 => /lib/libc.so.6\n\tlibxcb-cursor.so.0 => not found\n"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    missing = app.missing_xcb_libraries({"DISPLAY": ":0"})
    assert missing == ["libxcb-icccm.so.4", "libxcb-cursor.so.0"]
    text = app.xcb_preflight_message(missing)
    assert "apt-get install libxcb-cursor0 libxcb-icccm4" in text
