"""The annotation session (core/annotation.py) on real encrypted projects."""

from __future__ import annotations

import pytest

from core.annotation import (
    AnnotationSession,
    RankingBuilder,
    consistency_checks,
    consistency_summary,
    kendall_tau_b,
    tier_scores,
)
from core.errors import UserError
from core.project import Project
from tests.annotate_helpers import PASSPHRASE, fill_project


@pytest.fixture
def proj(tmp_path):
    p = Project.create(tmp_path / "a", PASSPHRASE)
    p.pids = fill_project(p, n=10, k=4)
    yield p
    p.close()


def test_builder_places_ties_and_undoes():
    b = RankingBuilder(4)
    assert b.place(2) and b.place(0)
    assert not b.place(2)  # already placed
    assert not b.place(7)  # no such card
    assert b.tie() and b.tie_armed
    assert b.place(3)
    assert b.tiers == [[2], [0, 3]]
    assert b.rank_of(3) == 2 and b.rank_of(1) is None
    # one left: it goes last without pressing it
    assert b.final_tiers() == [[2], [0, 3], [1]]
    assert b.undo() and b.tiers == [[2], [0]]
    b.tie()
    assert b.undo() and not b.tie_armed and b.tiers == [[2], [0]]  # first backspace disarms the tie
    assert b.undo() and b.undo() and b.tiers == [] and not b.undo()
    with pytest.raises(UserError, match="0 of 4"):
        b.final_tiers()
    b.set_order([3, 1, 0, 2], [False, True, False, False])
    assert b.tiers == [[3, 1], [0], [2]] and b.complete
    # an armed tie with one left ties it to the last tier
    b.set_tiers([[0], [1], [2]])
    b.tie()
    assert b.final_tiers() == [[0], [1], [2, 3]]


def test_kendall_tau():
    assert kendall_tau_b({1: 3, 2: 2, 3: 1}, {1: 3, 2: 2, 3: 1}) == pytest.approx(1.0)
    assert kendall_tau_b({1: 3, 2: 2, 3: 1}, {1: 1, 2: 2, 3: 3}) == pytest.approx(-1.0)
    assert kendall_tau_b({1: 1, 2: 1}, {1: 1, 2: 2}) is None
    x = tier_scores([[1], [2, 3], [4]])
    assert x == {1: 3.0, 2: 2.0, 3: 2.0, 4: 1.0}
    # scipy.stats.kendalltau([3,2,2,1],[4,3,2,1]) = 0.9128709
    assert kendall_tau_b(x, {1: 4, 2: 3, 3: 2, 4: 1}) == pytest.approx(0.9128709, abs=1e-6)


def test_queue_order_blind_shuffle_and_persistence(proj, tmp_path):
    s = AnnotationSession(proj, consistency_share=0.0, seed="s1")
    item = s.start()
    seen, orders = [], {}
    for _ in range(5):
        seen.append(item.prompt_id)
        ids = [r.id for r in item.candidates]
        assert sorted(ids) == sorted(r.id for r in proj.responses(item.prompt_id))
        orders[item.prompt_id] = ids
        item = s.submit_ranking(
            [[0], [1, 2], [3]], flags=("harmful",) if len(seen) == 2 else (), comment="ok" if len(seen) == 3 else ""
        )
    assert seen == proj.pids[:5]  # unranked first, in project order
    # blind: display order is not the storage order for every item
    assert any(orders[p] != sorted(orders[p]) for p in seen)
    # the same item shows the same order within the session
    back = s.previous()
    assert back.prompt_id == seen[-1] and [r.id for r in back.candidates] == orders[seen[-1]]
    assert back.prefill_tiers() == [[0], [1, 2], [3]]
    path = proj.path
    proj.close()
    with Project.open(path, PASSPHRASE) as again:
        js = again.judgments(kind="ranking")
        assert [j.prompt_id for j in js] == seen
        for j in js:
            o = orders[j.prompt_id]
            assert j.tiers == [[o[0]], [o[1], o[2]], [o[3]]]
        assert js[1].flags == ("harmful",) and js[2].comment == "ok"
        assert all(j.seconds >= 0 for j in js)


