"""Screenshots of the Train and Models pages from the real widgets, offscreen, at 1280×800.

    render_training_screens("docs/screenshots", project)   # or project=None: a throwaway one

Trains for real, through the pages themselves (a short reward run, then a short policy run against it,
each a job on the worker), so the charts, the runs list, the scoring view and the samples table show
what a user sees. The runs are recorded in the project given; when it is None or has too few judgments
for a reward model, a throwaway project is built in a temporary folder: demo-style support requests,
four replies each, ranked by the demo's simulated expert. Nothing of the user's is read or written.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Optional

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZE = (1280, 800)
PASSPHRASE = "screenshot passphrase"
MIN_PAIRS = 60


def build_ranked_project(folder: Path, n_prompts: int = 48, n_heldout: int = 8, seed: int = 3):
    """A project of support requests with 4 replies each, ranked by the simulated expert (ties kept)."""
    from core.demo.corpus import expert_score, make_reply, make_request
    from core.project import Project

    rng = random.Random(seed)
    proj = Project.create(folder / "support-replies.rlhfproj", PASSPHRASE)
    kinds = ["helpful", "inaccurate", "vague", "off_topic"]
    with proj.transaction():
        for i in range(n_prompts + n_heldout):
            topic, request, slots = make_request(rng)
            pid = proj.add_prompt(request, split="train" if i < n_prompts else "heldout")
            rng.shuffle(kinds)
            for kind in kinds:
                reply = make_reply(
                    rng,
                    topic,
                    slots,
                    rng.choice(["polite", "neutral", "rude"]),
                    kind,
                    rng.choice(["short", "medium", "long"]),
                )
                proj.add_response(pid, reply, origin={"kind": "import"})
    for pid in proj.prompt_ids():
        prompt = proj.prompt(pid).prompt
        by_score: dict[float, list[int]] = {}
        for r in proj.responses(pid):
            by_score.setdefault(round(expert_score(prompt, r.text), 3), []).append(r.id)
        if len(by_score) > 1:
            proj.record_ranking(pid, [by_score[s] for s in sorted(by_score, reverse=True)], seconds=8.0)
    return proj


def _wait(app, until=None, seconds: float = 0.0, timeout: float = 3600.0) -> None:
    """The screenshot script's event-loop wait, with room for real training runs (up to an hour)."""
    from desktop.screenshots import _wait as wait_events

    wait_events(app, seconds=seconds, until=until, timeout=timeout)


def _judge_check(view) -> None:
    """The simulated expert's blind choice on every pair of a check (a tie when the scores tie)."""
    from core.demo.corpus import expert_score

    while view.item is not None:
        item, proj = view.item, view.project
        prompt = proj.prompt(item.prompt_id).prompt
        sa = expert_score(prompt, proj.response(item.a).text)
        sb = expert_score(prompt, proj.response(item.b).text)
        view.submit("a" if sa > sb else "b" if sb > sa else "tie")


def _over(page, dialog):
    """The page with a dialog drawn centred over it, as on screen."""
    from desktop.screenshots import _with_dialog

    return _with_dialog(page, dialog)


def _settle(app) -> None:
    """Long enough for LiveChart's throttled redraw (200 ms) and the resulting paint."""
    _wait(app, seconds=0.6)


