"""The Train page (pytest-qt, offscreen) on real encrypted projects and real tiny models: a reward run
started from the page, watched on its chart, cancelled, resumed and finished; scoring; the advanced form;
the pre-flight data check; a policy run with live samples, cancel, resume, export; a failing run."""

from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtWidgets import QFileDialog, QMessageBox

from desktop.config_form import field_docs
from desktop.pages.train import TrainPage
from tests.train_gui_helpers import (  # noqa: F401 (fixtures)
    PASSPHRASE,
    app_context,
    gui_settings,
    make_demo_project,
    make_project,
    tiny_model,
)

# A short run: enough steps to cancel in the middle and still see the curve go on after the resume.
SMALL_REWARD = dict(max_steps=12, max_length=64, eval_every=4, checkpoint_every=4, early_stopping_patience=0)
SMALL_POLICY = dict(
    total_steps=6,
    batch_size=4,
    minibatch_size=2,
    ppo_epochs=1,
    max_new_tokens=10,
    max_prompt_tokens=48,
    log_samples_every=1,
    samples_shown=2,
    checkpoint_every=2,
    reward={"model_weight": 0.0, "length_weight": 1.0, "length_target": 6},
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; on 2 shared cores more threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _page(qtbot, app_context, proj, tiny_model):
    proj.set_setting("models", [tiny_model])
    page = TrainPage(app_context)
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    page.set_project(proj)
    yield page
    app_context.runner.cancel_all()
    app_context.runner.wait(60_000)
    page.set_project(None)
    proj.close()


@pytest.fixture
def page(qtbot, app_context, tmp_path, tiny_model):
    yield from _page(
        qtbot, app_context, make_project(tmp_path / "train.rlhfproj", n_prompts=24, n_heldout=4), tiny_model
    )


@pytest.fixture
def demo_page(qtbot, app_context, tmp_path, tiny_model):
    """The Train page on the demo project (candidates from the demo model, ranked by the simulated expert)."""
    yield from _page(qtbot, app_context, make_demo_project(tmp_path / "demo.rlhfproj"), tiny_model)


def wait_ready(qtbot, tab, timeout=30_000):
    """Wait for the pre-flight job to settle (Start enabled or a verdict shown)."""
    qtbot.waitUntil(lambda: tab.preflight_handle is not None and not tab.preflight_handle.running, timeout=timeout)


def wait_done(qtbot, handle, timeout=120_000):
    if handle.running:
        with qtbot.waitSignal(handle.done, timeout=timeout):
            pass


def test_reward_run_chart_cancel_resume_finish_and_score(qtbot, demo_page):
    page = demo_page
    tab = page.reward
    proj = page.project
    wait_ready(qtbot, tab)
    assert tab.preflight_ok, tab.preflight_label.text()
    assert "Ready" in tab.preflight_label.text() and "preference pairs" in tab.preflight_label.text()
    assert tab.config.preset == "quick"
    tab.overrides = dict(SMALL_REWARD)
    tab.run_preflight()
    wait_ready(qtbot, tab)
    assert tab.config.max_steps == 12 and tab.start_button.isEnabled()

    tab.start_button.click()
    handle = tab.handle
    assert handle is not None and handle.running and not tab.start_button.isEnabled()
    # the chart receives points while the job runs
    qtbot.waitUntil(lambda: len(tab.loss_chart.series().get("loss/train", [])) >= 2, timeout=60_000)
    assert handle.running
    tab.progress.cancel_button.click()
    wait_done(qtbot, handle)
    assert handle.state == "cancelled"
    run_id = tab.current_run
    assert proj.run(run_id).status == "cancelled"
    row = tab.run_row(run_id)
    assert row["Status"] == "cancelled" and row["Val. acc."] == ""
    done_before = int(row["Steps"].split()[0])
    assert 2 <= done_before < 12
    assert tab.selected_run() == run_id and tab.resume_button.isEnabled()
    assert "Resume" in tab.status.text()

    tab.resume_button.click()
    handle = tab.handle
    assert handle.running
    wait_done(qtbot, handle)
    assert handle.state == "finished", handle.error
    assert proj.run(run_id).status == "done"
    # the curve went on from the checkpoint rather than restarting: one point per step, 1..12
    steps = [s for s, _ in tab.loss_chart.series()["loss/train"]]
    assert steps == [float(s) for s in range(1, 13)]
    assert [s for s, _ in proj.metrics(run_id)["loss/train"]] == list(range(1, 13))
    row = tab.run_row(run_id)
    final = proj.run(run_id).summary["final/accuracy/val"]
    assert row["Status"] == "done" and row["Steps"].startswith("12")
    assert row["Val. acc."] == f"{100 * final:.1f}%"
    assert f"Run {run_id} done" in tab.status.text()
    assert not tab.resume_button.isEnabled() and tab.start_button.isEnabled()

    # scoring view: the finished run scores a prompt's candidates, off the GUI thread
    assert tab.score_run.currentData() == run_id
    qtbot.waitUntil(lambda: tab.score_prompt.count() > 0, timeout=10_000)
    pid = tab.score_prompt.itemData(0)
    h = tab.score(run_id, pid)
    wait_done(qtbot, h, 60_000)
    assert h.state == "finished", h.error
    rows = tab.last_scores["rows"]
    assert len(rows) == len(proj.responses(pid)) == tab.score_table.rowCount()
    rewards = [r for r, _, _ in rows]
    assert rewards == sorted(rewards, reverse=True)
    assert {t for _, _, t in rows} == {r.text for r in proj.responses(pid)}
    assert tab.score_table.item(0, 0).text() == f"{rewards[0]:+.3f}"
    assert tab.scorers[run_id] is not None  # the loaded model is reused by the next scoring job

    # locking clears every decrypted view
    page.set_project(None)
    assert tab.score_table.rowCount() == 0 and tab.runs.rowCount() == 0 and tab.score_text.toPlainText() == ""
    assert not tab.scorers and tab.base.combo.count() == 0
    page.set_project(proj)


def test_reward_preflight_says_rank_more(qtbot, app_context, tmp_path, tiny_model):
    proj = make_project(tmp_path / "few.rlhfproj", n_prompts=3, n_heldout=0)
    try:
        proj.set_setting("models", [tiny_model])
        page = TrainPage(app_context)
        qtbot.addWidget(page)
        page.set_project(proj)
        wait_ready(qtbot, page.reward)
        text = page.reward.preflight_label.text()
        assert "rank more" in text and "pairs" in text
        assert not page.reward.start_button.isEnabled()
        page.set_project(None)
    finally:
        app_context.runner.wait(30_000)
        proj.close()


def test_advanced_form_has_every_field_with_its_docstring(qtbot, page):
    from core.training.reward import RewardConfig

    tab = page.reward
    wait_ready(qtbot, tab)
    dialog = tab.open_advanced()
    form = dialog.form
    docs = field_docs(RewardConfig)
    shown = set(form.fields)
    assert shown == set(docs) - {"base_model", "preset"}
    lr = form.widget_for("learning_rate")
    assert docs["learning_rate"] in lr.toolTip()
    lr.setText("0.002")
    form.widget_for("max_steps").setValue(7)
    dialog.accept()
    assert tab.overrides == {"learning_rate": 0.002, "max_steps": 7}
    assert tab.advanced.text() == "Advanced… (2 changed)"
    wait_ready(qtbot, tab)
    assert tab.config.learning_rate == 0.002 and tab.config.max_steps == 7
    # switching presets keeps what was changed by hand
    tab.preset.setCurrentIndex(1)
    wait_ready(qtbot, tab)
    assert tab.config.preset == "balanced" and tab.config.max_steps == 7
    # the policy form holds the nested reward terms too
    ptab = page.policy
    wait_ready(qtbot, ptab)
    pdialog = ptab.open_advanced()
    assert "reward" in pdialog.form.groups and "rouge_weight" in pdialog.form.groups["reward"].fields
    assert "KL" in pdialog.form.widget_for("kl_coef").toolTip()
    pdialog.form.widget_for("reward.length_weight").setText("0.5")
    pdialog.accept()
    assert ptab.overrides == {"reward": {"length_weight": 0.5}}
    wait_ready(qtbot, ptab)
    assert ptab.config.reward.length_weight == 0.5


def test_policy_run_samples_cancel_resume_export(qtbot, page, tmp_path, monkeypatch):
    tab = page.policy
    proj = page.project
    page.tabs.setCurrentWidget(tab)
    wait_ready(qtbot, tab)
    # no reward run yet, no automatic term: the check says what to do
    assert not tab.preflight_ok and "needs a reward" in tab.preflight_label.text()
    tab.overrides = json.loads(json.dumps(SMALL_POLICY))
    tab.run_preflight()
    wait_ready(qtbot, tab)
    assert tab.preflight_ok, tab.preflight_label.text()
    assert "training prompts" in tab.preflight_label.text()

    # Cancel as the first samples are reported, on the worker: a 6-step run of a tiny model may otherwise
    # end before the GUI thread gets to the Cancel click (a race with the machine's speed).
    import desktop.pages.train.policy_tab as train_page

    real_job = train_page.policy_train_job

    def cancelled_after_first_samples(proj_, config, resume_run, cancel):
        job = real_job(proj_, config, resume_run, cancel)
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            if event.samples:
                cancel.cancel()  # what the Cancel button does; the job stops at its next step boundary
            yield event

    monkeypatch.setattr(train_page, "policy_train_job", cancelled_after_first_samples)
    tab.start_button.click()
    handle = tab.handle
    qtbot.waitUntil(lambda: tab.samples.rowCount() > 0, timeout=90_000)
    assert tab.reward_chart.series()["reward/mean"]
    tab.progress.cancel_button.click()
    wait_done(qtbot, handle)
    assert handle.state == "cancelled"
    run_id = tab.current_run
    assert proj.run(run_id).status == "cancelled"
    assert tab.run_row(run_id)["Status"] == "cancelled" and tab.resume_button.isEnabled()
    shown = tab.samples.item(0, tab.SAMPLE_COLUMNS.index("Response")).text()
    logged = [" ".join(r["response"].split()) for _, rows in proj.samples(run_id) for r in rows]
    assert shown in [t[:400] for t in logged]

    tab.resume_button.click()
    handle = tab.handle
    wait_done(qtbot, handle)
    assert handle.state == "finished", handle.error
    assert proj.run(run_id).status == "done"
    assert [s for s, _ in tab.reward_chart.series()["reward/mean"]] == [float(s) for s in range(1, 7)]
    assert tab.run_row(run_id)["Steps"].startswith("6")
    assert tab.export_button.isEnabled()

    # export: a plaintext warning first, then the folder, then a job
    out = tmp_path / "exported"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    box = tab.export(run_id)
    assert isinstance(box, QMessageBox) and "unencrypted" in box.text()
    assert not out.exists()  # nothing written before the confirmation
    tab.export_yes.click()
    wait_done(qtbot, tab.export_handle, 60_000)
    assert tab.export_handle.state == "finished", tab.export_handle.error
    assert (out / "config.json").is_file() and "Exported" in tab.status.text()


def test_failed_policy_run_shows_message_and_gui_stays_up(qtbot, page, tmp_path):
    from core.training.policy_config import preset

    tab = page.policy
    wait_ready(qtbot, tab)
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    cfg = preset("quick", policy_path=str(not_a_model))
    cfg.reward.model_weight, cfg.reward.length_weight = 0.0, 1.0
    handle = tab.start(cfg)
    wait_done(qtbot, handle, 30_000)
    assert handle.state == "failed"
    assert "not a Hugging Face model folder" in tab.status.text()
    run_id = tab.current_run
    assert page.project.run(run_id).status == "failed"
    assert tab.run_row(run_id)["Status"] == "failed"
    boxes = [w for w in page.findChildren(QMessageBox) if w.isVisible()]
    assert boxes and "not a Hugging Face model folder" in boxes[-1].text()
    # still usable: the pre-flight runs again and Start comes back
    tab.overrides = json.loads(json.dumps(SMALL_POLICY))
    tab.run_preflight()
    wait_ready(qtbot, tab)
    assert tab.start_button.isEnabled()


GUI_THREAD_SCRIPT = r"""
import sys, threading, time, importlib.abc
sys.path.insert(0, sys.argv[1])
heavy = ("torch", "transformers", "peft")
on_gui = []

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in heavy and threading.current_thread() is threading.main_thread():
            on_gui.append(name)
        return None

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])

def spin(ms=50):
    # a real event loop, as in the app (QTest.qWait keeps the GIL and starves the worker threads)
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()

from tests.train_gui_helpers import make_project
from desktop.context import AppContext
from desktop.pages.models import ModelsPage
from desktop.pages.train import TrainPage
proj = make_project(sys.argv[2], n_prompts=8, n_heldout=2)
proj.set_setting("models", [sys.argv[3]])
sys.meta_path.insert(0, Watch())
ctx = AppContext(settings=QSettings(sys.argv[2] + ".ini", QSettings.Format.IniFormat))
train, models = TrainPage(ctx), ModelsPage(ctx)
for page in (train, models):
    page.show()
    page.set_project(proj)
deadline = time.monotonic() + 200
while (ctx.runner.active or not models.info) and time.monotonic() < deadline:
    spin()
train.reward.open_advanced()
train.policy.open_advanced()
dialog = models.open_generate_dialog()
dialog.k.setValue(1); dialog.max_new_tokens.setValue(4)
handle = dialog.start()
while handle.running and time.monotonic() < deadline:
    spin()
assert handle.state == "finished", handle.error
assert "torch" in sys.modules and train.policy.config is not None and models.info
print("GUI-THREAD-IMPORTS:", sorted(set(on_gui)))
ctx.runner.cancel_all()
ctx.runner.wait(60000)
for page in (train, models):
    page.set_project(None)
proj.close()
"""


def test_gui_thread_never_imports_torch_or_transformers(tmp_path, tiny_model):
    """Pre-flight checks, memory estimates, config building and generation import the ML stack on the
    worker: a first import on the GUI thread would freeze the window for seconds."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", GUI_THREAD_SCRIPT, str(root), str(tmp_path / "p.rlhfproj"), tiny_model],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=root,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("GUI-THREAD-IMPORTS:")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    assert lines[0] == "GUI-THREAD-IMPORTS: []"


def test_policy_preflight_suggests_lora_or_smaller_batch_and_applies_it(qtbot, page):
    """A run far too big for this machine (huge batch of long sequences, full fine-tune): the check says
    so before anything loads, suggests LoRA and a batch that fits, and one click applies it."""
    tab = page.policy
    page.tabs.setCurrentWidget(tab)
    wait_ready(qtbot, tab)
    tab.overrides = {
        "mode": "full",
        "batch_size": 1_000_000,
        "minibatch_size": 1_000_000,
        "max_prompt_tokens": 8192,
        "max_new_tokens": 8192,
        "reward": {"model_weight": 0.0, "length_weight": 1.0},
    }
    tab.run_preflight()
    wait_ready(qtbot, tab)
    text = tab.preflight_label.text()
    assert not tab.preflight_ok and not tab.start_button.isEnabled()
    assert "Not enough memory" in text and "batch size" in text, text
    assert tab.apply_button.isVisibleTo(tab)
    suggestion = dict(tab.suggestion)
    assert suggestion["mode"] == "lora" and 1 <= suggestion["batch_size"] < 1_000_000
    tab.apply_button.click()
    wait_ready(qtbot, tab)
    assert tab.preflight_ok, tab.preflight_label.text()
    assert tab.config.mode == "lora" and tab.config.batch_size == suggestion["batch_size"]
    assert tab.start_button.isEnabled() and not tab.apply_button.isVisibleTo(tab)
    assert tab.advanced.text().startswith("Advanced… (")
