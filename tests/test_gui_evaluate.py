"""The Evaluate page (pytest-qt, offscreen) on a real project: prepare the blind set from the button, judge
it blind with the keyboard, see the results, export the report, compare training curves, clear on lock."""

import pytest
import torch
from PySide6.QtCore import Qt

from gui_helpers import wait_job  # noqa: F401  (sets QT_QPA_PLATFORM)
from core.evaluation.blind import evaluation_queue
from core.jobs import run_job
from tests.eval_fixtures import eval_base, make_eval_project  # noqa: F401 (fixture)

ORIGIN_WORDS = ("tuned", "base", "origin", "policy", "eval run", "side")


@pytest.fixture(scope="module")
def project(tmp_path_factory, eval_base):
    torch.set_num_threads(1)
    proj, policy_run, _ = make_eval_project(tmp_path_factory.mktemp("gui_ev") / "g.rlhfproj", eval_base, reward=False)
    yield proj, policy_run
    proj.close()


@pytest.fixture
def page(qtbot, project):
    from desktop.pages.evaluate import EvaluatePage

    proj, _ = project
    p = EvaluatePage()
    qtbot.addWidget(p)
    p.resize(1280, 800)
    p.show()
    p.set_project(proj)
    p.wait_idle()
    yield p
    p.wait_idle()
    p.set_project(None)


def _prepared(qtbot, page, seed=4):
    page.temperature.setValue(1.0)
    page.max_tokens.setValue(8)
    handle = page.prepare(seed=seed)
    result = wait_job(qtbot, handle, timeout=60_000)
    page.wait_idle()
    return result


def test_prepare_from_the_page_selects_the_new_evaluation(qtbot, page, project):
    proj, policy_run = project
    assert page.policy_combo.currentData() == policy_run
    assert "PPO" in page.policy_combo.currentText()
    result = _prepared(qtbot, page)
    assert page.selected_eval() == result.eval_run
    run = proj.run(result.eval_run)
    assert run.config["settings"]["temperature"] == 1.0 and run.config["settings"]["max_new_tokens"] == 8
    assert page.report["eval"]["run"] == result.eval_run and page.report["eval"]["pending"] == result.items
    assert f"({result.items} left)" in page.judge_button.text()


def test_blind_judging_with_keys_records_evaluation_judgments(qtbot, page, project):
    proj, _ = project
    result = _prepared(qtbot, page, seed=9)
    qtbot.mouseClick(page.judge_button, Qt.MouseButton.LeftButton)
    view = page.judge_view
    assert page.stack.currentWidget() is view
    queue = evaluation_queue(proj, result.eval_run)
    items = proj.run(result.eval_run).config["items"]

    # the view shows the queue's first pair as A and B, and nothing about where the answers came from
    first = queue[0]
    words = lambda t: t.split()  # noqa: E731 - Markdown joins lines
    assert words(view.card_a.body.toPlainText()) == words(proj.response(first.a).text)
    assert words(view.card_b.body.toPlainText()) == words(proj.response(first.b).text)
    assert view.card_a.number.text() == "A" and view.card_b.number.text() == "B"
    shown = " ".join(view.visible_texts()).lower()
    for word in ORIGIN_WORDS:
        assert word not in shown, word
    assert "which model wrote which is hidden" in shown  # the one mention: that it is hidden
    assert page.minimumSizeHint().width() <= 1280 - 150  # fits beside the main window's navigation

    qtbot.keyClick(view, Qt.Key.Key_F1)  # flag, then A
    qtbot.keyClick(view, Qt.Key.Key_A)
    qtbot.keyClick(view, Qt.Key.Key_T)
    qtbot.keyClick(view, Qt.Key.Key_X)
    qtbot.keyClick(view, Qt.Key.Key_B)
    js = proj.judgments(kind="pairwise", purpose="evaluation")[-4:]
    assert [j.choice for j in js] == ["a", "tie", "both_bad", "b"]
    assert [(j.prompt_id, j.a, j.b) for j in js] == [(q.prompt_id, q.a, q.b) for q in queue[:4]]
    assert js[0].flags == (proj.tags()[0],) and js[1].flags == ()
    assert all(j.seconds >= 0 for j in js)

    # Ctrl+Z takes the last choice back and shows that pair again
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.item.index == queue[3].index
    assert proj.judgments(kind="pairwise", purpose="evaluation")[-1].id == js[2].id
    qtbot.keyClick(view, Qt.Key.Key_B)

    # the results follow each judgment; Esc goes back to them
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert page.stack.currentWidget() is page.main
    ev = page.report["eval"]
    tuned = [items[q.index]["tuned"] for q in queue[:4]]
    wins = sum(1 for side, c in zip(tuned, ["a", "tie", "both_bad", "b"]) if c == side)
    losses = sum(1 for side, c in zip(tuned, ["a", "tie", "both_bad", "b"]) if c in ("a", "b") and c != side)
    assert ev["judged"] == 4 and ev["outcomes"]["win"] == wins and ev["outcomes"]["loss"] == losses
    assert ev["outcomes"]["tie"] == 1 and ev["outcomes"]["both_bad"] == 1
    assert f"{ev['pending']} pending" in page.summary.text()
    page.results.flush()
    assert len(page.results.figure.axes) == 5 and page.results._drawn is page.report

    # judge the rest: the view says everything is judged
    page.open_judging()
    while view.item is not None:
        qtbot.keyClick(view, Qt.Key.Key_A)
    assert "Every blind pair" in view.done_label.text() and view.done_label.isVisible()
    page.close_judging()
    assert page.report["eval"]["pending"] == 0


