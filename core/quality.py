"""Quality filters: what the expert should know about a candidate before judging it.

Two kinds of finding, both automatic and both overrulable by the expert:

- **duplicates** within a prompt: `duplicate` (the same text once case and whitespace are ignored; the
  store already refuses byte-identical ones) and `near-duplicate` (word-bigram Jaccard >= 0.8, or a
  character-level ratio >= 0.92 on short replies). The later candidate is marked as a copy of the earlier.
- **degenerate outputs**: `empty` (no letter or digit), `repetitive` (a phrase looping: most word
  4-grams repeat, a line repeated three times or more, or a short piece repeated back to back), `cut off`
  (generation stopped at the token limit, as recorded in the candidate's origin; or prose that stops
  mid-sentence or inside an unclosed code block) and `gibberish` (a simple character/word statistic:
  few letters among the visible characters, many long words without a vowel, or very long "words").

Findings are computed from the text (cheap: microseconds per candidate), never stored in plaintext.
Overrules are kept in the encrypted settings (`quality.overruled`); `quality_scan` is the job behind the
Data page's counts, incremental over responses added since its last run. Qt-free.
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Sequence

from core.jobs import NEVER, USER_ACTIVITY, CancelToken, Progress

__all__ = [
    "TAGS",
    "DEGENERATE_TAGS",
    "DUPLICATE_TAGS",
    "QualityFlag",
    "QualityReport",
    "degenerate",
    "duplicates",
    "check_candidates",
    "overruled",
    "set_overruled",
    "quality_scan",
    "stored_report",
]

DEGENERATE_TAGS = ("empty", "repetitive", "cut off", "gibberish")
DUPLICATE_TAGS = ("duplicate", "near-duplicate")
TAGS = DEGENERATE_TAGS + DUPLICATE_TAGS
OVERRULED_SETTING = "quality.overruled"
SCAN_SETTING = "quality.scan"
SCAN_VERSION = 1

NEAR_JACCARD = 0.8
NEAR_RATIO = 0.92
_WORD = re.compile(r"\w+", re.UNICODE)
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_CODE_BLOCK = re.compile(r"(```|~~~).*?(\1|\Z)", re.DOTALL)
_LOOP = re.compile(r"(.{2,40}?)\1{4,}", re.DOTALL)  # a short piece 5+ times back to back
_VOWELS = set("aeiouyAEIOUY")
_ENDS = set(".!?…:;)]}\"'`*_>|")
_STRUCTURED_LINE = re.compile(r"^\s*([-*+>|#]|\d+[.)]\s|```|~~~)")


@dataclass(frozen=True)
class QualityFlag:
    tag: str
    """One of TAGS."""
    detail: str = ""
    """A short reason in our words (never quotes the text)."""
    other: Optional[int] = None
    """For duplicates: the response id this one copies."""


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


# ---- degenerate outputs ---------------------------------------------------------------------------


def _repetitive(text: str, words: list[str]) -> Optional[str]:
    if len(words) >= 12:
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        repeated = 1.0 - len(set(grams)) / len(grams)
        if repeated >= 0.5:
            return f"{repeated:.0%} of its 4-word phrases repeat"
    lines = [ln.strip().lower() for ln in text.splitlines() if len(ln.split()) >= 3]
    if lines:
        most = max(lines.count(ln) for ln in set(lines))
        if most >= 3 and most * 2 >= len(lines):
            return f"one line repeats {most} times"
    head = text[:4000]
    m = _LOOP.search(head)
    if m and len(m.group(0)) >= 20 and len(m.group(0)) * 3 >= len(head.strip()):
        return "a short piece repeats back to back"
    return None


def _cut_off(text: str, origin: Optional[dict]) -> Optional[str]:
    origin = origin or {}
    if origin.get("truncated") or origin.get("finish_reason") == "length":
        return "generation stopped at the token limit"
    if len(_FENCE.findall(text)) % 2 == 1:
        return "stops inside a code block"
    lines = [ln for ln in text.rstrip().splitlines() if ln.strip()]
    if not lines:
        return None
    last = lines[-1].rstrip()
    if _STRUCTURED_LINE.match(last) or len(last.split()) < 6 or len(_words(text)) < 12:
        return None  # lists, headings, tables, code and short replies end as they like
    if last[-1] not in _ENDS and (last[-1].isalnum() or last[-1] in ",-(/&"):
        return "stops mid-sentence"
    return None


def _gibberish(text: str, words: list[str]) -> Optional[str]:
    prose = _CODE_BLOCK.sub(" ", text)
    visible = len("".join(prose.split()))  # characters that are not whitespace
    if visible < 20:
        return None
    letters = len(_LETTERS.findall(prose))
    if letters / visible < 0.45:
        return f"only {letters / visible:.0%} of its characters are letters"
    ascii_words = [
        w for w in _WORD.findall(prose) if w.isascii() and w.isalpha() and len(w) >= 4 and not w.isupper()
    ]  # acronyms: HTML, SQL
    if len(ascii_words) >= 3:
        no_vowel = sum(1 for w in ascii_words if not (set(w) & _VOWELS))
        if no_vowel / len(ascii_words) > 0.3:
            return f"{no_vowel} of {len(ascii_words)} words have no vowel"
    long = sum(1 for w in words if len(w) > 24 and not w.isdigit())
    if words and long / len(words) > 0.2:
        return "many very long words"
    return None


def degenerate(text: str, origin: Optional[dict] = None) -> list[QualityFlag]:
    """Degenerate-output findings for one candidate (empty, repetitive, cut off, gibberish)."""
    words = _words(text)
    if not words:
        return [QualityFlag("empty", "no words")]
    out = []
    for tag, reason in (
        ("repetitive", _repetitive(text, words)),
        ("cut off", _cut_off(text, origin)),
        ("gibberish", _gibberish(text, words)),
    ):
        if reason:
            out.append(QualityFlag(tag, reason))
    return out


# ---- duplicates -----------------------------------------------------------------------------------


def _shingles(words: list[str]) -> set:
    if len(words) < 2:
        return set(words)
    return {(a, b) for a, b in zip(words, words[1:])}


def _similarity(a_norm: str, b_norm: str, a_sh: set, b_sh: set) -> float:
    union = len(a_sh | b_sh)
    jac = len(a_sh & b_sh) / union if union else 1.0
    if jac >= NEAR_JACCARD:
        return jac
    if max(len(a_norm), len(b_norm)) <= 400 and jac >= 0.3:
        # short replies that differ by a word or two: bigram sets move a lot, characters barely
        # ratio() is quadratic; the length bound (difflib's real_quick_ratio) and quick_ratio (letter
        # counts) are upper bounds on it, so checking them first skips most pairs and changes no finding
        if 2 * min(len(a_norm), len(b_norm)) >= NEAR_RATIO * (len(a_norm) + len(b_norm)):
            matcher = difflib.SequenceMatcher(None, a_norm, b_norm, autojunk=False)
            if matcher.quick_ratio() >= NEAR_RATIO:
                ratio = matcher.ratio()
                if ratio >= NEAR_RATIO:
                    return ratio
    return jac


def duplicates(responses: Sequence[tuple[int, str]]) -> dict[int, QualityFlag]:
    """{response id: finding} for candidates that copy an earlier one of the same prompt (the earliest
    of a group is left unmarked, so merging keeps one)."""
    prepared = []
    for rid, text in responses:
        words = _words(text)
        prepared.append((rid, _normal(text), _shingles(words), bool(words)))
    out: dict[int, QualityFlag] = {}
    for j in range(len(prepared)):
        rid, norm, sh, has_words = prepared[j]
        if not has_words:
            continue  # empty ones are flagged as empty, not as copies of each other
        for i in range(j):
            oid, onorm, osh, o_words = prepared[i]
            if not o_words or oid in out:
                continue
            if norm == onorm:
                out[rid] = QualityFlag("duplicate", "the same text as another candidate", oid)
                break
            sim = _similarity(norm, onorm, sh, osh)
            if sim >= NEAR_JACCARD:
                out[rid] = QualityFlag("near-duplicate", f"{sim:.0%} the same as another candidate", oid)
                break
    return out


def check_candidates(
    responses: Sequence[Any], overrules: Optional[dict[int, set[str]]] = None
) -> dict[int, list[QualityFlag]]:
    """{response id: findings} for one prompt's candidates (objects with .id, .text and .origin, as
    core.project.Response), without the ones the expert overruled. Ids without findings are absent."""
    overrules = overrules or {}
    out: dict[int, list[QualityFlag]] = {}
    for r in responses:
        found = degenerate(r.text, getattr(r, "origin", None))
        if found:
            out[r.id] = found
    for rid, flag in duplicates([(r.id, r.text) for r in responses]).items():
        out.setdefault(rid, []).append(flag)
    for rid in list(out):
        kept = [f for f in out[rid] if f.tag not in overrules.get(rid, ())]
        if kept:
            out[rid] = kept
        else:
            del out[rid]
    return out


# ---- overrules (encrypted settings) ---------------------------------------------------------------


def overruled(project) -> dict[int, set[str]]:
    """{response id: tags the expert said are not a problem}."""
    raw = project.get_setting(OVERRULED_SETTING, {}) or {}
    return {int(k): set(v) for k, v in raw.items()}


def set_overruled(project, response_id: int, tag: str, overrule: bool = True) -> dict[int, set[str]]:
    """Overrule (or restore) one automatic finding on one candidate. Returns the new overrules."""
    from core.errors import UserError

    if tag not in TAGS:
        raise UserError(f"Unknown quality tag {tag!r}; use one of {', '.join(TAGS)}.")
    project.response(response_id)  # UserError when unknown: nothing is written
    current = overruled(project)
    tags = current.setdefault(int(response_id), set())
    if overrule:
        tags.add(tag)
    else:
        tags.discard(tag)
        if not tags:
            del current[int(response_id)]
    project.set_setting(OVERRULED_SETTING, {str(k): sorted(v) for k, v in current.items()})
    return current


# ---- the scan behind the Data page's counts -------------------------------------------------------


@dataclass
class QualityReport:
    responses: int = 0
    """Candidates checked (all of the project's, eval answers excluded)."""
    counts: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TAGS})
    """Candidates with each finding, overruled ones excluded."""
    prompts_affected: int = 0
    """Prompts with at least one finding left."""
    overruled: int = 0
    """Findings the expert overruled."""
    seconds: float = 0.0

    @property
    def flagged(self) -> int:
        return sum(self.counts.values())

    def text(self) -> str:
        if not self.responses:
            return "Quality checks: no candidates yet."
        parts = [f"{n:,} {tag}" for tag, n in self.counts.items() if n]
        found = " · ".join(parts) if parts else "nothing found"
        over = f" · {self.overruled:,} overruled by you" if self.overruled else ""
        return f"Quality checks on {self.responses:,} candidates: {found}{over}."


