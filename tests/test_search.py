"""core.search (the Data page's in-memory search) and core.passphrase."""

import pytest

from core.jobs import CancelToken, Cancelled, run_job
from core.passphrase import strength
from core.project import Project
from core.search import prompt_text, search_prompts


@pytest.fixture
def proj(tmp_path):
    p = Project.create(tmp_path / "s", "pw-for-tests")
    yield p
    p.close()


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
    scores = [
        strength(p).score
        for p in ["", "password", "abc12", "hunter2hunter", "tidal quartz lantern", "tidal-quartz-lantern-meadow-fox"]
    ]
    assert scores == sorted(scores) and scores[0] == 0 and scores[-1] >= 3
    assert strength("Tr0ub4dor&3").score <= 2  # short: capped however mixed
    assert "common" in strength("password").hint
