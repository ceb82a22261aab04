"""The real main window, offscreen: create a project, import, rank with the keyboard, reopen; auto-lock;
the GUI thread stays responsive during a long import; search, filters, export confirmation, activity."""

from __future__ import annotations

import time

from gui_helpers import (  # noqa: F401  (fixtures)
    PASSPHRASE,
    _module_window,
    create_through_wizard,
    unlock,
    wait_job,
    window,
    write_jsonl,
)
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from core.project import Project

K = Qt.Key


def import_through_dialog(qtbot, win, path):
    data = win.page("Data")
    dialog = data.open_import_dialog(str(path))
    qtbot.waitUntil(lambda: dialog.preview_result is not None, timeout=10_000)
    assert dialog.preview_result.total > 0 and not dialog.preview_result.errors
    assert dialog.table.rowCount() == min(20, dialog.preview_result.total)
    before = data.last_import
    dialog.import_button.click()
    qtbot.waitUntil(lambda: data.last_import is not before, timeout=30_000)
    qtbot.waitUntil(lambda: data.model.rowCount() == len(win.ctx.project.prompt_ids()), timeout=10_000)
    return data.last_import


def test_create_import_rank_with_keyboard_reopen(qtbot, window, tmp_path):
    win = window
    proj = create_through_wizard(qtbot, win, tmp_path, name="support")
    path = proj.path
    assert path == tmp_path / "support.rlhfproj" and win.lock_label.text() == "Unlocked"
    report = import_through_dialog(qtbot, win, write_jsonl(tmp_path / "in.jsonl", n=8, k=4))
    assert report.prompts_added == 8 and report.responses_added == 32
    assert win.page("Data").model.rows[0][3] == "unranked"

    win.show_page("Annotate")
    page = win.page("Annotate")
    assert win.page_stack.currentWidget() is page
    page.session.consistency_share = 0.0  # a deterministic queue (re-checks are tested with the page)
    qtbot.waitUntil(lambda: page.item is not None, timeout=5000)
    expected = []  # (prompt id, tiers of response ids) in the order they were submitted
    plans = [
        [K.Key_2, K.Key_1, K.Key_4, K.Key_3],
        [K.Key_1, "=", K.Key_3, K.Key_2, K.Key_4],
        [K.Key_4, K.Key_3, K.Key_Backspace, K.Key_2, K.Key_1, K.Key_3],
        [K.Key_3, K.Key_1, K.Key_2, K.Key_4],
        [K.Key_1, K.Key_2, "=", K.Key_3, K.Key_4],
    ]
    tiers_by_plan = [
        [[1], [0], [3], [2]],
        [[0, 2], [1], [3]],
        [[3], [1], [0], [2]],
        [[2], [0], [1], [3]],
        [[0], [1, 2], [3]],
    ]
    for keys, tiers in zip(plans, tiers_by_plan):
        item = page.item
        shown = [c.id for c in item.candidates]
        for k in keys:  # keyboard only, to whatever has focus in the real window
            target = win.focusWidget() or page
            if isinstance(k, str):
                qtbot.keyClicks(target, k)
            else:
                qtbot.keyClick(target, k)
        qtbot.keyClick(win.focusWidget() or page, K.Key_Return)
        qtbot.waitUntil(lambda it=item: page.item is not it, timeout=5000)
        expected.append((item.prompt_id, [[shown[i] for i in tier] for tier in tiers]))

    # the Data page shows the new statuses when we come back to it
    win.show_page("Data")
    data = win.page("Data")
    qtbot.waitUntil(lambda: sum(r[3] == "ranked" for r in data.model.rows) == 5, timeout=5000)

    win.close_project()
    assert win.stack.currentWidget() is win.start and data.model.rowCount() == 0
    qtbot.waitUntil(lambda: proj.closed, timeout=15_000)  # once running jobs have stopped
    assert str(path) in win.ctx.recent_projects()[0]
    reopened = unlock(qtbot, win, path)
    got = [(j.prompt_id, j.tiers) for j in sorted(reopened.judgments(kind="ranking"), key=lambda j: j.id)]
    assert got == expected


