"""The "barely changed" message: when the tuned model gives the base's reply on most held-out prompts
(greedy), the report, the CLI's `evaluate`/`report` and the Evaluate page say so plainly, with what to
try; not when the run moved the model. On a real encrypted project with real policy runs."""

import json

import pytest
import torch

import core.cli
from core.evaluation.blind import prepare_blind_eval
from core.evaluation.change import BARELY_CHANGED_SHARE, barely_changed_message, identical_share
from core.evaluation.report import build_report, notices
from core.jobs import run_job
from tests.eval_fixtures import PASS, eval_base, expert_score, make_eval_project  # noqa: F401 (fixture)


def _section(items, identical, temperature=0.0):
    return {"items": items, "outcomes": {"identical": identical}, "decoding": {"temperature": temperature}}


def test_message_on_constructed_sections():
    text = barely_changed_message(_section(48, 37))
    assert text.startswith("This run barely changed the model")
    assert "37 of 48" in text and "77%" in text and "greedy" in text
    for advice in ("rank more prompts", "Thorough preset", "learning rate", "KL target"):
        assert advice in text
    assert barely_changed_message(_section(48, 24)) is not None  # exactly half counts
    assert barely_changed_message(_section(48, 23)) is None
    assert barely_changed_message(_section(0, 0)) is None and barely_changed_message(None) is None
    assert "temperature 1.0" in barely_changed_message(_section(10, 9, temperature=1.0))
    assert identical_share([{"identical": True}, {}, {}, {"identical": True}]) == 0.5
    assert identical_share([]) is None and BARELY_CHANGED_SHARE == 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory, eval_base):
    """A project with a policy run that moves the model and one that cannot (learning rate 0)."""
    from core.training.policy_config import PolicyConfig
    from core.training.policy_job import train_policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("bc") / "b.rlhfproj"
    proj, moved, _ = make_eval_project(folder, eval_base, reward=False)
    still_cfg = PolicyConfig(
        algo="ppo",
        policy_path=eval_base,
        mode="full",
        total_steps=1,
        batch_size=4,
        minibatch_size=4,
        ppo_epochs=1,
        max_new_tokens=10,
        temperature=1.0,
        learning_rate=0.0,
        device="cpu",
        dtype="float32",
        log_samples_every=0,
        checkpoint_every=0,
    )
    rule = lambda batch: [float(expert_score(t)) for t in batch.responses]  # noqa: E731
    still = run_job(train_policy(proj, still_cfg, reward_fn=rule)).run_id
    evals = {
        name: run_job(prepare_blind_eval(proj, run, seed=3)).eval_run  # greedy: the default
        for name, run in (("moved", moved), ("still", still))
    }
    yield proj, folder, {"moved": moved, "still": still}, evals
    proj.close()
    torch.set_num_threads(threads)


def test_report_says_barely_changed_when_tuned_equals_base(runs):
    proj, _, _, evals = runs
    report = run_job(build_report(proj, evals["still"]))
    ev = report["eval"]
    assert ev["identical_share"] == 1.0 and ev["outcomes"]["identical"] == ev["items"]
    assert notices(report) == [ev["barely_changed"]]
    assert f"{ev['items']} of {ev['items']} held-out prompts" in ev["barely_changed"]


def test_no_message_when_the_run_moved_the_model(runs):
    proj, _, _, evals = runs
    report = run_job(build_report(proj, evals["moved"]))
    ev = report["eval"]
    assert ev["identical_share"] < BARELY_CHANGED_SHARE  # the fixture's run changes most greedy replies
    assert ev["barely_changed"] is None and notices(report) == []


def test_evaluate_page_shows_the_message(qtbot, runs):
    from gui_helpers import wait_job  # noqa: F401  (sets QT_QPA_PLATFORM)
    from desktop.pages.evaluate import EvaluatePage

    proj, _, policy_runs, evals = runs
    page = EvaluatePage()
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    page.set_project(proj)
    page.wait_idle()
    try:
        for name, expected in (("still", True), ("moved", False)):
            page.policy_combo.setCurrentIndex(page.policy_combo.findData(policy_runs[name]))
            page.wait_idle()
            page.eval_combo.setCurrentIndex(page.eval_combo.findData(evals[name]))
            page.wait_idle()
            handle = page.refresh_report()
            if handle is not None:
                wait_job(qtbot, handle, timeout=60_000)
            page.wait_idle()
            assert page.report["eval"]["run"] == evals[name]
            assert ("barely changed the model" in page.summary.text()) is expected, name
    finally:
        page.wait_idle()
        page.set_project(None)


def test_cli_report_prints_the_message(runs, tmp_path, monkeypatch, capsys):
    proj, folder, policy_runs, evals = runs
    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    proj.close()  # the CLI opens the project itself (one writer at a time); this test runs last
    assert core.cli.main(["report", str(folder), str(evals["still"]), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "This run barely changed the model" in out
    data = json.loads((tmp_path / "a" / f"eval-run-{evals['still']}.json").read_text())
    assert data["eval"]["barely_changed"] in out
    assert core.cli.main(["report", str(folder), str(evals["moved"]), "--out", str(tmp_path / "b")]) == 0
    assert "barely changed" not in capsys.readouterr().out
    assert core.cli.main(["evaluate", str(folder), str(policy_runs["still"]), "--seed", "1", "--max-prompts", "4"]) == 0
    assert (
        "This run barely changed the model: the tuned model gave the same reply as the base on 4 of 4"
        in capsys.readouterr().out
    )
