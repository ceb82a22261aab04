"""The Reward tab's learning curve (pytest-qt, offscreen) on a tiny real project: an empty state first,
Compute runs the re-fits as a job, the chart and the advice show the points, and the kept curve comes
back when the project is opened again."""

import torch

from gui_helpers import wait_job  # noqa: F401  (sets QT_QPA_PLATFORM)
from core.training.learning_curve import CURVE_KIND
from desktop.pages.learning_curve_box import SERIES
from tests.eval_fixtures import eval_base  # noqa: F401 (fixture)
from tests.test_learning_curve import make_ranked_project
from tests.train_gui_helpers import app_context, gui_settings  # noqa: F401 (fixtures)


def test_learning_curve_on_the_reward_tab(qtbot, app_context, tmp_path, eval_base):
    from desktop.pages.train import TrainPage

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    proj = make_ranked_project(tmp_path / "lc.rlhfproj")
    proj.set_setting("models", [eval_base])
    page = TrainPage(app_context)
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    try:
        page.set_project(proj)
        box = page.reward.curve_box
        page.reward.base.set_path(eval_base)
        assert box.chart.is_empty() and "Compute" in box.chart.empty_label.text()
        assert box.button.isEnabled()
        handle = box.compute(max_steps=4, eval_every=2, device="cpu")
        assert not box.button.isEnabled()
        curve = wait_job(qtbot, handle, timeout=120_000)
        qtbot.waitUntil(lambda: box.button.isEnabled(), timeout=10_000)
        points = box.chart.series()[SERIES]
        assert points == [(float(p.prompts), p.accuracy) for p in curve.points] and len(points) == 4
        assert curve.advice in box.advice.text() and "held-out prompts" in box.advice.text()
        assert [r.id for r in proj.runs(kind=CURVE_KIND)] == [curve.run_id]

        page.set_project(None)  # lock / close: nothing shown
        assert box.chart.is_empty() and box.advice.text() == ""
        page.set_project(proj)  # opened again: the kept curve, no re-fit
        assert box.chart.series()[SERIES] == points and box.handle is handle
    finally:
        app_context.runner.cancel_all()
        app_context.runner.wait(60_000)
        page.set_project(None)
        proj.close()
        torch.set_num_threads(threads)