def test_skip_previous_next_and_skipped_come_last(proj):
    s = AnnotationSession(proj, consistency_share=0.0, seed="s")
    a = s.start()
    b = s.skip()
    assert a.prompt_id == proj.pids[0] and b.prompt_id == proj.pids[1]
    c = s.next()  # move on without judging
    assert c.prompt_id == proj.pids[2]
    assert s.previous().prompt_id == proj.pids[1]
    assert s.previous().prompt_id == proj.pids[0]
    assert s.next().prompt_id == proj.pids[1]
    assert s.next().prompt_id == proj.pids[2]
    # judge everything else; then the queue comes back to the un-judged pid 1 and finally the skipped pid 0
    order = []
    item = s.current
    while item is not None and len(order) < 20:
        order.append(item.prompt_id)
        item = s.submit_ranking([[0], [1], [2], [3]])
    assert order == proj.pids[2:] + [proj.pids[1], proj.pids[0]]
    assert s.progress.judged == 10
    assert s.refresh_progress().judged == 10


def test_undo_restores_previous_state(proj):
    s = AnnotationSession(proj, consistency_share=0.0, seed="u")
    first = s.start()
    s.submit_ranking([[0], [1], [2], [3]])
    original = proj.judgments(prompt_id=first.prompt_id)[0]
    assert s.progress.judged == 1 and s.progress.today == 1
    # go back and re-rank: supersedes
    again = s.previous()
    assert again.prompt_id == first.prompt_id
    s.submit_ranking([[3], [2], [1], [0]])
    assert proj.judgments(prompt_id=first.prompt_id)[0].tiers == list(reversed(original.tiers))
    assert s.progress.judged == 1
    # Ctrl+Z: the first ranking is current again, and the item is shown again
    back = s.undo()
    assert back.prompt_id == first.prompt_id
    assert [j.id for j in proj.judgments(prompt_id=first.prompt_id)] == [original.id]
    assert back.prefill_tiers() == [[0], [1], [2], [3]]
    assert s.undo().prompt_id == first.prompt_id
    assert proj.judgments(prompt_id=first.prompt_id) == []
    assert s.progress.judged == 0 and s.progress.today == 0
    assert s.refresh_progress().judged == 0
    with pytest.raises(UserError, match="Nothing to undo"):
        s.undo()
    # undoing a skip puts the item back in the queue
    s.skip()
    assert proj.prompt_status()[0][3] == "skipped"
    assert s.undo().prompt_id == first.prompt_id
    assert proj.prompt_status()[0][3] == "unranked"


def test_pairwise_chooses_uncompared_pairs(proj):
    s = AnnotationSession(proj, mode="pairwise", consistency_share=0.0, seed="p")
    item = s.start()
    pid = item.prompt_id
    pairs = set()
    for result in ("a", "b", "tie", "both_bad", "a", "b"):
        assert item.prompt_id == pid and item.pair is not None and item.existing is None
        a, b = item.candidates[item.pair[0]].id, item.candidates[item.pair[1]].id
        pairs.add(frozenset((a, b)))
        s.submit_pairwise(result)
        item = s.previous()
    assert len(pairs) == 6  # all C(4,2) pairs, none twice
    # all compared: a pair is shown again with its stored choice
    assert item.existing is not None
    js = proj.judgments(prompt_id=pid, kind="pairwise")
    assert len(js) == 6 and sorted(j.choice for j in js) == sorted(["a", "b", "tie", "both_bad", "a", "b"])
    # the winner is stored by response id, whichever side it was shown on
    j = js[0]
    winner = {"a": j.a, "b": j.b}[j.choice]
    assert any(p.chosen_id == winner for p in proj.preference_pairs())


def test_rating_requires_every_candidate(proj):
    s = AnnotationSession(proj, mode="rating", consistency_share=0.0, seed="r")
    item = s.start()
    with pytest.raises(UserError, match="missing: 4"):
        s.submit_ratings({0: 7, 1: 5, 2: 1})
    with pytest.raises(UserError, match="from 1 to 7"):
        s.submit_ratings({0: 8, 1: 5, 2: 1, 3: 2})
    nxt = s.submit_ratings({0: 7, 1: 5, 2: 1, 3: 2})
    j = proj.judgments(prompt_id=item.prompt_id, kind="rating")[0]
    assert j.ratings == {
        item.candidates[0].id: 7,
        item.candidates[1].id: 5,
        item.candidates[2].id: 1,
        item.candidates[3].id: 2,
    }
    assert nxt.prompt_id == proj.pids[1]
    back = s.previous()
    assert back.prefill_ratings() == {0: 7, 1: 5, 2: 1, 3: 2}
    # switching mode shows the same item in the new mode
    assert s.set_mode("ranking").prompt_id == item.prompt_id


