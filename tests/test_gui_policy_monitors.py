"""The Policy tab's reward-hacking monitors (pytest-qt, offscreen) on a real encrypted project: the charts
follow a run's logged figures, the warning banner shows on a (constructed) hacked run and not on a
healthy one, and Check with the expert samples fresh replies, is judged blind with the keyboard, records
ordinary judgments and puts the reward model's agreement on the chart."""

import pytest
import torch
from PySide6.QtCore import Qt

from gui_helpers import wait_job  # noqa: F401  (sets QT_QPA_PLATFORM)
from core.training import monitors as M
from core.training.expert_check import CHECK_KIND, judged_pairs
from tests.eval_fixtures import eval_base, expert_choice, make_eval_project  # noqa: F401 (fixture)
from tests.train_gui_helpers import app_context, gui_settings  # noqa: F401 (fixtures)

ORIGIN_WORDS = ("tuned", "base", "origin", "policy", "side", "check run")
BASE = M.Baseline(length=20.0, truncated=0.1, n=32)


def _constructed_run(proj, reward, length):
    run = proj.create_run(
        "policy", {"policy": {"algo": "ppo", "kl_target": 6.0, "adaptive_kl": True, "total_steps": 12}}
    )
    proj.update_run(run, status="done", summary={"monitor_baseline": BASE.to_dict(), "steps": 12})
    proj.log_metrics(run, 0, BASE.metrics())
    for step in range(1, 13):
        row = {
            "reward/mean": reward[0] + (reward[1] - reward[0]) * (step - 1) / 11,
            "response/length": length[0] + (length[1] - length[0]) * (step - 1) / 11,
            "response/eos_rate": 0.9,
            "kl/mean": 0.5,
        }
        proj.log_metrics(run, step, {**row, **M.step_figures(row, BASE)})
    return run


@pytest.fixture(scope="module")
def project(tmp_path_factory, eval_base):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    proj, policy_run, reward_run = make_eval_project(tmp_path_factory.mktemp("gmon") / "m.rlhfproj", eval_base)
    hacked = _constructed_run(proj, reward=(-0.5, 1.0), length=(20.0, 3.0))
    healthy = _constructed_run(proj, reward=(-0.5, 1.0), length=(20.0, 19.0))
    yield proj, {"policy": policy_run, "hacked": hacked, "healthy": healthy}
    proj.close()
    torch.set_num_threads(threads)


@pytest.fixture
def tab(qtbot, app_context, project):
    from desktop.pages.train import TrainPage

    proj, _ = project
    page = TrainPage(app_context)
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    page.set_project(proj)
    page.tabs.setCurrentWidget(page.policy)
    yield page.policy
    app_context.runner.cancel_all()
    app_context.runner.wait(60_000)
    page.set_project(None)


def test_banner_on_a_hacked_run_and_not_on_a_healthy_one(qtbot, tab, project):
    proj, runs = project
    tab.select_run(runs["hacked"])
    qtbot.waitUntil(lambda: tab.monitors.run_id == runs["hacked"], timeout=10_000)
    assert tab.monitors.warning_codes() == ["length_collapse"]
    assert tab.monitors.banner.isVisibleTo(tab) and "Length collapse" in tab.monitors.banner.text()
    assert "Check with the expert" in tab.monitors.banner.text()
    ratios = tab.monitors.length_chart.series()[M.LENGTH_RATIO]
    assert [s for s, _ in ratios] == list(range(1, 13)) and ratios[-1][1] == pytest.approx(3.0 / 20.0)
    assert [v for _, v in tab.monitors.share_chart.series()[M.TRUNCATED]] == pytest.approx([0.1] * 12)

    tab.select_run(runs["healthy"])
    qtbot.waitUntil(lambda: tab.monitors.run_id == runs["healthy"], timeout=10_000)
    assert tab.monitors.warning_codes() == [] and not tab.monitors.banner.isVisibleTo(tab)


def test_check_with_the_expert_from_the_tab(qtbot, tab, project):
    proj, runs = project
    run = runs["policy"]
    tab.select_run(run)
    qtbot.waitUntil(lambda: tab.monitors.run_id == run, timeout=10_000)
    assert tab.monitors.check_button.isEnabled()
    assert tab.monitors.length_chart.series()[M.LENGTH_RATIO]  # the real run's logged monitor figures
    before = len(proj.runs(kind=CHECK_KIND))
    handle = tab.check_with_expert(seed=3)
    wait_job(qtbot, handle, timeout=60_000)
    qtbot.waitUntil(lambda: tab.monitors.dialog is not None and tab.monitors.dialog.isVisible(), timeout=10_000)
    assert len(proj.runs(kind=CHECK_KIND)) == before + 1
    view = tab.monitors.dialog.view
    shown = " ".join(view.visible_texts()).lower()
    for word in ORIGIN_WORDS:
        assert word not in shown, word
    n = view.total
    assert n > 0
    keys = {"a": Qt.Key.Key_A, "b": Qt.Key.Key_B, "tie": Qt.Key.Key_T, "both_bad": Qt.Key.Key_X}
    for _ in range(n):
        item = view.item
        choice = expert_choice(proj.response(item.a).text, proj.response(item.b).text)
        if choice in ("tie", "both_bad"):
            choice = "a"  # give the reward model something to agree with
        qtbot.keyClick(view, keys[choice])
    assert view.item is None and "Every pair of this check is judged" in view.done_label.text()
    pairs = judged_pairs(proj, run)
    assert len(pairs) >= n  # ordinary pairwise judgments (purpose "annotation")
    qtbot.keyClick(view, Qt.Key.Key_Escape)  # Done: the agreement is measured on the worker
    qtbot.waitUntil(lambda: bool(tab.monitors.share_chart.series().get(M.AGREEMENT)), timeout=60_000)
    ((step, rate),) = tab.monitors.share_chart.series()[M.AGREEMENT][-1:]
    assert step == proj.run(run).summary["steps"] and 0.0 <= rate <= 1.0
    assert "fresh pairs you judged" in tab.status.text()
    assert tab.monitors.watch.figures["agreement"] == pytest.approx(rate)