def test_wrong_passphrase_lets_you_try_again(qtbot, window, tmp_path):
    Project.create(tmp_path / "p", PASSPHRASE).close()
    dialog = window.open_path(tmp_path / "p.rlhfproj")
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    qtbot.keyClicks(dialog.passphrase, "not it")
    qtbot.keyClick(dialog.passphrase, K.Key_Return)
    qtbot.waitUntil(dialog.error.isVisible, timeout=10_000)
    assert "Wrong passphrase" in dialog.error.text() and dialog.isVisible() and window.ctx.project is None
    assert not dialog.passphrase.isReadOnly()
    dialog.passphrase.clear()
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    qtbot.keyClick(dialog.passphrase, K.Key_Return)
    qtbot.waitUntil(lambda: window.ctx.project is not None, timeout=10_000)
    assert not dialog.isVisible()


def test_auto_lock_clears_views_and_asks_for_passphrase(qtbot, window, tmp_path):
    win = window
    win.ctx.set_idle_minutes(1.5 / 60)  # 1.5 s
    proj = Project.create(tmp_path / "lockme", PASSPHRASE)
    pid = proj.add_prompt("A secret question about order 4417")
    proj.add_response(pid, "A secret answer")
    proj.close()
    opened = unlock(qtbot, win, tmp_path / "lockme.rlhfproj")
    data = win.page("Data")
    qtbot.waitUntil(lambda: data.model.rowCount() == 1, timeout=5000)
    data.table.selectRow(0)
    assert "secret question" in data.model.preview(pid) and "secret answer" in data.detail.toPlainText()
    win.show_page("Annotate")
    annotate = win.page("Annotate")
    qtbot.waitUntil(lambda: annotate.item is not None, timeout=5000)

    preview = data.open_import_dialog(str(write_jsonl(tmp_path / "x.jsonl", n=2)))
    qtbot.waitUntil(lambda: preview.preview_result is not None or win.ctx.locked, timeout=5000)
    # The lock comes from the idle timer, however late a loaded machine runs it; the bound only catches
    # a lock that never comes (the idle period itself is 1.5 s).
    qtbot.waitUntil(lambda: win.ctx.locked, timeout=60_000)
    # views cleared, key dropped, the unlock dialog is up
    assert data.model.rowCount() == 0 and data.detail.toPlainText() == ""
    assert annotate.item is None and annotate.project is None and not preview.isVisible()
    qtbot.waitUntil(lambda: opened.closed, timeout=5000)
    assert win.stack.currentWidget() is win.locked_screen and win.lock_label.text() == "Locked"
    dialog = win.unlock_dialog
    qtbot.waitUntil(lambda: dialog is not None and dialog.isVisible(), timeout=5000)
    assert "inactivity" in " ".join(w.text() for w in dialog.findChildren(type(win.lock_label)))
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    qtbot.keyClick(dialog.passphrase, K.Key_Return)
    qtbot.waitUntil(lambda: win.ctx.project is not None, timeout=10_000)
    win.show_page("Data")
    qtbot.waitUntil(lambda: data.model.rowCount() == 1, timeout=5000)
    assert win.stack.currentWidget() is win.workspace and not win.ctx.locked


def measure_import(qtbot, data, path):
    """Import `path` through the Data page; return (longest gap between 10 ms timer ticks while the
    job ran, seconds the job ran, the import report)."""
    ticks: list[float] = []
    handle = None
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()) if handle is not None and handle.running else None)
    timer.start()
    handle = data.start_import(str(path), None, None)
    t0 = time.monotonic()
    report = wait_job(qtbot, handle, timeout=300_000)
    elapsed = time.monotonic() - t0
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) >= 2, "the timer never ticked while the job ran"
    return max(gaps), elapsed, report


