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


SHORT_REWARD = dict(max_steps=4, max_length=48, eval_every=2, checkpoint_every=2, early_stopping_patience=0)


def _wait_preflight(qtbot, tab, timeout=60_000):
    qtbot.waitUntil(lambda: tab.preflight_handle is not None and not tab.preflight_handle.running, timeout=timeout)


def test_a_finished_reward_run_reaches_the_policy_tab_and_the_other_pages(qtbot, window, tmp_path, tiny_model):
    """The walk's stumble: a reward run finished, yet the Policy tab still offered only "None" and said
    "PPO needs a reward" until the page was left and shown again."""
    win = window
    proj = make_project(tmp_path / "runs.rlhfproj", n_prompts=8, n_heldout=2)
    proj.set_setting("models", [tiny_model])
    proj.close()
    unlock(qtbot, win, tmp_path / "runs.rlhfproj")
    train, models, evaluate = win.page("Train"), win.page("Models"), win.page("Evaluate")
    win.show_page("Train")
    reward, policy = train.reward, train.policy
    _wait_preflight(qtbot, reward)
    _wait_preflight(qtbot, policy)
    assert [policy.reward_run.itemData(i) for i in range(policy.reward_run.count())] == [None]
    assert "needs a reward" in policy.preflight_label.text()
    assert reward.runs_empty.is_shown() and policy.runs_empty.is_shown()

    reward.overrides = dict(SHORT_REWARD)
    reward.run_preflight()
    _wait_preflight(qtbot, reward)
    assert reward.preflight_ok, reward.preflight_label.text()
    handle = reward.start()
    with qtbot.waitSignal(handle.done, timeout=180_000):
        pass
    assert handle.state == "finished", handle.error
    run_id = handle.result.run_id
    assert not reward.runs_empty.is_shown()
    # at once, with the Train page still up: the new run is the Policy tab's reward and the verdict follows
    assert policy.reward_run.currentData() == run_id
    _wait_preflight(qtbot, policy)
    assert "needs a reward" not in policy.preflight_label.text()
    assert "Next: the Policy tab" in reward.status.text()

    win.show_page("Models")
    qtbot.waitUntil(lambda: models.tuned.rowCount() == 1, timeout=15_000)
    assert models.tuned.item(0, 4).text() == "done" and not models.tuned_empty.is_shown()
    win.show_page("Evaluate")
    assert evaluate.run_list.count() == 1 and not evaluate.run_list_empty.is_shown()
    assert evaluate.policy_combo.count() == 0 and "Train page" in evaluate.policy_combo.placeholderText()

    # a run that ends while the Models page is up (training goes on in the background) is listed at once
    win.show_page("Models")
    project = win.ctx.project
    other = project.create_run("policy", {"policy": {"algo": "ppo", "mode": "lora", "policy_path": tiny_model}})
    project.update_run(other, status="done", summary={"steps": 3})
    win.ctx.notify_changed("run")
    assert models.tuned.rowCount() == 2
    assert models.selected_tuned()[0] == other and models.export_button.isEnabled()  # ready to export
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)


def test_empty_project_tables_say_what_to_do_next(qtbot, window, tmp_path):
    from core.project import Project
    from tests.gui_helpers import PASSPHRASE, write_jsonl

    Project.create(tmp_path / "empty.rlhfproj", PASSPHRASE).close()
    win = window
    unlock(qtbot, win, tmp_path / "empty.rlhfproj")
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)
    data, train, models, evaluate = (win.page(t) for t in ("Data", "Train", "Models", "Evaluate"))
    win.show_page("Data")
    assert data.empty.is_shown() and "No prompts yet" in data.empty.label.text()
    assert "Import" in data.empty.label.text()
    for state in (
        train.reward.runs_empty,
        train.reward.score_empty,
        train.policy.runs_empty,
        train.policy.samples_empty,
        models.table_empty,
        models.tuned_empty,
        evaluate.run_list_empty,
    ):
        assert state.is_shown(), state.text()
        assert len(state.label.text()) > 30  # a sentence, not a bare "empty"
    assert "Add model folder" in models.table_empty.label.text()
    assert "Start" in train.reward.runs_empty.label.text()
    assert train.reward.score_run.placeholderText() and evaluate.eval_combo.placeholderText()
    assert "Tick runs" in evaluate.curves.empty_label.text()

    # content arrives: the sentence goes; a filter that matches nothing says so instead
    handle = data.start_import(str(write_jsonl(tmp_path / "in.jsonl", n=5)), None, None)
    with qtbot.waitSignal(handle.done, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: data.model.rowCount() == 5, timeout=30_000)
    assert not data.empty.is_shown()
    assert "none judged yet" in data.count.text()
    data.status_filter.setCurrentText("ranked")
    assert data.empty.is_shown() and "No prompt matches" in data.empty.label.text()
    data.status_filter.setCurrentIndex(0)
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)


