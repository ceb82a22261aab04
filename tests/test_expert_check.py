"""Check with the expert: fresh policy samples mixed with base samples, judged blind as ordinary judgments,
and the reward model's agreement with those judgments — on a real encrypted project with a real reward
run and a real policy run; a simulated expert does the judging."""

import pytest
import torch

from core.errors import UserError
from core.jobs import run_job
from core.training import monitors as M
from core.training.expert_check import (
    CHECK_KIND,
    check_items,
    check_queue,
    expert_agreement,
    judged_pairs,
    prepare_expert_check,
    record_check,
    recorded_agreement,
)
from tests.eval_fixtures import eval_base, expert_choice, make_eval_project  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def checked(tmp_path_factory, eval_base):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    proj, policy_run, reward_run = make_eval_project(tmp_path_factory.mktemp("chk") / "c.rlhfproj", eval_base)
    pairs_before = len(proj.preference_pairs())
    prepared = run_job(prepare_expert_check(proj, policy_run, n_prompts=8, seed=5))
    yield proj, policy_run, reward_run, prepared, pairs_before
    proj.close()
    torch.set_num_threads(threads)


def test_check_is_blind_and_mixes_policy_and_base(checked):
    proj, policy_run, _, prepared, _ = checked
    run = proj.run(prepared.check_run)
    assert run.kind == CHECK_KIND and run.parent == policy_run and run.status == "done"
    assert prepared.step == proj.run(policy_run).summary["steps"]
    items = run.config["items"]
    assert len(items) == 8 and prepared.items + prepared.identical == 8
    train = set(proj.prompt_ids(split="train"))
    assert {it["prompt"] for it in items} <= train and len({it["prompt"] for it in items}) == 8
    sides = [it["policy"] for it in items]
    assert sides.count("a") == 4 and sides.count("b") == 4  # neither position gives the source away
    for it in items:
        if it.get("identical"):
            continue
        pol = it["a"] if it["policy"] == "a" else it["b"]
        base = it["b"] if pol == it["a"] else it["a"]
        assert proj.response(pol).origin["side"] == "policy" and proj.response(base).origin["side"] == "base"
    shown = check_items(proj, prepared.check_run)
    assert all(not hasattr(i, "policy") and not hasattr(i, "side") for i in shown)
    assert [i.index for i in shown] == [k for k, it in enumerate(items) if not it.get("identical")]


def test_judgments_are_ordinary_and_agreement_matches_a_direct_count(checked):
    from core.training.reward import load_reward_model

    proj, policy_run, reward_run, prepared, pairs_before = checked
    queue = check_queue(proj, prepared.check_run)
    assert len(queue) == prepared.items
    for item in queue:
        choice = expert_choice(proj.response(item.a).text, proj.response(item.b).text)
        record_check(proj, item, choice)
    assert check_queue(proj, prepared.check_run) == []
    judged = proj.judgments(kind="pairwise", purpose="annotation")
    assert len(judged) >= len(queue)  # ordinary annotation judgments ...
    pairs = judged_pairs(proj, policy_run)
    assert len(proj.preference_pairs()) == pairs_before + len(pairs)  # ... that the next reward model sees

    result = run_job(expert_agreement(proj, policy_run))
    assert result.reward_run == reward_run
    # the same figure, counted directly
    rm = load_reward_model(proj, reward_run)
    agreed = 0.0
    for p in pairs:
        prompt = proj.prompt(p["prompt"]).prompt
        win, lose = rm.score([(prompt, proj.response(p["chosen"]).text), (prompt, proj.response(p["rejected"]).text)])
        agreed += 1.0 if win > lose else 0.5 if win == lose else 0.0
    assert result.agreement.pairs == len(pairs) > 0
    assert result.agreement.agreed == pytest.approx(agreed)
    assert result.by_check == [
        {
            "check_run": prepared.check_run,
            "step": prepared.step,
            "agreed": result.agreement.agreed,
            "pairs": len(pairs),
            "rate": result.agreement.rate,
        }
    ]
    assert result.expert_prefers_policy == pytest.approx(sum(p["policy_chosen"] for p in pairs) / len(pairs))
    overall, rows = recorded_agreement(proj, policy_run)  # kept in the check run: no model needed later
    assert overall == result.agreement and rows == result.by_check
    watch = M.watch_run(proj, policy_run, overall)
    assert watch.figures["agreement"] == result.agreement.rate


def test_a_second_check_takes_fresh_prompts(checked):
    proj, policy_run, _, prepared, _ = checked
    first = {it["prompt"] for it in proj.run(prepared.check_run).config["items"]}
    again = run_job(prepare_expert_check(proj, policy_run, n_prompts=6, seed=6))
    second = {it["prompt"] for it in proj.run(again.check_run).config["items"]}
    assert len(second) == 6 and not first & second


def test_refuses_runs_it_cannot_check(checked):
    proj, _, reward_run, _, _ = checked
    with pytest.raises(UserError, match="choose a policy run"):
        run_job(prepare_expert_check(proj, reward_run))
    with pytest.raises(UserError):
        run_job(prepare_expert_check(proj, 10_000))


def test_cli_prepares_a_check_and_reports_agreement(tmp_path, eval_base, monkeypatch, capsys):
    import core.cli
    from core.project import Project
    from tests.eval_fixtures import PASS

    torch.set_num_threads(1)
    folder = tmp_path / "cli.rlhfproj"
    proj, policy_run, _ = make_eval_project(folder, eval_base)
    proj.close()
    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    assert core.cli.main(["expert-check", str(folder), str(policy_run), "--agreement"]) == 0
    assert "no judged check pairs" in capsys.readouterr().out
    assert core.cli.main(["expert-check", str(folder), str(policy_run), "--prompts", "6", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "blind pairs ready" in out and "Check with the expert" in out
    with Project.open(folder, PASS) as proj:
        check = [r.id for r in proj.runs(kind=CHECK_KIND)][-1]
        for item in check_queue(proj, check):
            a, b = proj.response(item.a).text, proj.response(item.b).text
            # the expert's rule, with ties broken by length (a tiny random model's replies often tie)
            record_check(proj, item, "a" if (a.count("e"), len(a)) >= (b.count("e"), len(b)) else "b")
    assert core.cli.main(["expert-check", str(folder), str(policy_run), "--agreement"]) == 0
    out = capsys.readouterr().out
    assert "agrees with you on" in out and f"check run {check}" in out and "monitors:" in out
