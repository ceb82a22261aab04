"""Quality filters on constructed inputs: duplicates and degenerate outputs are flagged, ordinary replies are
not, the expert's overrule sticks, the Data page's scan counts them (incrementally) and bad input
changes nothing."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.jobs import run_job
from core.project import Project
from core.quality import check_candidates, degenerate, duplicates, overruled, quality_scan, set_overruled, stored_report
from tests.annotate_helpers import PASSPHRASE

GOOD = [
    "You can return the headphones within 30 days for a full refund. Print the label from your account.",
    "Hi Maria, thanks for writing. The reset link is valid for 24 hours; use Forgot password on the sign-in page.",
    "Sure.",
    "Steps:\n\n1. Open Settings > Plan\n2. Choose Pro\n- billed monthly",
    "```python\nprint(sum(range(10)))\n```\nThat prints 45.",
    "Der Rückversand ist innerhalb von 30 Tagen kostenlos; das Etikett finden Sie unter Konto > Bestellungen.",
    "Order 48213 ships tomorrow; the tracking link arrives by email, usually within an hour of dispatch.",
]


def tags(text, origin=None):
    return [f.tag for f in degenerate(text, origin)]


@pytest.mark.parametrize("text", GOOD)
def test_ordinary_replies_are_not_flagged(text):
    assert tags(text) == []


def test_degenerate_outputs_are_flagged():
    assert tags("") == ["empty"]
    assert tags("   \n\t ") == ["empty"]
    assert tags("... !!! ???") == ["empty"]
    assert "repetitive" in tags("I can help with that. " * 8)
    assert "repetitive" in tags("the refund the refund the refund the refund the refund the refund the refund")
    assert "repetitive" in tags(
        "Thanks!\nWe will check your order now.\nWe will check your order now.\n"
        "We will check your order now.\nWe will check your order now."
    )
    assert "repetitive" in tags("hahahahahahahahahahahahahahahahahahahaha")
    assert "cut off" in tags("Go to Account > Orders and choose the order, then press the button labelled")
    assert "cut off" in tags("Here is the code:\n```python\nfor i in range(3):\n    print(i)")
    assert tags("Your refund is on its way.", {"kind": "model", "truncated": True}) == ["cut off"]
    assert tags("Your refund is on its way.", {"finish_reason": "length"}) == ["cut off"]
    assert "gibberish" in tags("xq7 zzkrt pfft 9%$# brrt ##@@ !! qwrtp 12 34 %% ^^ && **")
    assert "gibberish" in tags("Thx fr wrtng. Pls snd th rcpt bck nd wll chck thm sn. Grtngs frm spprt tm.")
    assert "gibberish" in tags(" ".join(["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] * 3 + ["ok", "fine"]))
    # each reason is ours, never a quote of the text
    for flag in degenerate("Go to Account > Orders and choose the order, then press the button labelled"):
        assert "labelled" not in flag.detail


def test_exact_and_near_duplicates_within_a_prompt():
    base = "You can return the blender within 30 days for a full refund. The label is under Account > Orders."
    found = duplicates(
        [
            (1, base),
            (
                2,
                "  you can return the BLENDER within 30 days for a full refund.   The label is under Account > Orders.",
            ),
            (3, base.replace("blender", "kettle")),  # one word differs: a near-duplicate
            (4, "Please send us a photo of the damage and we will ship a free replacement right away."),
            (5, ""),
            (6, ""),
        ]
    )
    assert found[2].tag == "duplicate" and found[2].other == 1
    assert found[3].tag == "near-duplicate" and found[3].other == 1
    assert 4 not in found and 1 not in found
    assert 5 not in found and 6 not in found  # empty ones are "empty", not copies of each other


def test_the_quick_bounds_change_no_near_duplicate_finding():
    """_similarity skips difflib's quadratic ratio() when a cheap upper bound rules a match out; over
    many edited pairs its verdict equals the one the full ratio gives."""
    import difflib
    import random

    from core.quality import NEAR_JACCARD, NEAR_RATIO, _normal, _shingles, _similarity, _words

    def full(a, b):  # the definition without the shortcuts
        sa, sb = _shingles(_words(a)), _shingles(_words(b))
        jac = len(sa & sb) / len(sa | sb) if sa | sb else 1.0
        na, nb = _normal(a), _normal(b)
        if jac < NEAR_JACCARD and max(len(na), len(nb)) <= 400 and jac >= 0.3:
            if difflib.SequenceMatcher(None, na, nb, autojunk=False).ratio() >= NEAR_RATIO:
                return True
        return jac >= NEAR_JACCARD

    rng = random.Random(3)
    words = "you can return the blender kettle within 30 days for a full refund label account order".split()
    verdicts = []
    for _ in range(400):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(4, 40)))
        b = a.split()
        for _ in range(rng.randint(0, 6)):  # a few word edits, inserts and deletions
            i = rng.randrange(len(b) + 1)
            op = rng.choice("sid")
            if op == "i" or not b:
                b.insert(i, rng.choice(words))
            elif op == "d":
                del b[min(i, len(b) - 1)]
            else:
                b[min(i, len(b) - 1)] = rng.choice(words)
        b = " ".join(b)
        quick = _similarity(_normal(a), _normal(b), _shingles(_words(a)), _shingles(_words(b))) >= NEAR_JACCARD
        assert quick == full(a, b), (a, b)
        verdicts.append(quick)
    assert 0 < sum(verdicts) < len(verdicts)  # both verdicts occur: the check can fail


class R:
    def __init__(self, rid, text, origin=None):
        self.id, self.text, self.origin = rid, text, origin or {}


def test_check_candidates_combines_and_honours_overrules():
    rs = [R(1, GOOD[0]), R(2, GOOD[0].upper()), R(3, "Thanks. " * 10), R(4, "")]
    found = check_candidates(rs)
    assert {k: [f.tag for f in v] for k, v in found.items()} == {2: ["duplicate"], 3: ["repetitive"], 4: ["empty"]}
    found = check_candidates(rs, {3: {"repetitive"}, 2: {"gibberish"}})
    assert 3 not in found and [f.tag for f in found[2]] == ["duplicate"]


def test_overrule_scan_counts_and_bad_input(tmp_path):
    proj = Project.create(tmp_path / "q", PASSPHRASE)
    try:
        p1 = proj.add_prompt("Where is my refund?")
        ok = proj.add_response(p1, GOOD[0])
        dup = proj.add_response(p1, GOOD[0] + "  ")
        loop = proj.add_response(p1, "We are sorry. " * 9)
        p2 = proj.add_prompt("How do I reset my password?")
        proj.add_response(p2, GOOD[1])
        proj.add_response(p2, "")
        report = run_job(quality_scan(proj))
        assert report.responses == 5
        assert report.counts["duplicate"] == 1 and report.counts["repetitive"] == 1 and report.counts["empty"] == 1
        assert report.prompts_affected == 2 and report.overruled == 0
        assert "1 duplicate" in report.text() and "1 empty" in report.text()

        set_overruled(proj, loop, "repetitive")
        assert overruled(proj) == {loop: {"repetitive"}}
        again = stored_report(proj)
        assert again.counts["repetitive"] == 0 and again.overruled == 1

        # incremental: a new candidate on p2 is checked, the rest comes from the cache
        proj.add_response(p2, GOOD[1].lower())
        report = run_job(quality_scan(proj))
        assert report.responses == 6 and report.counts["duplicate"] == 2 and report.overruled == 1

        # bad input leaves the project unchanged
        before = proj.get_setting("quality.overruled")
        with pytest.raises(UserError):
            set_overruled(proj, ok, "not-a-tag")
        with pytest.raises(UserError):
            set_overruled(proj, 99999, "empty")
        assert proj.get_setting("quality.overruled") == before
        set_overruled(proj, loop, "repetitive", overrule=False)
        assert overruled(proj) == {} and dup
    finally:
        proj.close()


def test_session_items_carry_findings_and_overrule(tmp_path):
    from core.annotation import AnnotationSession

    proj = Project.create(tmp_path / "s", PASSPHRASE)
    try:
        pid = proj.add_prompt("Where is my order?")
        for text in (GOOD[6], GOOD[6].upper(), "Thanks. " * 10, GOOD[0]):
            proj.add_response(pid, text)
        session = AnnotationSession(proj, consistency_share=0.0, seed="q")
        item = session.start()
        by_tag = {f.tag: i for i, flags in item.quality.items() for f in flags}
        assert set(by_tag) == {"duplicate", "repetitive"}
        i = by_tag["repetitive"]
        item = session.overrule_quality(i, "repetitive")
        assert i not in item.quality
        assert AnnotationSession(proj, consistency_share=0.0, seed="q").start().quality.keys() == item.quality.keys()
    finally:
        proj.close()
