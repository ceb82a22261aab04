"""Evaluation: Wilson intervals by hand, outcome counting, calibration, cycles; end to end on a real
encrypted project (a simulated expert judges the blind set; the report matches a direct count);
blindness (origin hidden, order randomised, sides balanced); cancel; the CLI."""

import json
import random

import pytest
import torch

import core.cli
from core.errors import UserError
from core.evaluation import stats
from core.evaluation.blind import (
    EvalSettings,
    balanced_sides,
    evaluation_items,
    evaluation_queue,
    prepare_blind_eval,
    record_evaluation,
)
from core.evaluation.report import build_report, export_report
from core.jobs import CancelToken, Cancelled, Progress, run_job
from tests.eval_fixtures import (  # noqa: F401 (fixture)
    N_HELDOUT,
    PASS,
    eval_base,
    expert_choice,
    expert_flags,
    make_eval_project,
)

SAMPLED = EvalSettings(temperature=1.0, max_new_tokens=10, sampling_seed=3)

# ---- statistics, against values computed by hand ------------------------------------------------------


@pytest.mark.parametrize(
    "successes, n, low, high",
    [
        # p̂ = 8/10, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71675, half 0.22658
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),  # upper = z²/n / (1 + z²/n) = 0.38416 / 1.38416
        (5, 10, 0.2366, 0.7634),
        (50, 100, 0.4038, 0.5962),
        (10, 10, 0.7225, 1.0),
        (7.5, 10, 0.4422, 0.9191),  # ties as half wins: fractional successes
    ],
)
def test_wilson_interval_hand_computed(successes, n, low, high):
    lo, hi = stats.wilson_interval(successes, n, z=1.96)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_edges_and_default_z():
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = stats.wilson_interval(8, 10)  # Z95 = 1.95996...: a hair narrower than with 1.96
    lo196, hi196 = stats.wilson_interval(8, 10, z=1.96)
    assert lo196 < lo < lo196 + 1e-4 and hi196 - 1e-4 < hi < hi196
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_outcomes_and_win_rate_with_ties_as_half():
    assert stats.outcome("a", "a") == "win" and stats.outcome("a", "b") == "loss"
    assert stats.outcome("b", "b") == "win" and stats.outcome("tie", "a") == "tie"
    assert stats.outcome("both_bad", "b") == "both_bad"
    c = stats.count_outcomes(["win"] * 6 + ["loss"] * 2 + ["tie", "both_bad", "identical"])
    assert (c.win, c.loss, c.ties, c.n) == (6, 2, 3, 11)
    r = c.win_rate()
    assert r.successes == 7.5 and r.rate == pytest.approx(7.5 / 11)
    assert (r.low, r.high) == stats.wilson_interval(7.5, 11)
    ex = c.win_rate_excluding_ties()
    assert (ex.successes, ex.n, ex.rate) == (6, 8, 0.75)


def test_flag_rates_and_distribution():
    rates = stats.flag_rates([("harmful",), (), ("harmful", "toxic"), ()], known=["off-topic"])
    assert rates["harmful"].successes == 2 and rates["harmful"].n == 4 and rates["harmful"].rate == 0.5
    assert rates["toxic"].rate == 0.25 and rates["off-topic"].rate == 0.0
    d = stats.distribution([1.0, 2.0, 3.0, 4.0])
    assert d["mean"] == 2.5 and d["median"] == 2.5 and d["q1"] == 1.75 and d["std"] == pytest.approx(1.118034)


def test_calibration_bins_equal_counts_by_margin():
    # margins 0.1..1.0; the model is wrong on the three smallest margins, right elsewhere, one exact tie
    diffs = [-0.1, -0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.0, 1.1]
    bins = stats.calibration_bins(diffs, n_bins=3)
    assert [b.n for b in bins] == [4, 4, 4]
    # sorted |margin|: [0.0(½), 0.1(0), 0.2(0), 0.3(0)] [0.4 .. 0.7] [0.8 .. 1.1]
    assert [b.accuracy for b in bins] == [0.125, 1.0, 1.0]
    assert bins[0].low == 0.0 and bins[0].high == pytest.approx(0.3) and bins[2].high == pytest.approx(1.1)
    assert stats.pairwise_accuracy(diffs).successes == 8.5
    assert stats.calibration_bins([], 5) == []


