"""Reward-hacking monitors: the figures on constructed runs (metric rows written into a real encrypted
project), the warning rule firing and staying quiet, and the live figures of a real policy run."""

import math

import pytest

from core.jobs import run_job
from core.training import monitors as M
from core.training.policy_config import PolicyConfig
from core.training.policy_job import train_policy
from tests.policy_fixtures import PASS, low_id_share, make_project, one_thread, policy_gpt2  # noqa: F401

BASE = M.Baseline(length=20.0, truncated=0.1, n=32)


def _rows(n, reward=(0.0, 1.0), length=(20.0, 20.0), eos=(0.9, 0.9), kl=(0.0, 1.0)):
    """n steps whose figures move linearly from the first to the second value."""

    def at(pair, i):
        return pair[0] + (pair[1] - pair[0]) * i / max(1, n - 1)

    return [
        {
            "reward/mean": at(reward, i),
            "response/length": at(length, i),
            "response/eos_rate": at(eos, i),
            "kl/mean": at(kl, i),
        }
        for i in range(n)
    ]


def _codes(assessment):
    return [w.code for w in assessment.warnings]


def test_step_figures_and_baseline():
    figs = M.step_figures({"response/length": 15.0, "response/eos_rate": 0.75}, BASE)
    assert figs == {M.LENGTH_RATIO: 0.75, M.TRUNCATED: 0.25}
    assert M.step_figures({"response/length": 15.0}, None) == {}  # no baseline: no ratio
    b = M.Baseline.from_replies([10, 20, 30, 40], [True, True, False, True])
    assert (b.length, b.truncated, b.n) == (25.0, 0.25, 4)
    assert M.Baseline.from_dict(b.to_dict()) == b and M.Baseline.from_dict(None) is None
    assert b.metrics() == {M.BASE_LENGTH: 25.0, M.BASE_TRUNCATED: 0.25}


def test_agreement_counts_ties_as_half_and_skips_non_finite():
    a = M.agreement([0.5, -0.2, 0.0, 1.0, float("nan")])
    assert (a.agreed, a.pairs, a.rate) == (2.5, 4, 0.625)
    assert a.metrics() == {M.AGREEMENT: 0.625, M.AGREEMENT_PAIRS: 4.0}
    assert M.agreement([]).rate is None and M.agreement([]).metrics() == {}


def test_figures_on_a_constructed_run():
    rows = _rows(10, reward=(0.0, 0.9), length=(20.0, 2.0), eos=(0.9, 0.4), kl=(0.0, 4.5))
    for r in rows:
        r.update(M.step_figures(r, BASE))
    a = M.assess(rows, BASE)
    f = a.figures
    # by hand: reward 0, 0.1, ..., 0.9; the first five average 0.2, the last five 0.7
    assert f["reward_early"] == pytest.approx(0.2) and f["reward_late"] == pytest.approx(0.7)
    # length 20, 18, ..., 2: the last five are 10, 8, 6, 4, 2 -> mean 6 -> 6 / 20 of the base
    assert f["length_ratio"] == pytest.approx(0.3)
    # eos 0.9 ... 0.4 in steps of 1/18: the last five eos rates average 0.5111 -> 0.4889 truncated
    assert f["truncated"] == pytest.approx(1 - (0.9 - 5 * 7 / 90), abs=1e-9)
    assert f["base_truncated"] == 0.1 and f["kl"] == pytest.approx(3.5)
    assert _codes(a) == ["length_collapse", "truncation"]
    w = a.warnings[0]
    assert "30% of the base model's length (20 tokens)" in w.title and "+0.20 to +0.70" in w.title
    assert "Check with the expert" in w.advice and "kl_coef" in w.advice


def test_length_collapse_needs_a_climbing_reward():
    assert _codes(M.assess(_rows(10, reward=(0.5, 0.5), length=(20.0, 2.0)), BASE)) == []
    assert _codes(M.assess(_rows(10, reward=(1.0, 0.0), length=(20.0, 2.0)), BASE)) == []
    assert _codes(M.assess(_rows(10, reward=(0.0, 1.0), length=(20.0, 2.0)), BASE)) == ["length_collapse"]