def render_training_screens(
    out_dir: str | Path,
    project=None,
    *,
    base_model: Optional[str] = None,
    size: tuple[int, int] = SIZE,
    reward_steps: int = 30,
    policy_steps: int = 12,
) -> list[Path]:
    """Save train_reward.png, train_policy.png, train_check.png, models.png and generate.png into `out_dir`;
    returns the paths."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from core.demo.project import demo_model_dir
    from desktop.context import AppContext
    from desktop.pages.models import ModelsPage, register_model, registered_models
    from desktop.pages.train import TrainPage

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    if app is None:
        from desktop.app import make_app

        app = make_app()
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-train-shots-"))
    own = project is None or len(project.preference_pairs()) < MIN_PAIRS
    proj = build_ranked_project(tmp) if own else project
    base = base_model or next(iter(registered_models(proj)), None) or str(demo_model_dir())
    register_model(proj, base)
    ctx = AppContext(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    written: list[Path] = []

    def save(widget_or_pixmap, name: str) -> None:
        path = out / name
        pix = widget_or_pixmap.grab() if hasattr(widget_or_pixmap, "grab") else widget_or_pixmap
        pix.save(str(path))
        written.append(path)

    page = TrainPage(ctx)
    page.resize(*size)
    page.show()
    try:
        page.set_project(proj)
        tab = page.reward
        tab.base.set_path(str(Path(base).expanduser().resolve()))
        tab.overrides = {
            "max_steps": reward_steps,
            "eval_every": 5,
            "checkpoint_every": reward_steps,
            "max_length": 128,
            "early_stopping_patience": 0,
        }
        handle = tab.run_preflight()
        _wait(app, until=lambda: handle is None or not handle.running)
        handle = tab.start()
        if handle is not None:
            _wait(app, until=lambda: not handle.running)
        _wait(app, until=lambda: tab.score_prompt.count() > 0, timeout=30)
        if tab.score_run.count() and tab.score_prompt.count():
            heldout = [i for i in range(tab.score_prompt.count()) if "(held out)" in tab.score_prompt.itemText(i)]
            tab.score_prompt.blockSignals(True)
            tab.score_prompt.setCurrentIndex(heldout[0] if heldout else 0)
            tab.score_prompt.blockSignals(False)
            h = tab.score()
            if h is not None:
                _wait(app, until=lambda: not h.running)
        curve = tab.curve_box.compute(max_steps=reward_steps, max_length=128)  # the learning curve, for real
        if curve is not None:
            _wait(app, until=lambda: not curve.running)
        _settle(app)
        save(page, "train_reward.png")

        page.tabs.setCurrentWidget(page.policy)
        ptab = page.policy
        ptab.refresh()
        ptab.base.set_path(str(Path(base).expanduser().resolve()))
        ptab.algo.setCurrentIndex(ptab.algo.findData("rloo"))
        ptab.overrides = {
            "total_steps": policy_steps,
            "batch_size": 8,
            "minibatch_size": 8,
            "rloo_k": 4,
            "ppo_epochs": 1,
            "max_new_tokens": 48,
            "log_samples_every": 2,
            "samples_shown": 3,
            "checkpoint_every": policy_steps,
            "learning_rate": 3e-4,
        }
        handle = ptab.run_preflight()
        _wait(app, until=lambda: handle is None or not handle.running)
        handle = ptab.start()
        if handle is not None:
            _wait(app, until=lambda: not handle.running)
        # Check with the expert: fresh policy replies against the base's, judged blind by the simulated expert
        check = ptab.check_with_expert(seed=1)
        if check is not None:
            _wait(app, until=lambda: not check.running)
            _wait(app, until=lambda: ptab.monitors.dialog is not None, timeout=30)
        dialog = ptab.monitors.dialog
        if dialog is not None:
            _settle(app)
            save(_over(page, dialog), "train_check.png")
            _judge_check(dialog.view)
            dialog.accept()
            measuring = getattr(ptab, "agreement_handle", None)
            if measuring is not None:
                _wait(app, until=lambda: not measuring.running)
        _settle(app)
        save(page, "train_policy.png")
    finally:
        ctx.runner.cancel_all()
        ctx.runner.wait(60_000)
        page.set_project(None)
        page.close()

    models = ModelsPage(ctx)
    models.resize(*size)
    models.show()
    try:
        models.set_project(proj)
        _wait(app, until=lambda: not ctx.runner.active, timeout=60)
        if models.table.rowCount():
            models.table.selectRow(0)
        _settle(app)
        save(models, "models.png")
        dialog = models.open_generate_dialog()
        if dialog is not None:
            dialog.temperature_mix.setText("0.7, 1.0, 1.3, 1.6")
            _settle(app)
            save(dialog, "generate.png")
            dialog.close()
    finally:
        models.set_project(None)
        models.close()
    ctx.runner.wait(60_000)
    if own:
        proj.close()
    return written


if __name__ == "__main__":
    import sys

    for p in render_training_screens(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"):
        print(p)
