"""core.search (the Data page's status rows and in-memory search) and core.passphrase."""
import pytest

from core.jobs import CancelToken, Cancelled, run_job
from core.passphrase import strength
from core.project import Project
from core.search import prompt_status, prompt_text, search_prompts


@pytest.fixture
def proj(tmp_path):
    p = Project.create(tmp_path / "s", "pw-for-tests")
    yield p
    p.close()


def test_prompt_status_matches_store(proj):
    ids = []
    for i in range(12):
        pid = proj.add_prompt(f"Question {i} about refunds" if i % 3 else [{"role": "user", "content": f"chat {i}"}],
                              split="heldout" if i % 4 == 0 else "train")
        rids = [proj.add_response(pid, f"answer {i}.{r}") for r in range(i % 4)]
        ids.append((pid, rids))
    p0, r0 = ids[1]
    proj.record_ranking(p0, [[r0[0]]], flags=("harmful",))
    p1, r1 = ids[2]
    proj.record_ranking(p1, [[r1[0]], [r1[1]]])
    proj.record_ranking(p1, [[r1[1]], [r1[0]]])  # supersedes
    proj.record_skip(ids[3][0])
    j = proj.record_ranking(ids[5][0], [[r] for r in ids[5][1]])
    proj.undo_judgment(j)  # back to unranked
    proj.record_ranking(ids[6][0], [[r] for r in ids[6][1]], purpose="consistency")  # not an annotation
    p7, r7 = ids[7]
    proj.record_skip(p7)
    proj.record_pairwise(p7, a=r7[0], b=r7[1], result="a")  # judged after a skip
    got = prompt_status(proj)
    assert got == proj.prompt_status()
    status = {row[0]: row[3] for row in got}
    assert status[p0] == "ranked" and status[p1] == "ranked" and status[ids[3][0]] == "skipped"
    assert status[ids[5][0]] == "unranked" and status[ids[6][0]] == "unranked" and status[p7] == "ranked"
    assert [row[5] for row in got if row[0] == p0] == [1] and sum(row[5] for row in got) == 1
    assert [row[4] for row in got] == [i % 4 for i in range(12)]


def test_search_words_cache_responses_cancel(proj):
    a = proj.add_prompt("Where is my REFUND for order 12?")
    b = proj.add_prompt([{"role": "system", "content": "Be brief"}, {"role": "user", "content": "order 12 late"}])
    c = proj.add_prompt("Password reset", reference="refund policy is 30 days")
    proj.add_response(c, "your kettle ships today")
    cache = {}
    assert run_job(search_prompts(proj, "order 12", cache=cache)) == [a, b]
    assert run_job(search_prompts(proj, "refund", cache=cache)) == [a, c]  # references count
    assert run_job(search_prompts(proj, "user: order")) == [b]  # chat prompts as a dialogue
    assert run_job(search_prompts(proj, "kettle", cache=cache)) == []
    assert run_job(search_prompts(proj, "kettle", responses=True, cache=cache)) == [c]
    assert run_job(search_prompts(proj, "  ")) == [a, b, c]
    assert len(cache) == 6 and all(v == v.casefold() for v in cache.values())
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(search_prompts(proj, "x", cancel=token))
    assert prompt_text([{"role": "user", "content": "hi"}]) == "user: hi"


def test_passphrase_strength_orders_sensibly():
    scores = [strength(p).score for p in ["", "password", "abc12", "hunter2hunter", "tidal quartz lantern",
                                          "tidal-quartz-lantern-meadow-fox"]]
    assert scores == sorted(scores) and scores[0] == 0 and scores[-1] >= 3
    assert strength("Tr0ub4dor&3").score <= 2  # short: capped however mixed
    assert "common" in strength("password").hint
