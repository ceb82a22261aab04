"""Learning curve for the expert: re-fits of the reward model on nested subsets of a tiny real project's
ranked prompts (the reward trainer itself), held-out accuracy per point, cancel, the advice arithmetic,
and the CLI."""

import random

import pytest
import torch

import core.cli
from core.errors import UserError
from core.jobs import CancelToken, Cancelled, run_job
from core.training.learning_curve import (
    CURVE_KIND,
    CurvePoint,
    advise,
    latest_curve,
    learning_curve,
    slope_per_doubling,
    subset_sizes,
)
from tests.eval_fixtures import PASS, WORDS, eval_base, rank_by_rule  # noqa: F401 (fixture)

FAST = {"max_steps": 6, "eval_every": 3}


def make_ranked_project(folder, n_train=24, n_heldout=8):
    from core.project import Project

    rng = random.Random(1)
    proj = Project.create(folder, PASS)
    with proj.transaction():
        for i in range(n_train + n_heldout):
            pid = proj.add_prompt(f"Case {i}: {rng.choice(WORDS)}?", split="train" if i < n_train else "heldout")
            for _ in range(3):
                proj.add_response(pid, " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))))
    for pid in proj.prompt_ids():
        rank_by_rule(proj, pid)
    return proj


@pytest.fixture
def threads1():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pt(n, acc):
    return CurvePoint(prompts=n, pairs=3 * n, accuracy=acc, eval_pairs=100, steps=10)


def test_advice_arithmetic():
    rising = [_pt(10, 0.70), _pt(20, 0.76), _pt(40, 0.82)]
    assert slope_per_doubling(rising) == pytest.approx(0.06)
    slope, more, text = advise(rising)
    # (0.90 - 0.82) / 0.06 = 1.33 doublings: 40 * 2^1.33 = 100.8 in all, 60.8 more -> rounded up to 65, 110
    assert more == 65 and "about 65 more ranked prompts (roughly 110 in all)" in text
    # 100 held-out pairs at 82%: 1.96 * sqrt(0.82 * 0.18 / 100) = 7.5 points of noise, said in the advice
    assert "differences under about 8 points are within noise" in text
    steady = [CurvePoint(p.prompts, p.pairs, p.accuracy, 2000, p.steps) for p in rising]
    assert "noise" not in advise(steady)[2]
    flat = [_pt(10, 0.80), _pt(20, 0.805), _pt(40, 0.81)]
    slope, more, text = advise(flat)
    assert more is None and "levelled off at 81%" in text and "consistent" in text
    done = [_pt(50, 0.88), _pt(100, 0.91), _pt(200, 0.915)]
    assert advise(done)[1] == 0 and "already agrees with you on 92%" in advise(done)[2]
    slow = [_pt(10, 0.60), _pt(20, 0.62), _pt(40, 0.64)]
    assert advise(slow)[1] is None and "more than 320 in all" in advise(slow)[2]
    assert advise([])[1] is None and advise([_pt(10, 0.7)])[0] is None
    assert subset_sizes(24) == [6, 12, 18, 24] and subset_sizes(6) == [4, 6]


def test_curve_on_a_tiny_real_project(tmp_path, eval_base, threads1):
    with make_ranked_project(tmp_path / "c.rlhfproj") as proj:
        heldout_pairs = len(proj.preference_pairs(split="heldout"))
        ranked = len({p.prompt_id for p in proj.preference_pairs(split="train")})  # a prompt can tie: no pair
        ranked_heldout = len({p.prompt_id for p in proj.preference_pairs(split="heldout")})
        assert ranked >= 20
        events = []
        curve = run_job(learning_curve(proj, eval_base, seed=0, device="cpu", **FAST), on_progress=events.append)
        sizes = [round(f * ranked) for f in (0.25, 0.5, 0.75, 1.0)]
        assert [p.prompts for p in curve.points] == sizes  # nested shares of the ranked prompts
        assert all(0.0 <= p.accuracy <= 1.0 and p.eval_pairs == heldout_pairs for p in curve.points)
        assert curve.eval_source == "heldout" and curve.eval_prompts == ranked_heldout
        assert curve.ranked_prompts == ranked
        assert [p.pairs for p in curve.points] == sorted(p.pairs for p in curve.points)
        assert curve.advice and curve.slope == pytest.approx(slope_per_doubling(curve.points))
        steps = [e.step for e in events]
        assert steps == sorted(steps) and events[-1].step == events[-1].total  # progress, to the end
        points = [e.metrics for e in events if "curve/accuracy" in e.metrics]
        assert [m["curve/prompts"] for m in points] == sizes
        kept = latest_curve(proj)
        assert kept.run_id == curve.run_id and kept.points == curve.points and kept.advice == curve.advice
        assert proj.run(curve.run_id).kind == CURVE_KIND


def test_cancel_stores_nothing_and_too_few_rankings_refuse(tmp_path, eval_base, threads1):
    with make_ranked_project(tmp_path / "x.rlhfproj") as proj:
        token = CancelToken()
        job = learning_curve(proj, eval_base, device="cpu", cancel=token, **FAST)
        with pytest.raises(Cancelled):
            for event in job:
                if event.step >= 3:
                    token.cancel()
        assert proj.runs(kind=CURVE_KIND) == []
    with make_ranked_project(tmp_path / "y.rlhfproj", n_train=3, n_heldout=2) as proj:
        with pytest.raises(UserError, match="needs more rankings"):
            run_job(learning_curve(proj, eval_base, device="cpu"))


def test_cli(tmp_path, eval_base, monkeypatch, capsys, threads1):
    folder = tmp_path / "cli.rlhfproj"
    make_ranked_project(folder).close()
    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    assert (
        core.cli.main(["learning-curve", str(folder), "--base", eval_base, "--max-steps", "4", "--device", "cpu"]) == 0
    )
    out = capsys.readouterr().out
    assert "held-out pairwise accuracy (" in out and "held-out prompts" in out
    points = [line for line in out.splitlines() if line.strip()[:1].isdigit() and "ranked prompts (" in line]
    assert len(points) == 4 and "%" in out  # one line per point (the advice may say "ranked prompts (" too)