def test_quiet_on_a_healthy_run_and_on_too_few_steps():
    healthy = _rows(20, reward=(0.0, 1.5), length=(20.0, 17.0), eos=(0.9, 0.85), kl=(0.0, 3.0))
    assert _codes(M.assess(healthy, BASE, kl_target=6.0)) == []
    early = _rows(M.MIN_STEPS - 1, reward=(0.0, 1.0), length=(20.0, 2.0), eos=(0.9, 0.1))
    assert _codes(M.assess(early, BASE)) == []


def test_explosion_truncation_and_kl():
    longer = _rows(10, reward=(0.0, 1.0), length=(20.0, 80.0))
    assert _codes(M.assess(longer, BASE)) == ["length_explosion"]
    assert "grew to" in M.assess(longer, BASE).warnings[0].title
    cut = _rows(10, reward=(0.0, 1.0), eos=(0.9, 0.2))
    a = M.assess(cut, BASE)
    assert _codes(a) == ["truncation"] and "the base: 10%" in a.warnings[0].title
    assert "max_new_tokens" in a.warnings[0].advice
    drift = _rows(10, reward=(0.0, 0.0), kl=(0.0, 40.0))
    assert _codes(M.assess(drift, BASE, kl_target=6.0)) == ["kl"]
    assert _codes(M.assess(drift, BASE)) == []  # no target (fixed beta): KL is shown, not judged
    assert M.kl_target_of({"adaptive_kl": True, "kl_target": 6.0}) == 6.0
    assert M.kl_target_of({"adaptive_kl": False, "kl_target": 6.0}) is None


def test_agreement_warning():
    rows = _rows(10, reward=(0.0, 1.0))
    low = M.agreement([1, -1, -1, -1, 1, -1, -1, 1])  # 3 of 8
    a = M.assess(rows, BASE, agreement_result=low)
    assert _codes(a) == ["agreement"] and a.figures["agreement"] == 0.375
    assert "only 38% of the 8 fresh pairs" in a.warnings[0].title and "Retrain" in a.warnings[0].advice
    few = M.agreement([-1, -1, -1])  # too few pairs to judge
    assert _codes(M.assess(rows, BASE, agreement_result=few)) == []
    good = M.agreement([1] * 7 + [-1])  # 7 of 8
    assert _codes(M.assess(rows, BASE, agreement_result=good)) == []
    fair = M.agreement([1] * 13 + [-1] * 7)  # 65%: above 60%, but far below the held-out 92%
    assert _codes(M.assess(rows, BASE, agreement_result=fair, reference_accuracy=0.92)) == ["agreement"]
    assert _codes(M.assess(rows, BASE, agreement_result=fair, reference_accuracy=0.8)) == []


def test_watch_reports_each_warning_once():
    watch = M.Watch()
    assert watch.add(0, BASE.metrics()) == [] and watch.baseline.length == 20.0
    started = []
    for i, row in enumerate(_rows(10, reward=(0.0, 1.0), length=(20.0, 2.0)), start=1):
        row.update(M.step_figures(row, watch.baseline))
        started.append([w.code for w in watch.add(i, row)])
    assert sum(started, []) == ["length_collapse"]  # once, at the step the rule first held
    assert [w.code for w in watch.warnings] == ["length_collapse"]
    assert watch.summary_line().startswith("monitors: length 0.30× of the base's 20.0 tokens, cut off 10%")
    fresh = watch.set_agreement(M.agreement([-1] * 6))
    assert [w.code for w in fresh] == ["agreement"]
    watch.add(10, {"reward/mean": 1.0})  # the same step again (a resumed run) replaces, never duplicates
    assert len(watch.rows) == 10


def test_constructed_run_in_a_real_project(tmp_path):
    """Metric rows written into an encrypted project read back through `watch_run` (what the GUI shows for
    a past run): the figures match and the warning fires; on the healthy run it does not."""
    with make_project(tmp_path / "m.rlhfproj") as proj:
        ids = {}
        for name, rows in (
            ("hacked", _rows(12, reward=(-0.5, 1.0), length=(20.0, 4.0))),
            ("healthy", _rows(12, reward=(-0.5, 1.0), length=(20.0, 19.0))),
        ):
            run = proj.create_run("policy", {"policy": {"algo": "ppo", "kl_target": 6.0, "adaptive_kl": True}})
            proj.update_run(run, summary={"monitor_baseline": BASE.to_dict()})
            proj.log_metrics(run, 0, BASE.metrics())
            for step, row in enumerate(rows, start=1):
                proj.log_metrics(run, step, {**row, **M.step_figures(row, BASE)})
            ids[name] = run
        hacked = M.watch_run(proj, ids["hacked"])
        assert [w.code for w in hacked.warnings] == ["length_collapse"]
        # the last five lengths: 4 + (16/11)*k for k = 0..4 -> mean 4 + 32/11; over 20
        assert hacked.figures["length_ratio"] == pytest.approx((4 + 32 / 11) / 20)
        assert [w.code for w in M.watch_run(proj, ids["healthy"]).warnings] == []