def _group_flags(project, pids: Sequence[int]) -> dict[int, list[str]]:
    """{response id: tags} for the given prompts' candidates (no overrules applied)."""
    found: dict[int, list[str]] = {}
    for pid in pids:
        USER_ACTIVITY.step_aside()  # a background job: make way for the expert between prompts
        responses = [r for r in project.responses(pid) if r.origin.get("kind") != "eval"]
        for rid, flags in check_candidates(responses).items():
            found[rid] = [f.tag for f in flags]
    return found


def quality_scan(project, *, chunk: int = 500, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Job: check every candidate; returns a `QualityReport`. Incremental: findings are cached in the
    encrypted settings with the highest response id seen, and only prompts with newer responses are
    checked again (responses never change once stored)."""
    t0 = time.monotonic()
    conn = project._conn()
    cache = project.get_setting(SCAN_SETTING, None) or {}
    if cache.get("version") != SCAN_VERSION:
        cache = {}
    upto = int(cache.get("upto", 0))
    flags: dict[str, list[str]] = dict(cache.get("flags", {}))
    top = conn.execute("SELECT coalesce(max(id), 0) FROM responses").fetchone()[0]
    if top < upto:  # responses were removed (a restore): start again
        upto, flags = 0, {}
    pids = [
        r[0] for r in conn.execute("SELECT DISTINCT prompt_id FROM responses WHERE id > ? ORDER BY prompt_id", (upto,))
    ]
    yield Progress(0, len(pids), "checking candidates")
    for start in range(0, len(pids), chunk):
        cancel.raise_if_cancelled()
        part = pids[start : start + chunk]
        found = _group_flags(project, part)
        stale = {
            r[0]
            for r in conn.execute(f"SELECT id FROM responses WHERE prompt_id IN ({','.join('?' * len(part))})", part)
        }
        for rid in stale:
            flags.pop(str(rid), None)
        flags.update({str(k): v for k, v in found.items()})
        yield Progress(min(start + chunk, len(pids)), len(pids), "checking candidates")
    if pids:
        project.set_setting(SCAN_SETTING, {"version": SCAN_VERSION, "upto": top, "flags": flags})
    report = _report(project, flags)
    report.seconds = time.monotonic() - t0
    return report


def _report(project, flags: dict[str, list[str]]) -> QualityReport:
    conn = project._conn()
    over = overruled(project)
    report = QualityReport(responses=conn.execute("SELECT count(*) FROM responses").fetchone()[0])
    prompt_of = {}
    if flags:
        ids = [int(k) for k in flags]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            prompt_of.update(
                conn.execute(
                    f"SELECT id, prompt_id FROM responses WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchall()
            )
    affected = set()
    for key, tags in flags.items():
        rid = int(key)
        left = [t for t in tags if t not in over.get(rid, ())]
        report.overruled += len(tags) - len(left)
        for t in left:
            report.counts[t] = report.counts.get(t, 0) + 1
        if left and rid in prompt_of:
            affected.add(prompt_of[rid])
    report.prompts_affected = len(affected)
    return report


def stored_report(project) -> Optional[QualityReport]:
    """The counts from the last scan (no checking), or None before the first."""
    cache = project.get_setting(SCAN_SETTING, None)
    if not cache or cache.get("version") != SCAN_VERSION:
        return None
    return _report(project, dict(cache.get("flags", {})))


def flagged_pairs(responses: Sequence[Any], overrules: Optional[dict[int, set[str]]] = None) -> set[frozenset]:
    """Pairs of response ids that are copies of each other (their order teaches nothing)."""
    out = set()
    for rid, flag in duplicates([(r.id, r.text) for r in responses]).items():
        if flag.tag not in (overrules or {}).get(rid, ()):
            out.add(frozenset((rid, flag.other)))
    return out


def summary(flags: Iterable[QualityFlag]) -> str:
    """'repetitive · near-duplicate of another' style text for a card."""
    return " · ".join(f.tag for f in flags)
