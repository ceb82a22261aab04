"""The informative queue and assisted review on constructed projects (real encrypted store, real jobs).

The constructed expert prefers replies with the words "correct precise helpful" over "wrong vague rude";
the queue model learns that from a few judgments, so a prompt whose candidates use none of those words is
the one it is unsure about, and a judgment that contradicts the rule is the slip the review list finds.
"""

from __future__ import annotations

import threading

import pytest

from core.active import (
    START_INFORMATIVE,
    ModelCache,
    QueueOrder,
    diverse_order,
    explain_judgment,
    informativeness,
    refresh_queue,
    review_list,
    stored_order,
)
from core.annotation import AnnotationSession
from core.errors import UserError
from core.jobs import CancelToken, Cancelled, run_job
from core.project import Project
from tests.annotate_helpers import PASSPHRASE

GOOD = ["correct", "precise", "helpful", "accurate", "clear"]
BAD = ["wrong", "vague", "rude", "sloppy", "confusing"]
FILL = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def reply(i: int, quality: int, salt: str = "") -> str:
    """quality 0..3 good words out of 3 (the rest bad), plus filler so texts differ; same length."""
    words = GOOD[:quality] + BAD[: 3 - quality] + [FILL[(i + k) % len(FILL)] + salt for k in range(4)]
    return "This reply is " + " ".join(words) + f" number {i}."


def build(tmp_path, n_judged=START_INFORMATIVE + 2, n_open=10, name="a"):
    proj = Project.create(tmp_path / name, PASSPHRASE)
    judged, open_ = [], []
    with proj.transaction():
        for i in range(n_judged + n_open):
            pid = proj.add_prompt(f"Customer question number {i} about topic {i % 3}.")
            rids = [proj.add_response(pid, reply(i * 4 + q, q)) for q in range(4)]
            (judged if i < n_judged else open_).append((pid, rids))
    for pid, rids in judged:
        proj.record_ranking(pid, [[rids[3]], [rids[2]], [rids[1]], [rids[0]]])  # more good words = better
    return proj, judged, open_


def add_uncertain(proj):
    """A prompt whose candidates use words the model never saw judged: it cannot tell them apart."""
    pid = proj.add_prompt("Customer question about something else entirely.")
    words = [
        ["kilo", "lima", "mike"],
        ["november", "oscar", "papa"],
        ["quebec", "romeo", "sierra"],
        ["tango", "uniform", "victor"],
    ]
    rids = [
        proj.add_response(
            pid,
            "This reply is " + " ".join(w + [FILL[k], FILL[k + 1], FILL[k + 2], FILL[k + 3]]) + f" number {900 + k}.",
        )
        for k, w in enumerate(words)
    ]
    return pid, rids


def test_informativeness_prefers_disagreement_and_skips_copies():
    confident = [[3.0, 1.0, -1.0, -3.0]] * 3
    unsure = [[0.0, 0.0, 0.0, 0.0]] * 3
    split = [[2.0, -2.0, 0.0, 0.0], [-2.0, 2.0, 0.0, 0.0], [2.0, -2.0, 0.0, 0.0]]
    assert informativeness(unsure) > informativeness(confident)
    assert informativeness(split) > informativeness(unsure)  # the members disagree: that teaches most
    assert informativeness(unsure, skip_pairs=[(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]) == 0.0
    assert informativeness([[1.0]]) == 0.0


def test_diverse_order_spreads_topics():
    import numpy as np

    values = np.array([1.0, 0.99, 0.98, 0.97, 0.5])
    vectors = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1]], dtype=float)
    assert diverse_order(values, vectors, diversity=0.0)[:2] == [0, 1]
    assert diverse_order(values, vectors, diversity=0.8)[:2] == [0, 4]


def test_informative_order_puts_the_uncertain_prompt_first(tmp_path):
    proj, judged, open_ = build(tmp_path)
    try:
        uncertain, _ = add_uncertain(proj)
        order = run_job(refresh_queue(proj, split=None, cache=ModelCache()))
        assert order.ready and order.prompt_ids[0] == uncertain, order.scores[:3]
        assert set(order.prompt_ids) == {p for p, _ in open_} | {uncertain}
        assert order.judged == len(judged) and order.pool == len(open_) + 1 and order.reward_run is None
        assert stored_order(proj).prompt_ids == order.prompt_ids  # kept (encrypted) for the next session

        # the session walks it: the uncertain prompt first, re-checks keep working, then the rest
        session = AnnotationSession(proj, consistency_share=0.0, order="informative", seed="t")
        assert session.informative  # the stored order was picked up
        item = session.start()
        assert item.prompt_id == uncertain
        session.consistency_share = 1.0
        item = session.submit_ranking([[0], [1], [2], [3]])
        assert item.purpose == "consistency" and item.prompt_id in {p for p, _ in judged}
        session.consistency_share = 0.0
        item = session.submit_ranking([[0], [1], [2], [3]])
        assert item.purpose == "annotation" and item.prompt_id == order.prompt_ids[1]
        seen = [item.prompt_id]
        while item is not None:
            item = session.skip()
            if item is not None:
                seen.append(item.prompt_id)
            if len(seen) > 40:
                break
        assert set(order.prompt_ids[1:]) <= set(seen)

        # the project order ignores it
        plain = AnnotationSession(proj, consistency_share=0.0, order="project", seed="t")
        assert plain.order == "project" and not plain.informative
    finally:
        proj.close()


def test_project_order_is_the_default_and_setting_persists(tmp_path):
    proj, judged, open_ = build(tmp_path)
    try:
        session = AnnotationSession(proj, consistency_share=0.0)
        assert session.order == "project"
        assert session.start().prompt_id == open_[0][0]  # the first unjudged prompt in project order
        session.set_order("informative")
        assert AnnotationSession(proj).order == "informative"
        with pytest.raises(UserError):
            session.set_order("random")
        assert AnnotationSession(proj).order == "informative"  # a bad value changed nothing
        with pytest.raises(UserError):
            AnnotationSession(proj, order="random")
    finally:
        proj.close()