def test_export_report_and_compare_training_curves(qtbot, page, project, tmp_path):
    proj, policy_run = project
    if page.selected_eval() is None:
        _prepared(qtbot, page)
    handle = page.export_to(tmp_path)
    paths = wait_job(qtbot, handle)
    assert {p.suffix for p in paths.values()} == {".json", ".png", ".pdf"}
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths.values())

    page.tabs.setCurrentIndex(1)
    page.set_compared_runs([policy_run], "reward/mean")
    assert page.metric_combo.currentText() == "reward/mean"
    series = page.curve_series()[f"run {policy_run}: reward/mean"]
    assert series == [(float(s), v) for s, v in proj.metrics(policy_run)["reward/mean"]]
    page.set_compared_runs([])
    assert page.curve_series() == {}


def test_closing_the_project_clears_decrypted_views(qtbot, page, project):
    if page.selected_eval() is None:
        _prepared(qtbot, page)
    page.open_judging()
    page.set_project(None)
    view = page.judge_view
    assert view.card_a.body.toPlainText() == "" and view.prompt_view.toPlainText() == ""
    assert page.policy_combo.count() == 0 and page.eval_combo.count() == 0 and page.report is None
    assert page.stack.currentWidget() is page.main and not page.judge_button.isEnabled()


def test_report_job_result_matches_core(qtbot, page, project):
    from core.evaluation.report import build_report

    proj, _ = project
    if page.selected_eval() is None:
        _prepared(qtbot, page)
    page.refresh_report()
    page.wait_idle()
    direct = run_job(build_report(proj, page.selected_eval()))
    assert page.report["eval"]["outcomes"] == direct["eval"]["outcomes"]
    assert page.report["expert"] == direct["expert"]


def test_screens_render_at_1280x800(qtbot, project, tmp_path):
    from PySide6.QtGui import QImage

    from desktop.pages.evaluate import render_evaluate_screens, render_judge_screen

    proj, policy_run = project
    eval_run = [r.id for r in proj.runs(kind="eval")][-1]
    paths = [
        render_judge_screen(tmp_path, proj, eval_run),
        *render_evaluate_screens(tmp_path, proj, eval_run, compare_runs=[policy_run], metric="reward/mean"),
    ]
    assert [p.name for p in paths] == ["evaluate_judge.png", "evaluate.png", "evaluate_compare.png"]
    for p in paths:
        img = QImage(str(p))
        assert (img.width(), img.height()) == (1280, 800)


def test_hidden_page_defers_the_report_and_picks_up_new_runs(qtbot, project):
    """Opening a project must not load the reward model for a page nobody looks at; showing the page
    builds the report and lists runs created meanwhile."""
    from desktop.pages.evaluate import EvaluatePage

    proj, policy_run = project
    page = EvaluatePage()
    qtbot.addWidget(page)
    page.set_project(proj)  # hidden: counts only, no job
    assert page.handle is None and page._stale == (page.selected_eval() is not None)
    n_evals = page.eval_combo.count()
    from core.evaluation.blind import prepare_blind_eval
    from core.jobs import run_job

    made = run_job(prepare_blind_eval(proj, policy_run, seed=21, settings={"max_new_tokens": 4}))
    page.show()
    page.wait_idle()
    assert page.eval_combo.count() == n_evals + 1 and page.selected_eval() == made.eval_run
    assert page.report is not None and "expert" in page.report
    page.set_project(None)