def test_cycles_found_and_consistent_preferences_have_none():
    assert stats.find_cycles([(1, 2), (2, 3), (1, 3)]) == []  # a ranking: transitive
    cyc = stats.find_cycles([(1, 2), (2, 3), (3, 1), (3, 4)])
    assert len(cyc) == 1 and sorted(cyc[0]) == [1, 2, 3]
    assert sorted(stats.find_cycles([(5, 6), (6, 5)])[0]) == [5, 6]  # a direct contradiction
    # two separate cyclic components; the shortest cycle is reported for each
    two = stats.find_cycles([(1, 2), (2, 3), (3, 4), (4, 1), (2, 4), (10, 11), (11, 10)])
    assert sorted(len(c) for c in two) == [2, 3]
    by_prompt = stats.cycles_by_prompt([(7, 1, 2), (7, 2, 3), (7, 3, 1), (8, 1, 2), (8, 2, 3)])
    assert list(by_prompt) == [7]


def test_self_consistency_summary():
    s = stats.self_consistency([True, True, False, True], [1.0, 0.5, None, None])
    assert s["checks"] == 4 and s["agreement"] == 0.75 and s["mean_tau"] == 0.75
    assert (s["low"], s["high"]) == stats.wilson_interval(3, 4)


@pytest.mark.parametrize("n", range(1, 12))
def test_sides_are_balanced(n):
    for seed in range(5):
        sides = balanced_sides(n, random.Random(seed))
        assert len(sides) == n and sides.count("a") in (n // 2, n - n // 2)


# ---- end to end on a real project ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, eval_base):
    torch.set_num_threads(1)
    proj, policy_run, reward_run = make_eval_project(tmp_path_factory.mktemp("ev") / "e.rlhfproj", eval_base)
    pairs_before = len(proj.preference_pairs())
    result = run_job(prepare_blind_eval(proj, policy_run, seed=11, settings=SAMPLED))
    yield proj, policy_run, reward_run, result, pairs_before
    proj.close()


def test_blind_set_stored_with_hidden_origin_random_order_balanced_sides(evaluated):
    proj, policy_run, _, result, _ = evaluated
    run = proj.run(result.eval_run)
    assert run.kind == "eval" and run.status == "done" and run.parent == policy_run
    items = run.config["items"]
    heldout = [p.id for p in proj.prompts(split="heldout")]
    assert sorted(it["prompt"] for it in items) == sorted(heldout) and len(items) == N_HELDOUT
    assert [it["prompt"] for it in items] != heldout  # order randomised (fixed by the seed)
    assert [it["tuned"] for it in items].count("a") == N_HELDOUT // 2  # sides balanced
    assert run.config["settings"]["temperature"] == 1.0 and run.config["seed"] == 11
    assert result.items + result.identical == N_HELDOUT and result.items >= N_HELDOUT // 2
    for it in items:  # the truth is in the encrypted origin and config, never in what is judged
        tuned_rid = it["a"] if it["tuned"] == "a" else it["b"]
        base_rid = it["b"] if it["tuned"] == "a" else it["a"]
        if not it.get("identical"):
            assert proj.response(tuned_rid).origin["side"] == "tuned"
            assert proj.response(base_rid).origin == {
                "kind": "eval",
                "run": policy_run,
                "side": "base",
                "eval_run": result.eval_run,
            }
    queue = evaluation_queue(proj, result.eval_run)
    assert [q.index for q in queue] == [i for i, it in enumerate(items) if not it.get("identical")]
    assert all(not hasattr(q, "tuned") and set(vars(q)) == {"index", "prompt_id", "a", "b"} for q in queue)
    # the raw database never holds the side in plaintext
    for name in ("project.db", "project.db-wal"):
        path = proj.path / name
        raw = path.read_bytes() if path.exists() else b""
        assert b"tuned" not in raw and b'"side"' not in raw


def test_seed_changes_order_and_sides(evaluated):
    proj, policy_run, _, result, _ = evaluated
    first = proj.run(result.eval_run).config["items"]
    again = run_job(prepare_blind_eval(proj, policy_run, seed=12, settings=SAMPLED))
    second = proj.run(again.eval_run).config["items"]
    # same responses (same decoding settings and sampling seed), new order and sides
    assert {(i["prompt"], frozenset((i["a"], i["b"]))) for i in first} == {
        (i["prompt"], frozenset((i["a"], i["b"]))) for i in second
    }
    assert [i["prompt"] for i in first] != [i["prompt"] for i in second] or [i["tuned"] for i in first] != [
        i["tuned"] for i in second
    ]


def test_simulated_expert_judges_and_report_matches_direct_count(evaluated):
    from core.training.reward import load_reward_model

    proj, policy_run, reward_run, result, pairs_before = evaluated
    tags = proj.tags()
    items = proj.run(result.eval_run).config["items"]
    expected = {"win": 0, "loss": 0, "tie": 0, "both_bad": 0, "identical": 0}
    flagged = 0
    queue = evaluation_queue(proj, result.eval_run)
    half = len(queue) // 2
    for n, item in enumerate(queue):
        if n == half:  # the queue resumes where the expert stopped
            assert [q.index for q in evaluation_queue(proj, result.eval_run)] == [q.index for q in queue[half:]]
        ta, tb = proj.response(item.a).text, proj.response(item.b).text
        choice, flags = expert_choice(ta, tb), expert_flags(ta, tb, tags)
        record_evaluation(proj, item, choice, flags=flags, seconds=1.0)
        tuned_side = items[item.index]["tuned"]
        expected[choice if choice in ("tie", "both_bad") else ("win" if choice == tuned_side else "loss")] += 1
        flagged += bool(flags)
    expected["identical"] = sum(1 for it in items if it.get("identical"))
    assert evaluation_queue(proj, result.eval_run) == []
    assert len(proj.preference_pairs()) == pairs_before  # evaluation judgments never become training pairs

    events = []
    report = run_job(build_report(proj, result.eval_run), on_progress=events.append)
    assert events and all(isinstance(e, Progress) and e.total for e in events)  # drivable by the GUI worker
    ev = report["eval"]
    assert ev["outcomes"] == expected and ev["judged"] == len(queue) and ev["pending"] == 0
    n = sum(expected.values())
    wins = expected["win"] + 0.5 * (expected["tie"] + expected["both_bad"] + expected["identical"])
    assert ev["win_rate"]["rate"] == pytest.approx(wins / n)
    assert (ev["win_rate"]["low"], ev["win_rate"]["high"]) == pytest.approx(stats.wilson_interval(wins, n))
    assert ev["win_rate_excluding_ties"]["n"] == expected["win"] + expected["loss"]
    assert ev["flags"][tags[0]]["successes"] == flagged and ev["flags"][tags[0]]["n"] == len(queue)
    assert ev["tuned_as_a"] == N_HELDOUT // 2

    # reward-model scores of both models, against scoring the responses directly
    rm = load_reward_model(proj, reward_run, device="cpu")
    tuned_ids = [it["a"] if it["tuned"] == "a" else it["b"] for it in items]
    base_ids = [it["b"] if it["tuned"] == "a" else it["a"] for it in items]
    score = lambda rid: rm.score([(proj.prompt(proj.response(rid).prompt_id).prompt, proj.response(rid).text)])[0]  # noqa: E731
    tuned_scores, base_scores = [score(r) for r in tuned_ids], [score(r) for r in base_ids]
    rw = report["reward"]
    assert rw["run"] == reward_run
    assert rw["tuned_values"] == pytest.approx(tuned_scores, abs=1e-4)
    assert rw["base"]["mean"] == pytest.approx(sum(base_scores) / len(base_scores), abs=1e-4)

    # the reward model against the expert's held-out pairs
    heldout = proj.preference_pairs(split="heldout")
    direct = sum(stats.pair_correct(score(p.chosen_id), score(p.rejected_id)) for p in heldout)
    rmr = report["reward_model"]
    assert rmr["heldout_pairs"] == len(heldout) > 0
    assert rmr["accuracy"]["successes"] == pytest.approx(direct)
    assert sum(b["n"] for b in rmr["calibration"]) == len(heldout)
    assert sum(b["accuracy"] * b["n"] for b in rmr["calibration"]) == pytest.approx(direct)


def test_expert_consistency_and_cycles_in_report(evaluated):
    proj, *_ = evaluated
    train = proj.prompts(split="train")
    # three blind re-checks: two repeat the original ranking, one reverses it
    agreed = 0
    for p in train[:3]:
        original = proj.judgments(prompt_id=p.id, kind="ranking")[-1]
        tiers = original.tiers if p is not train[2] else original.tiers[::-1]
        proj.record_ranking(p.id, tiers=tiers, purpose="consistency")
        agreed += set(tiers[0]) == set(original.tiers[0])
    # a pairwise judgment that contradicts the ranking of one prompt: a cycle (a direct contradiction)
    p = train[5]
    tiers = proj.judgments(prompt_id=p.id, kind="ranking")[-1].tiers
    best, worst = tiers[0][0], tiers[-1][0]
    contradiction = proj.record_pairwise(p.id, a=best, b=worst, result="b")
    report = run_job(build_report(proj, None))
    cons = report["expert"]["consistency"]
    assert cons["checks"] == 3 and cons["agreement"] == pytest.approx(agreed / 3)
    cyc = report["expert"]["cycles"]
    assert cyc["prompts_with_cycles"] == 1 and cyc["cycles"][0]["prompt"] == p.id
    assert set(cyc["cycles"][0]["responses"]) >= {best, worst}
    assert report["eval"] is None and report["reward_model"] is not None
    proj.undo_judgment(contradiction)
    assert run_job(build_report(proj, None))["expert"]["cycles"]["prompts_with_cycles"] == 0


def test_cancel_leaves_project_unchanged(evaluated):
    proj, policy_run, *_ = evaluated
    before = (len(proj.runs()), sum(len(proj.responses(p)) for p in proj.prompt_ids()))
    token = CancelToken()

    def stop(event):
        if event.step >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(
            prepare_blind_eval(proj, policy_run, cancel=token, seed=1, settings={"batch_size": 4}), on_progress=stop
        )
    assert (len(proj.runs()), sum(len(proj.responses(p)) for p in proj.prompt_ids())) == before


def test_user_errors(evaluated, tmp_path):
    proj, policy_run, reward_run, result, _ = evaluated
    with pytest.raises(UserError, match="policy run"):
        run_job(prepare_blind_eval(proj, reward_run))
    with pytest.raises(UserError, match="not a prepared evaluation"):
        evaluation_queue(proj, policy_run)
    with pytest.raises(UserError):
        run_job(export_report(proj, 999, tmp_path))


def test_cli_evaluate_and_report(tmp_path, eval_base, monkeypatch, capsys):
    torch.set_num_threads(1)
    folder = tmp_path / "c.rlhfproj"
    proj, policy_run, _ = make_eval_project(folder, eval_base, reward=False)
    proj.close()
    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    assert (
        core.cli.main(
            [
                "evaluate",
                str(folder),
                str(policy_run),
                "--seed",
                "5",
                "--temperature",
                "1",
                "--max-prompts",
                "6",
                "--max-new-tokens",
                "8",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "blind pairs ready" in out
    from core.project import Project

    with Project.open(folder, PASS) as proj:
        eval_run = [r.id for r in proj.runs(kind="eval")][-1]
        queue = evaluation_queue(proj, eval_run)
        assert len(evaluation_items(proj, eval_run)) == len(queue) and len(proj.run(eval_run).config["items"]) == 6
        for item in queue[:4]:
            record_evaluation(proj, item, "a")
        expected = run_job(build_report(proj, eval_run))["eval"]["outcomes"]
    assert core.cli.main(["report", str(folder), str(policy_run), "--out", str(tmp_path / "rep")]) == 0
    files = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert files == [f"eval-run-{eval_run}.{x}" for x in ("json", "pdf", "png")]
    data = json.loads((tmp_path / "rep" / f"eval-run-{eval_run}.json").read_text())
    assert data["eval"]["outcomes"] == expected and data["eval"]["judged"] == 4 and data["reward"] is None
    assert (tmp_path / "rep" / f"eval-run-{eval_run}.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "rep" / f"eval-run-{eval_run}.png").read_bytes()[:4] == b"\x89PNG"
    with Project.open(folder, PASS) as proj:
        assert any(e["event"] == "exported" and e["details"].get("what") == "report" for e in proj.audit_log())


def _is_acyclic(edges) -> bool:
    """Kahn's algorithm: the graph is a DAG when every node can be removed."""
    nodes = {x for e in edges for x in e}
    indeg = {n: 0 for n in nodes}
    for _, v in set(edges):
        indeg[v] += 1
    ready = [n for n in nodes if indeg[n] == 0]
    removed = 0
    unique = set(edges)
    while ready:
        n = ready.pop()
        removed += 1
        for u, v in unique:
            if u == n:
                indeg[v] -= 1
                if indeg[v] == 0:
                    ready.append(v)
    return removed == len(nodes)


def test_cycles_exactly_when_not_a_dag():
    rng = random.Random(0)
    for _ in range(500):  # random small preference graphs, some cyclic, some not
        edges = [(rng.randint(0, 5), rng.randint(0, 5)) for _ in range(rng.randint(0, 10))]
        edges = [e for e in edges if e[0] != e[1]]
        cycles = stats.find_cycles(edges)
        assert (cycles == []) == _is_acyclic(edges), edges
        edge_set = set(edges)
        for cyc in cycles:  # each reported cycle is a real cycle of the graph
            assert len(set(cyc)) == len(cyc) >= 2
            assert all((cyc[i], cyc[(i + 1) % len(cyc)]) in edge_set for i in range(len(cyc)))