def test_consistency_rechecks_are_blind_and_scored(proj):
    s = AnnotationSession(proj, consistency_share=0.0, seed="c")
    item = s.start()
    for _ in range(4):  # rank 4 items: best is always the response with the smallest id
        order = sorted(range(item.k), key=lambda i: item.candidates[i].id)
        item = s.submit_ranking([[i] for i in order])
    s.set_consistency_share(1.0)
    assert proj.get_setting("annotation.consistency_share") == 1.0
    s._checked.clear()
    s.history = s.history[-1:]  # let the recent items be picked for the test
    s.index = 0
    item = s.submit_ranking([[0], [1], [2], [3]])  # 5th annotation; a re-check follows
    assert item.purpose == "consistency"
    assert item.prompt_id in proj.pids[:5]
    # the re-check agrees on the top choice only
    ids = [r.id for r in item.candidates]
    best = min(ids)
    rest = sorted((i for i in range(item.k) if ids[i] != best), key=lambda i: -ids[i])
    check_pid = item.prompt_id
    nxt = s.submit_ranking([[ids.index(best)]] + [[i] for i in rest])
    assert nxt.purpose == "annotation" and nxt.prompt_id == proj.pids[5]
    # the re-check never replaces the original
    assert len(proj.judgments(prompt_id=check_pid, kind="ranking")) == 1
    assert len(proj.judgments(prompt_id=check_pid, purpose="consistency")) == 1
    assert s.progress.judged == 5
    checks = consistency_checks(proj)
    assert len(checks) == 1 and checks[0].prompt_id == check_pid
    c = checks[0]
    assert check_pid != proj.pids[4]  # the item just ranked is not re-shown at once
    assert c.same_top and c.agreed and -1.0 <= c.tau < 1.0  # same best, the rest reversed
    summary = consistency_summary(checks)
    assert summary["checks"] == 1 and summary["agreement"] in (0.0, 1.0)


def test_consistency_pairwise_disagreement(proj):
    s = AnnotationSession(proj, mode="pairwise", consistency_share=1.0, seed="cp")
    item = s.start()
    a_id = item.candidates[item.pair[0]].id
    check = s.submit_pairwise("a")
    # only one judged prompt exists, and it was just shown: the recent history is avoided
    assert check.purpose == "annotation"
    s.history, s.index = [check.prompt_id], 0
    s._pending_check = True
    s.current = s._advance()
    assert s.current.purpose == "consistency" and s.current.prompt_id == item.prompt_id
    shown = [s.current.candidates[i].id for i in s.current.pair]
    side = "b" if shown[0] == a_id else "a"  # choose the other response this time
    s.submit_pairwise(side)
    checks = consistency_checks(proj)
    assert len(checks) == 1 and not checks[0].agreed and checks[0].tau is None
    assert consistency_summary(checks)["agreement"] == 0.0


def test_split_filter_and_progress(proj, tmp_path):
    proj.set_split(proj.pids[:3], "heldout")
    s = AnnotationSession(proj, split="train", consistency_share=0.0)
    assert s.progress.total == 7 and s.progress.judged == 0
    assert s.start().prompt_id == proj.pids[3]
    s.submit_ranking([[0, 1, 2, 3]])
    assert s.progress.judged == 1 and s.progress.today == 1
    assert "1 of 7 judged" in s.progress.text()


def test_blind_eval_answers_are_not_ordinary_candidates(proj):
    first = proj.pids[0]
    proj.add_response(first, "an answer made for a blind A/B", origin={"kind": "eval", "run": 1, "side": "tuned"})
    item = AnnotationSession(proj, consistency_share=0.0, seed="e").start()
    assert item.prompt_id == first
    assert len(item.candidates) == 4
    assert all(r.origin.get("kind") != "eval" for r in item.candidates)
