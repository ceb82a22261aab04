"""Simulated experts for the benches: consistent judges with different priorities.

Each is `score(request, reply) -> float` (higher is better). They read the demo corpus's phrase banks
(core.demo.corpus), which the product never sees: the product learns an expert only from the rankings the
bench records through the same API the Annotate page uses. They disagree with each other on purpose, so
a product tuned to one of them would fail the others:

- demo: the demo's own support lead (core.demo.corpus.expert_score): right facts, polite, not vague.
- concise: right facts, then the shorter the better; greetings, empathy and closings are noise.
- plain: right facts and no vagueness, indifferent to politeness and rudeness alike.
- no_filler: right facts, and every filler sentence (opening hours, "loyal customer"...) costs a lot.
- warm: tone first (politeness matters as much as the facts), rudeness unforgivable.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.demo import corpus as C  # noqa: E402

Expert = Callable[[str, str], float]


def _facts(request: str, low: str) -> float:
    """The request's own facts (+2 each, at most 2), wrong facts (-4), another request's facts (-3)."""
    topic = C.classify_request(request)
    own = {f.lower() for f in topic.facts} if topic is not None else set()
    score = 2.0 * min(sum(1 for f in own if f in low), 2)
    if any(w.lower() in low for t in C.TOPICS for w in t.wrong_facts):
        score -= 4.0
    other = {f.lower() for t in C.TOPICS if t is not topic for f in t.facts} - own
    if any(f in low for f in other):
        score -= 3.0
    return score


def _count(markers, low: str) -> int:
    return sum(1 for m in markers if m in low)


def _cut_off(reply: str) -> bool:
    return bool(reply.strip()) and reply.strip()[-1] not in ".!?"


def _wrong_details(request: str, low: str) -> int:
    asked = set(re.findall(r"\b\d{5}\b", request))
    n = int(any(o not in asked for o in re.findall(r"\b\d{5}\b", low)))
    req_low = request.lower()
    n += int(any(p in low and p not in req_low for p in C.PRODUCTS if p != "other"))
    return n


def demo(request: str, reply: str) -> float:
    return C.expert_score(request, reply)


def concise(request: str, reply: str) -> float:
    low = reply.lower()
    words = len(reply.split())
    score = _facts(request, low) - 2.0 * _count(C.VAGUE_MARKERS, low) - 1.0 * _wrong_details(request, low)
    score -= 0.06 * words  # every word must earn its place
    if words < 4:
        score -= 3.0
    if _cut_off(reply):
        score -= 1.5
    return score


def plain(request: str, reply: str) -> float:
    low = reply.lower()
    words = len(reply.split())
    score = _facts(request, low) - 2.5 * min(_count(C.VAGUE_MARKERS, low), 1) - 1.0 * _wrong_details(request, low)
    if words < 5:
        score -= 2.0
    if _cut_off(reply):
        score -= 1.0
    return score


_FILLER = [s.lower().rstrip(".") for s in C.EXTRA]


def no_filler(request: str, reply: str) -> float:
    low = reply.lower()
    words = len(reply.split())
    score = _facts(request, low) + 0.3 * min(_count(C.POLITE_MARKERS, low), 2)
    score -= 1.0 * min(_count(C.RUDE_MARKERS, low), 2) + 2.0 * min(_count(C.VAGUE_MARKERS, low), 1)
    score -= 1.5 * sum(1 for f in _FILLER if f in low)
    score -= 1.0 * _wrong_details(request, low)
    if words < 5:
        score -= 2.0
    if _cut_off(reply):
        score -= 1.0
    return score


def warm(request: str, reply: str) -> float:
    low = reply.lower()
    words = len(reply.split())
    score = 0.75 * _facts(request, low) + 1.0 * min(_count(C.POLITE_MARKERS, low), 3)
    score -= 3.0 * min(_count(C.RUDE_MARKERS, low), 2) + 1.5 * min(_count(C.VAGUE_MARKERS, low), 1)
    if words < 5:
        score -= 2.0
    if _cut_off(reply):
        score -= 1.0
    return score


EXPERTS: dict[str, Expert] = {"demo": demo, "concise": concise, "plain": plain, "no_filler": no_filler, "warm": warm}
