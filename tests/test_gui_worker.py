"""desktop.worker and desktop.charts: jobs on worker threads, signals, cancel, throttled chart."""

import threading
import time

import pytest

from gui_helpers import wait_job  # noqa: F401  (sets QT_QPA_PLATFORM)
from core.errors import UserError
from core.jobs import Progress
from desktop.worker import JobProgressWidget, JobRunner, call_job, format_eta


def counting_job(n, delay=0.0, cancel=None, threads=None):
    for i in range(n):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if threads is not None:
            threads.add(threading.get_ident())
        if delay:
            time.sleep(delay)
        yield Progress(i + 1, n, "counting", metrics={"x/value": float(i)} if i % 10 == 0 else {})
    return n * 2


def test_job_runs_off_gui_thread_and_reports(qtbot):
    runner = JobRunner()
    threads, events = set(), []
    h = runner.start(lambda c: counting_job(200, cancel=c, threads=threads), "count", on_progress=events.append)
    assert wait_job(qtbot, h) == 400
    assert threading.get_ident() not in threads and len(threads) == 1
    assert h.state == "finished" and not runner.active
    # every metrics event arrives; plain progress is throttled, but the last one always arrives
    assert [e.step for e in events if e.metrics] == list(range(1, 201, 10))
    assert events[-1].step == 200
    assert len(events) < 200


def test_failure_and_cancel(qtbot):
    runner = JobRunner()

    def bad(cancel):
        yield Progress(0, 1)
        raise UserError("line 3: bad field")

    h = runner.start(bad, "bad")
    with pytest.raises(UserError, match="line 3"):
        wait_job(qtbot, h)
    assert h.state == "failed"

    h = runner.start(lambda c: counting_job(10_000, delay=0.001, cancel=c), "slow")
    qtbot.waitUntil(lambda: h.last is not None, timeout=30_000)
    h.cancel()
    with qtbot.waitSignal(h.cancelled, timeout=30_000):
        pass
    assert h.state == "cancelled" and h.last.step < 10_000


def test_call_job_and_progress_widget(qtbot):
    runner = JobRunner()
    widget = JobProgressWidget(runner)
    qtbot.addWidget(widget)
    widget.show()
    # Long enough (>= 200 s of sleeps) that the cancel always lands first, however slow the machine;
    # the cancel is checked every 2 ms, so the test itself stays short.
    h = runner.start(lambda c: counting_job(100_000, delay=0.002, cancel=c), "Importing")
    qtbot.waitUntil(lambda: widget.bar.maximum() == 1000 and widget.bar.value() > 0, timeout=30_000)
    assert widget.isVisible() and "Importing" in widget.label.text()
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: not h.running, timeout=30_000)
    assert h.state == "cancelled" and h.last.step < 100_000
    qtbot.waitUntil(lambda: not widget.isVisible(), timeout=30_000)
    h = runner.start(call_job(sum, [1, 2, 3]), "sum")
    assert wait_job(qtbot, h) == 6
    assert format_eta(75) == "1 min 15 s left" and format_eta(None) == ""


def test_live_chart_throttles_redraws(qtbot):
    from desktop.charts import LiveChart

    chart = LiveChart(["loss/train"], title="t")
    qtbot.addWidget(chart)
    chart.resize(500, 300)
    chart.show()
    before = chart.redraws
    for step in range(2000):  # a burst of points: appending only appends, it never redraws
        chart.add_points({"loss/train": (step, 1.0 / (step + 1)), "loss/heldout": (step, float("nan"))})
    assert chart.redraws == before  # no redraw inside the burst (the cost is counted, not timed)
    qtbot.waitUntil(lambda: chart.redraws > before, timeout=30_000)  # the timer redraws once it runs
    after_burst = chart.redraws
    qtbot.wait(3 * 200)  # idle for three redraw periods: nothing changed, so nothing is redrawn
    assert chart.redraws == after_burst == before + 1  # one redraw for the whole burst
    assert len(chart.series()["loss/train"]) == 2000 and chart.series()["loss/heldout"] == []
    xs = chart._lines["loss/train"].get_xdata()
    assert len(xs) == 2000


def test_input_anywhere_tells_background_jobs_the_person_is_active(qtbot):
    """The runner watches input application-wide: a key press on any widget marks the person active,
    so courteous jobs (the informative queue) step aside until they pause."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication, QLineEdit

    from core.jobs import USER_ACTIVITY

    JobRunner()
    field = QLineEdit()
    qtbot.addWidget(field)
    USER_ACTIVITY._last = float("-inf")
    assert not USER_ACTIVITY.active()
    QApplication.sendEvent(field, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_A, Qt.KeyboardModifier.NoModifier, "a"))
    assert USER_ACTIVITY._last > float("-inf")
    assert field.text() == "a"  # the watcher only looks: the widget still gets its key