def test_live_monitors_of_a_real_policy_run(tmp_path, policy_gpt2, one_thread):
    cfg = PolicyConfig(
        algo="rloo",
        policy_path=policy_gpt2,
        mode="lora",
        lora_r=4,
        lora_alpha=8,
        total_steps=3,
        batch_size=4,
        rloo_k=2,
        minibatch_size=4,
        ppo_epochs=1,
        max_new_tokens=6,
        temperature=1.0,
        learning_rate=1e-3,
        log_samples_every=0,
        checkpoint_every=0,
        device="cpu",
        dtype="float32",
    )
    with make_project(tmp_path / "p.rlhfproj") as proj:
        events = []
        result = run_job(train_policy(proj, cfg, reward_fn=low_id_share), on_progress=events.append)
        run = proj.run(result.run_id)
        base = M.Baseline.from_dict(run.summary["monitor_baseline"])
        assert base.n == 16 and 1 <= base.length <= 6 and 0 <= base.truncated <= 1
        assert [e for e in events if M.BASE_LENGTH in e.metrics][0].metrics == base.metrics()
        metrics = proj.metrics(result.run_id)
        assert metrics[M.BASE_LENGTH] == [(0, base.length)]
        for (s, ratio), (s2, length), (_, trunc), (_, eos) in zip(
            metrics[M.LENGTH_RATIO], metrics["response/length"], metrics[M.TRUNCATED], metrics["response/eos_rate"]
        ):
            assert s == s2 and ratio == pytest.approx(length / base.length) and trunc == pytest.approx(1 - eos)
        assert [s for s, _ in metrics[M.LENGTH_RATIO]] == [1, 2, 3]
        assert run.summary["monitors"]["warnings"] == [] and math.isfinite(run.summary["monitors"]["length_ratio"])

        # the baseline is the base model's: measured again on a fresh copy it is the same
        from core.training.policy_job import build_policy

        policy, tok = build_policy(cfg)
        prompts = [p.prompt for p in proj.prompts(split="train")]
        chosen = M.baseline_prompts(len(prompts), cfg.seed)
        assert (
            M.measure_baseline(policy, tok, [prompts[i] for i in chosen], cfg, batch_size=cfg.forward_batch_size)
            == base
        )


def test_cli_prints_the_monitors(tmp_path, policy_gpt2, monkeypatch, capsys, one_thread):
    import core.cli

    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    folder = tmp_path / "c.rlhfproj"
    make_project(folder, n_prompts=4).close()
    rc = core.cli.main(
        [
            "train-policy",
            str(folder),
            "--algo",
            "rloo",
            "--policy",
            policy_gpt2,
            "--preset",
            "quick",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "-k",
            "2",
            "--max-new-tokens",
            "5",
            "--length-target",
            "3",
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "monitors: length " in captured.out and "× of the base's" in captured.out
    assert "no reward-hacking warning" in captured.out and "expert-check" in captured.out


def test_cli_warns_once_when_the_rule_fires(tmp_path):
    """The CLI's printer over the events of a (constructed) hacked run in a real project."""
    from core.cli.policy_cmds import MonitorPrinter
    from core.jobs import Progress

    with make_project(tmp_path / "w.rlhfproj") as proj:
        run = proj.create_run("policy", {"policy": {"algo": "ppo", "kl_target": 6.0}})
        printer = MonitorPrinter(proj)
        lines = printer(Progress(0, 10, metrics={"run/id": float(run)})) + printer(
            Progress(0, 10, metrics=BASE.metrics())
        )
        for step, row in enumerate(_rows(10, reward=(0.0, 1.0), length=(20.0, 2.0)), start=1):
            lines += printer(Progress(step, 10, metrics={**row, **M.step_figures(row, BASE)}))
        assert len(lines) == 1 and lines[0].startswith("warning at step ") and "Length collapse" in lines[0]
        final = printer.final_lines()
        assert final[0].startswith("monitors: length 0.30×") and final[1].startswith("warning: Length collapse")