def test_gui_thread_responsive_during_long_import(qtbot, window, tmp_path):
    """The import runs on a worker: the GUI thread keeps ticking while it runs.

    The work is sized to the machine (doubled until one import lasts MIN_JOB_S), so a fast machine
    cannot make it too short to mean anything; the bound on the longest stall is a small fraction of
    the job (an import on the GUI thread would stall it for the whole job), not a machine-speed figure.
    The 50 ms product target is measured by bench/annotate.py, not asserted here.
    """
    min_job_s, max_stall_s = 1.5, 0.25
    win = window
    Project.create(tmp_path / "big", PASSPHRASE).close()
    unlock(qtbot, win, tmp_path / "big.rlhfproj")
    # other pages start their own loading jobs on unlock (some import torch: a C extension's import
    # holds the GIL); measure the import alone
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)
    data = win.page("Data")
    n, offset, stalls = 3000, 0, []
    for attempt in range(12):
        # the last import's follow-ups (reloading the rows, the quality scan) finish first: they are
        # not the import, and sizing the next one on a contended run would overshoot
        qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=300_000)
        worst, elapsed, report = measure_import(
            qtbot, data, write_jsonl(tmp_path / f"part{attempt}.jsonl", n=n, k=4, offset=offset)
        )
        assert report.prompts_added == n
        offset += n
        if elapsed < min_job_s:  # too short to mean anything on this machine: size up and measure again
            n = min(int(n * 2.5 * min_job_s / max(elapsed, 0.05)), 400_000)
            continue
        stalls.append(worst)
        if worst < max_stall_s or len(stalls) == 2:  # one retry, in case another process stole the CPU
            break
    assert stalls, "the import never lasted long enough to measure"
    assert min(stalls) < max_stall_s, f"GUI thread stalled {[round(s * 1000) for s in stalls]} ms during the import"


def _fill_for_queue(proj, start, n, judged=0):
    """n prompts x 4 varied replies (store API, one transaction); the first `judged` get rankings."""
    words = (
        "refund order password account delivery invoice warranty replacement kettle blender lamp "
        "charger tracking label label email days business free photo damage plan upgrade"
    ).split()
    items = []
    for i in range(start, start + n):
        prompt = f"Customer {i} asks about the {words[i % len(words)]} and the {words[(i * 7) % len(words)]}."
        replies = [
            " ".join(words[(i * 3 + r * 5 + j) % len(words)] for j in range(12 + 4 * r)) + f" ({i}.{r})."
            for r in range(4)
        ]
        items.append((prompt, None, "train", replies))
    out = proj.add_many(items)
    for pid, rids, _, _ in out[:judged]:
        proj.record_ranking(pid, [[r] for r in rids])


def test_gui_thread_responsive_during_queue_refresh(qtbot, window, tmp_path):
    """The informative queue is ordered by a core job on a worker: the GUI thread keeps ticking while it
    runs, and the expert keeps judging (the item on screen stays until the order arrives).

    Sized like the import test: the pool the refresh scores grows until one refresh lasts MIN_JOB_S, so
    the bound on the longest stall is a small fraction of the job, not a machine-speed figure."""
    min_job_s, max_stall_s = 1.5, 0.25
    win = window
    proj = Project.create(tmp_path / "queue", PASSPHRASE)
    _fill_for_queue(proj, 0, 400, judged=50)
    proj.close()
    project = unlock(qtbot, win, tmp_path / "queue.rlhfproj")
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)
    win.show_page("Annotate")
    page = win.page("Annotate")
    qtbot.waitUntil(lambda: page.item is not None, timeout=10_000)
    page.session.consistency_share = 0.0
    pool, total, stalls = 300, 400, []
    for attempt in range(10):
        if pool > total - 50:  # more unjudged prompts to score
            _fill_for_queue(project, total, pool + 50 - total + 100)
            total = pool + 150
        page.assist.pool_size = pool
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        timer.start()
        t0 = time.monotonic()
        if page.assist.order_combo.currentIndex() != 1:
            page.assist.order_combo.setCurrentIndex(1)  # choosing the order starts the refresh
        else:
            page.assist.refresh()
        handle = page.assist.handle("refresh")
        shown = page.item.prompt_id
        qtbot.keyClick(page, Qt.Key.Key_Period)  # the expert moves on while it runs
        assert page.item is not None and page.item.prompt_id != shown
        order = wait_job(qtbot, handle, timeout=300_000)
        elapsed = time.monotonic() - t0
        timer.stop()
        assert order.ready and order.pool == min(pool, order.unjudged)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        if elapsed < min_job_s:
            pool = int(pool * 2.5 * min_job_s / max(elapsed, 0.05))
            continue
        stalls.append(max(gaps))
        if stalls[-1] < max_stall_s or len(stalls) == 2:
            break
    assert stalls, "the refresh never lasted long enough to measure"
    assert min(stalls) < max_stall_s, f"GUI thread stalled {[round(s * 1000) for s in stalls]} ms during the refresh"
    assert page.session.informative