def test_too_few_judgments_and_heldout_keep_project_order(tmp_path):
    proj, judged, open_ = build(tmp_path, n_judged=START_INFORMATIVE - 1)
    try:
        order = run_job(refresh_queue(proj))
        assert not order.ready and str(START_INFORMATIVE) in order.reason
        assert stored_order(proj) is None
        session = AnnotationSession(proj, consistency_share=0.0, order="informative")
        assert not session.apply_order(order)
        assert session.start().prompt_id == open_[0][0]
        held = run_job(refresh_queue(proj, split="heldout"))
        assert not held.ready and "held-out" in held.reason
    finally:
        proj.close()


def test_heldout_prompts_are_neither_fit_nor_ranked_but_interleaved(tmp_path):
    proj, judged, open_ = build(tmp_path, n_open=20)
    try:
        heldout = [pid for pid, _ in open_[::4]]
        proj.set_split(heldout, "heldout")
        order = run_job(refresh_queue(proj, split=None))
        train_order = [p for p in order.prompt_ids if p not in heldout]
        assert [p for p in order.prompt_ids if p in heldout] == heldout  # project order
        positions = [order.prompt_ids.index(p) for p in heldout]
        assert positions[0] > 0 and max(positions) < len(order.prompt_ids) - 1 or len(train_order) < 4
        only_train = run_job(refresh_queue(proj, split="train"))
        assert not set(only_train.prompt_ids) & set(heldout)
    finally:
        proj.close()


def test_refresh_is_cancellable_and_stores_nothing(tmp_path):
    proj, _, _ = build(tmp_path)
    try:
        token = CancelToken()
        job = refresh_queue(proj, cancel=token)
        next(job)
        token.cancel()
        with pytest.raises(Cancelled):
            run_job(job)
        assert stored_order(proj) is None
    finally:
        proj.close()


def test_order_for_another_split_is_ignored(tmp_path):
    proj, _, open_ = build(tmp_path)
    try:
        session = AnnotationSession(proj, consistency_share=0.0, split="train", order="informative")
        assert not session.apply_order(QueueOrder(prompt_ids=[open_[-1][0]], split=None))
        assert session.apply_order(QueueOrder(prompt_ids=[open_[-1][0]], split="train"))
        assert session.start().prompt_id == open_[-1][0]
        # a prompt judged meanwhile (another window, an import) is passed over
        proj.record_skip(open_[-2][0])
        session.apply_order(QueueOrder(prompt_ids=[open_[-2][0], open_[-3][0]], split="train"))
        assert session.next().prompt_id == open_[-3][0]
    finally:
        proj.close()


def test_review_list_finds_the_slip_and_explain_names_the_models_top(tmp_path):
    proj, judged, _ = build(tmp_path, n_open=2)
    try:
        slip_pid, rids = judged[5]
        slip = proj.record_ranking(slip_pid, [[rids[0]], [rids[1]], [rids[2]], [rids[3]]])  # reversed by mistake
        views = run_job(review_list(proj))
        assert views[0].judgment_id == slip and views[0].disagrees and views[0].model_top == rids[3]
        assert views[0].source == "queue model" and views[0].flipped >= 4
        assert all(v.disagreement <= views[0].disagreement for v in views)

        view = run_job(explain_judgment(proj, slip, cache=ModelCache()))
        assert view.top_differs and view.model_top == rids[3] and view.expert_top == (rids[0],)
        good = proj.judgments(prompt_id=judged[6][0])[0]
        view = run_job(explain_judgment(proj, good.id))
        assert not view.top_differs and view.disagreement < 0.5

        with pytest.raises(UserError):
            run_job(explain_judgment(proj, 10_000))
        skip = proj.record_skip(judged[7][0])
        assert run_job(explain_judgment(proj, skip)) is None
        assert run_job(review_list(proj, source="reward")) == []  # no reward-model run yet
    finally:
        proj.close()


def test_refresh_steps_aside_while_the_expert_is_active(tmp_path, monkeypatch):
    """While input keeps arriving (quiet period not over) the refresh waits between prompts instead of
    working: here the person is "active" for a minute, so the job only leaves its wait when cancelled."""
    from core import jobs

    proj, _, _ = build(tmp_path)
    activity = jobs.UserActivity(quiet=60.0)
    monkeypatch.setattr("core.active.USER_ACTIVITY", activity)
    try:
        activity.touch()
        assert activity.active()
        token = CancelToken()
        job = refresh_queue(proj, cancel=token, store=True)
        assert next(job).message == "reading judgments"
        seen, outcome = [], []

        def worker():  # a background job, as the page runs it; input arrives on this (the test's) thread
            try:
                run_job(job, on_progress=lambda e: seen.append(e.message))
            except Cancelled:
                outcome.append("cancelled")

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=0.3)
        assert thread.is_alive()  # still waiting for the person to pause
        token.cancel()  # the only way out of a minute of waiting
        thread.join()
        assert outcome == ["cancelled"]
        assert "fitting the queue model" not in seen
        assert stored_order(proj) is None
        # the same code in the foreground, on the thread that handles input, never waits
        assert run_job(refresh_queue(proj, store=False)).ready
        quiet = jobs.UserActivity(quiet=0.0)  # nobody at the keys: the same job runs straight through
        monkeypatch.setattr("core.active.USER_ACTIVITY", quiet)
        quiet.touch()
        assert not quiet.active()
        assert run_job(refresh_queue(proj)).ready
    finally:
        proj.close()