def test_data_counts_follow_judgments_made_elsewhere(qtbot, window, tmp_path):
    from core.project import Project
    from tests.gui_helpers import PASSPHRASE

    proj = Project.create(tmp_path / "counts.rlhfproj", PASSPHRASE)
    with proj.transaction():
        pids = [proj.add_prompt(f"Question {i}?") for i in range(3)]
        for pid in pids:
            for r in range(3):
                proj.add_response(pid, f"Answer {r} to {pid}.")
    proj.close()
    win = window
    unlock(qtbot, win, tmp_path / "counts.rlhfproj")
    data = win.page("Data")
    win.show_page("Data")
    qtbot.waitUntil(lambda: data.model.rowCount() == 3 and not win.ctx.runner.active, timeout=30_000)
    assert "none judged yet" in data.count.text()
    project = win.ctx.project
    pid = project.prompt_ids()[0]
    project.record_ranking(pid, tiers=[[r.id] for r in project.responses(pid)])
    win.ctx.notify_changed("judgment")  # what the Annotate page sends after each judgment
    qtbot.waitUntil(lambda: "1 ranked" in data.count.text(), timeout=30_000)


def test_export_folder_makes_a_new_folder_inside_a_full_one(tmp_path):
    from desktop.pages.models import export_folder

    class Proj:
        path = tmp_path / "case-notes.rlhfproj"

    new = tmp_path / "new"
    assert export_folder(new, Proj, 3) == new  # not there yet: used as is
    new.mkdir()
    assert export_folder(new, Proj, 3) == new  # empty: used as is
    (new / "notes.txt").write_text("x")
    assert export_folder(new, Proj, 3) == new / "case-notes-run-3"
    (new / "case-notes-run-3").mkdir()
    assert export_folder(new, Proj, 3) == new / "case-notes-run-3-2"


def test_report_charts_say_what_to_do_next():
    from matplotlib.figure import Figure

    from core.evaluation import report as R

    def texts(draw, rep):
        ax = Figure().add_subplot(111)
        draw(ax, rep)
        return " ".join(t.get_text() for t in ax.texts)

    assert "Prepare a blind set" in texts(R.draw_outcomes, {})
    assert "once a blind set is prepared" in texts(R.draw_rewards, {})
    zero = {"judged": 4, "flags": {"toxic": {"successes": 0, "rate": 0.0, "low": 0.0, "high": 0.5}}}
    assert "No pair flagged" in texts(R.draw_flags, {"eval": zero})
    assert "held-out prompts" in texts(R.draw_calibration, {"reward_model": {"calibration": []}})
    line = R.summary_lines(
        {"reward_model": {"run": 1, "heldout_pairs": 0, "accuracy": {"rate": None, "low": 0.0, "high": 1.0}}}
    )
    assert any("unknown" in x and "held-out" in x for x in line)


def test_generated_candidates_reach_annotate_and_data(qtbot, window, tmp_path, tiny_model):
    """Prompts imported alone, candidates generated on the Models page: Annotate's empty queue starts and
    Data's counts follow, as after an import (before, Annotate stayed empty until the project was reopened)."""
    from core.project import Project
    from tests.gui_helpers import PASSPHRASE

    proj = Project.create(tmp_path / "prompts.rlhfproj", PASSPHRASE)
    with proj.transaction():
        for i in range(3):
            proj.add_prompt(f"How do I return item {i}?")
    proj.set_setting("models", [tiny_model])
    proj.close()
    win = window
    unlock(qtbot, win, tmp_path / "prompts.rlhfproj")
    annotate, data, models = win.page("Annotate"), win.page("Data"), win.page("Models")
    qtbot.waitUntil(lambda: not win.ctx.runner.active, timeout=60_000)
    win.show_page("Annotate")
    assert annotate.item is None or annotate.item.k == 0
    if annotate.item is not None:  # a prompt with nothing to compare says where candidates come from
        assert annotate.center_stack.currentWidget() is annotate.empty_label
        assert "Generate candidates" in annotate.empty_label.text()
        assert not annotate.submit_rank.isEnabled()
    win.show_page("Models")
    qtbot.waitUntil(lambda: models.table.rowCount() == 1 and not win.ctx.runner.active, timeout=60_000)
    models.table.selectRow(0)
    dialog = models.open_generate_dialog()
    dialog.k.setValue(2)
    dialog.max_new_tokens.setValue(6)
    dialog.start_button.click()
    with qtbot.waitSignal(dialog.handle.done, timeout=120_000):
        pass
    assert dialog.handle.state == "finished", dialog.handle.error
    dialog.close()
    qtbot.waitUntil(lambda: annotate.item is not None and annotate.item.k >= 1, timeout=30_000)
    win.show_page("Data")
    qtbot.waitUntil(lambda: data.model.rowCount() == 3 and not win.ctx.runner.active, timeout=30_000)
    assert all(row[4] >= 1 for row in data.model.rows)  # the Candidates column