def test_search_filters_export_confirmation(qtbot, window, tmp_path):
    win = window
    proj = Project.create(tmp_path / "s", PASSPHRASE)
    ids = []
    for i, text in enumerate(
        ["Where is my refund?", "Reset my password please", "Refund for a broken kettle", "Change my delivery address"]
    ):
        pid = proj.add_prompt(text, split="heldout" if i == 3 else "train")
        r = [proj.add_response(pid, f"reply {j} about the kettle" if i == 1 else f"reply {j}") for j in range(2)]
        ids.append((pid, r))
    proj.record_ranking(ids[0][0], [[ids[0][1][0]], [ids[0][1][1]]], flags=("harmful",))
    proj.record_skip(ids[1][0])
    proj.close()
    unlock(qtbot, win, tmp_path / "s.rlhfproj")
    data = win.page("Data")
    qtbot.waitUntil(lambda: data.model.rowCount() == 4, timeout=5000)
    assert [r[3] for r in data.model.rows] == ["ranked", "skipped", "unranked", "unranked"]

    qtbot.keyClicks(data.search, "REFUND")
    qtbot.keyClick(data.search, K.Key_Return)
    qtbot.waitUntil(lambda: data.model.rowCount() == 2, timeout=5000)
    assert {data.model.prompt_id(r) for r in range(2)} == {ids[0][0], ids[2][0]}
    data.status_filter.setCurrentText("unranked")
    assert data.model.rowCount() == 1 and data.model.prompt_id(0) == ids[2][0]
    data.search.clear()
    assert data.model.rowCount() == 2  # unranked: 2 and 3
    data.in_candidates.setChecked(True)
    data.status_filter.setCurrentText("All statuses")
    qtbot.keyClicks(data.search, "kettle")
    qtbot.keyClick(data.search, K.Key_Return)
    qtbot.waitUntil(lambda: data.model.rowCount() == 2, timeout=5000)
    assert {data.model.prompt_id(r) for r in range(2)} == {ids[1][0], ids[2][0]}
    data.search.clear()
    data.status_filter.setCurrentText("flagged")
    assert data.model.rowCount() == 1 and data.model.prompt_id(0) == ids[0][0]
    data.status_filter.setCurrentText("All statuses")
    data.split_filter.setCurrentText("heldout")
    assert data.model.rowCount() == 1 and data.model.prompt_id(0) == ids[3][0]

    # export: nothing is written until the plaintext confirmation is accepted
    out = tmp_path / "pairs.jsonl"
    box = data.confirm_export(str(out), "pairs", "jsonl")
    assert box.isVisible()
    box.button(QMessageBox.StandardButton.Cancel).click()
    # background work ends (the quality scan steps aside while keys are typed) and no export ran
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=30_000)
    assert not out.exists()
    box = data.confirm_export(str(out), "pairs", "jsonl")
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: data.last_export is not None, timeout=10_000)
    assert out.exists() and data.last_export == (str(out), 1)
    assert "refund" in out.read_text().lower()

    win.show_page("Activity")
    act = win.page("Activity")
    qtbot.waitUntil(lambda: any(e["event"] == "exported" for e in act.entries), timeout=5000)
    assert act.problems == [] and "intact" in act.verdict.text()


def test_import_preview_shows_errors_by_line(qtbot, window, tmp_path):
    unlock_path = tmp_path / "e"
    Project.create(unlock_path, PASSPHRASE).close()
    unlock(qtbot, window, tmp_path / "e.rlhfproj")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": 3}\n{"prompt": "x", "responses": ["a"], '
        '"ranking": [0, 5]}\n',
        encoding="utf-8",
    )
    dialog = window.page("Data").open_import_dialog(str(bad))
    qtbot.waitUntil(lambda: dialog.preview_result is not None, timeout=10_000)
    errors = [dialog.errors.item(i).text() for i in range(dialog.errors.count())]
    assert len(errors) == 2 and errors[0].startswith("bad.jsonl:2") and errors[1].startswith("bad.jsonl:3")
    assert dialog.errors.isVisible() and not dialog.import_button.isEnabled()
    assert dialog.table.rowCount() == 1
    dialog.reject()


def test_open_demo_opens_existing_demo_without_asking(qtbot, window, tmp_path, monkeypatch):
    from desktop.main_window import DEMO_ENV, DEMO_PASSPHRASE

    demo = tmp_path / "demo.rlhfproj"
    monkeypatch.setenv(DEMO_ENV, str(demo))
    p = Project.create(demo, DEMO_PASSPHRASE)
    p.add_prompt("demo prompt")
    p.close()
    window.open_demo()
    qtbot.waitUntil(lambda: window.ctx.project is not None, timeout=10_000)
    assert window.ctx.project.path == demo and window.unlock_dialog is None


def test_gui_command_registered():
    from core.cli import build_parser

    args = build_parser().parse_args(["gui", "--demo"])
    assert args.command == "gui" and args.demo and args.project is None
    args = build_parser().parse_args(["gui", "/x/p.rlhfproj"])
    assert args.project == "/x/p.rlhfproj" and not args.demo


def test_rlhf_studio_opens_the_app_through_the_entry_desktop_passes(monkeypatch):
    """`rlhf-studio` (desktop.app:main) hands core's command line the app as a name; core imports it lazily."""
    import desktop.app
    from core.cli import main as core_main

    calls = []
    monkeypatch.setattr(desktop.app, "run_gui", lambda project=None, demo=False: calls.append((project, demo)) or 0)
    assert desktop.app.main(["gui", "--demo"]) == 0
    assert desktop.app.main([]) == 0
    assert desktop.app.main(["gui", "/x/p.rlhfproj"]) == 0
    assert calls == [(None, True), (None, False), ("/x/p.rlhfproj", False)]
    assert core_main(["gui"]) == 2  # core alone names no app


def test_data_page_counts_quality_findings(qtbot, window, tmp_path):
    win = window
    proj = Project.create(tmp_path / "qual", PASSPHRASE)
    pid = proj.add_prompt("Where is my refund?")
    text = "You can return it within 30 days for a full refund; the label is under Account > Orders."
    for reply in (text, text.upper(), "Sorry. " * 12, ""):
        proj.add_response(pid, reply)
    proj.close()
    unlock(qtbot, win, tmp_path / "qual.rlhfproj")
    win.show_page("Data")
    data = win.page("Data")
    qtbot.waitUntil(lambda: "Quality checks" in data.quality_label.text(), timeout=30_000)
    shown = data.quality_label.text()
    assert "4 candidates" in shown and "1 duplicate" in shown and "1 repetitive" in shown and "1 empty" in shown
