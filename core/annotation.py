"""The annotation session: queue, blind presentation, ranking builder, pairwise, rating, undo, progress
and the expert's consistency with themselves. Qt-free; the Annotate page is a thin view over this.

Everything is in terms of *display indices*: the position of a candidate on screen (card 1 is index 0).
Candidates are shuffled per item with a seed fixed for the session, so the same item shows the same
order whenever it comes back, and their origin is never shown. The session maps indices back to
response ids when it records a judgment; every record_* call has committed when it returns.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from core.errors import UserError
from core.project import Judgment, Project, Prompt, Response

MODES = ("ranking", "pairwise", "rating")
KIND_OF_MODE = {"ranking": "ranking", "pairwise": "pairwise", "rating": "rating"}
PAIRWISE_KEYS = {"a": "a", "b": "b", "t": "tie", "x": "both_bad"}
RATING_MIN, RATING_MAX = 1, 7
DEFAULT_CONSISTENCY_SHARE = 0.05
CONSISTENCY_SETTING = "annotation.consistency_share"
QUEUE_ORDERS = ("project", "informative")  # core.active.ORDERS (the informative order is computed there)
ORDER_SETTING = "annotation.queue_order"


# ---- ranking builder ------------------------------------------------------------------------------


class RankingBuilder:
    """Builds tiers best-first from key presses: place(i) appends candidate i below the last one;
    tie() makes the *next* placement join the last tier ("2 = 4" ties 2 and 4); undo() takes back the
    last placement (or an armed tie)."""

    def __init__(self, n: int):
        self.n = n
        self.tiers: list[list[int]] = []
        self.tie_armed = False
        self._order: list[int] = []  # placements, oldest first (the last is always in tiers[-1])

    @property
    def placed(self) -> list[int]:
        return list(self._order)

    @property
    def remaining(self) -> list[int]:
        done = set(self._order)
        return [i for i in range(self.n) if i not in done]

    @property
    def complete(self) -> bool:
        return len(self._order) == self.n

    def place(self, i: int) -> bool:
        if not 0 <= i < self.n or i in self._order:
            return False
        if self.tie_armed and self.tiers:
            self.tiers[-1].append(i)
        else:
            self.tiers.append([i])
        self.tie_armed = False
        self._order.append(i)
        return True

    def tie(self) -> bool:
        """Arm a tie with the last placed candidate; pressing it again disarms."""
        if not self.tiers or self.complete:
            return False
        self.tie_armed = not self.tie_armed
        return True

    def undo(self) -> bool:
        if self.tie_armed:
            self.tie_armed = False
            return True
        if not self._order:
            return False
        i = self._order.pop()
        self.tiers[-1].remove(i)
        if not self.tiers[-1]:
            self.tiers.pop()
        return True

    def clear(self) -> None:
        self.tiers, self._order, self.tie_armed = [], [], False

    def set_tiers(self, tiers: Sequence[Sequence[int]]) -> None:
        """Replace the whole state (prefill from a stored ranking, or a drag-and-drop reorder)."""
        self.clear()
        for tier in tiers:
            for k, i in enumerate(tier):
                if k:
                    self.tie_armed = True
                self.place(int(i))
        self.tie_armed = False

    def set_order(self, order: Sequence[int], tied_with_previous: Sequence[bool]) -> None:
        tiers: list[list[int]] = []
        for i, tied in zip(order, tied_with_previous):
            if tied and tiers:
                tiers[-1].append(i)
            else:
                tiers.append([i])
        self.set_tiers(tiers)

    def final_tiers(self) -> list[list[int]]:
        """The tiers to submit. A single unplaced candidate goes last (pressing it adds nothing)."""
        left = self.remaining
        if len(left) == 1:
            if self.tie_armed and self.tiers:
                return [list(t) for t in self.tiers[:-1]] + [self.tiers[-1] + left]
            return [list(t) for t in self.tiers] + [left]
        if left:
            raise UserError(f"Place every candidate before submitting ({self.n - len(left)} of {self.n} placed).")
        return [list(t) for t in self.tiers]

    def rank_of(self, i: int) -> Optional[int]:
        """1-based tier number of candidate i, or None when not placed."""
        for k, tier in enumerate(self.tiers):
            if i in tier:
                return k + 1
        return None


# ---- items and progress ---------------------------------------------------------------------------


@dataclass
class Item:
    """One screen: a prompt and its candidates in blind display order."""

    prompt: Prompt
    candidates: list[Response]
    purpose: str  # "annotation" | "consistency"
    mode: str
    pair: Optional[tuple[int, int]] = None  # pairwise mode: display indices shown as A and B
    existing: Optional[Judgment] = None  # the current judgment of this kind (for prefill), if any
    quality: dict[int, list] = field(default_factory=dict)
    """Display index -> core.quality findings (duplicates, degenerate outputs) the expert has not overruled."""
    shown_at: float = field(default_factory=time.monotonic)

    @property
    def prompt_id(self) -> int:
        return self.prompt.id

    @property
    def k(self) -> int:
        return len(self.candidates)

    def index_of(self, response_id: int) -> int:
        for i, r in enumerate(self.candidates):
            if r.id == response_id:
                return i
        raise KeyError(response_id)

    def prefill_tiers(self) -> Optional[list[list[int]]]:
        """The stored ranking in display indices (responses added since then are left unplaced)."""
        if self.existing is None or self.existing.kind != "ranking" or not self.existing.tiers:
            return None
        ids = {r.id: i for i, r in enumerate(self.candidates)}
        return [[ids[r] for r in tier if r in ids] for tier in self.existing.tiers if any(r in ids for r in tier)]

    def prefill_ratings(self) -> dict[int, int]:
        if self.existing is None or self.existing.kind != "rating" or not self.existing.ratings:
            return {}
        ids = {r.id: i for i, r in enumerate(self.candidates)}
        return {ids[r]: int(round(v)) for r, v in self.existing.ratings.items() if r in ids}


@dataclass
class ProgressInfo:
    judged: int
    """Prompts with a current (non-skip) annotation judgment."""
    total: int
    """Prompts in the queue's split."""
    today: int
    """Judgments submitted today (local time), annotation only, not undone."""
    seconds_today: float
    """Time spent on those judgments (shown -> submitted)."""

    @property
    def per_hour(self) -> Optional[float]:
        if self.today == 0 or self.seconds_today <= 0:
            return None
        return self.today * 3600.0 / self.seconds_today

    @property
    def seconds_per_item(self) -> Optional[float]:
        return self.seconds_today / self.today if self.today and self.seconds_today > 0 else None

    def text(self) -> str:
        pace = ""
        if self.seconds_per_item is not None:
            pace = f" · {self.seconds_per_item:.1f} s/item"
        return f"{self.judged:,} of {self.total:,} judged · today {self.today:,}{pace}"


def _midnight() -> float:
    today = _dt.date.today()
    return _dt.datetime(today.year, today.month, today.day).timestamp()


# ---- the session ----------------------------------------------------------------------------------


class AnnotationSession:
    """The annotation queue over an open project. Not thread-safe: the GUI thread owns it."""

    def __init__(
        self,
        project: Project,
        mode: str = "ranking",
        split: Optional[str] = None,
        consistency_share: Optional[float] = None,
        seed: Optional[str] = None,
        rng: Optional[random.Random] = None,
        order: Optional[str] = None,
    ):
        if mode not in MODES:
            raise UserError(f"Unknown annotation mode {mode!r}; use one of {', '.join(MODES)}.")
        if order is not None and order not in QUEUE_ORDERS:
            raise UserError(f"Unknown queue order {order!r}; use one of {', '.join(QUEUE_ORDERS)}.")
        self.project = project
        self.mode = mode
        self.split = split
        self.seed = seed if seed is not None else secrets.token_hex(8)
        self.rng = rng or random.Random()
        if consistency_share is None:
            consistency_share = project.get_setting(CONSISTENCY_SETTING, DEFAULT_CONSISTENCY_SHARE)
        self.consistency_share = float(consistency_share)
        self._db = project.db
        self.history: list[int] = []  # annotation prompt ids shown, in order
        self.index = -1  # position of the current annotation item in history
        self.current: Optional[Item] = None
        self._undo: list[tuple[int, int, str, Optional[tuple[int, int]]]] = []  # (jid, pid, purpose, pair)
        self._checked: set[int] = set()  # prompts re-shown for consistency this session
        self._pending_check = False
        self.progress = self._count_progress()
        # The informative order (core.active.refresh_queue, run in the background): prompt ids, most
        # informative first, and how far this session has walked it.
        self.order = order or project.get_setting(ORDER_SETTING, "project")
        if self.order not in QUEUE_ORDERS:
            self.order = "project"
        self.queue_order = None  # core.active.QueueOrder in use, or None
        self._ranked: list[int] = []
        self._ranked_pos = 0
        from core.quality import overruled

        self._overrules = overruled(project)
        if self.order == "informative":
            from core.active import stored_order

            self.apply_order(stored_order(project))

    # ---- settings -----------------------------------------------------------------------------

    def set_consistency_share(self, share: float) -> None:
        share = float(share)
        if not 0.0 <= share <= 1.0:
            raise UserError("The consistency share must be between 0 and 1 (e.g. 0.05 for 5%).")
        self.consistency_share = share
        self.project.set_setting(CONSISTENCY_SETTING, share)

    def set_mode(self, mode: str) -> Optional[Item]:
        """Switch mode; the current item is shown again in the new mode."""
        if mode not in MODES:
            raise UserError(f"Unknown annotation mode {mode!r}; use one of {', '.join(MODES)}.")
        self.mode = mode
        if self.current is None:
            return self.start()
        if self.current.purpose == "consistency":  # a re-check of another kind makes no sense now
            return self._show_annotation_at(self.index) if self.index >= 0 else self._advance()
        self.current = self._load(self.current.prompt_id, "annotation")
        return self.current

    def set_order(self, order: str) -> None:
        """ "project" or "informative" (saved for the next session). The informative order itself comes
        from `apply_order` (the refresh job's result); until then the project order is used."""
        if order not in QUEUE_ORDERS:
            raise UserError(f"Unknown queue order {order!r}; use one of {', '.join(QUEUE_ORDERS)}.")
        self.order = order
        self.project.set_setting(ORDER_SETTING, order)
        if order == "informative" and self.queue_order is None:
            from core.active import stored_order

            self.apply_order(stored_order(self.project))

    def apply_order(self, queue_order) -> bool:
        """Use a `core.active.QueueOrder` from now on (the current item stays). Ignored when it is for
        another split or not ready. Cheap: no query."""
        if queue_order is None or not queue_order.ready or queue_order.split != self.split:
            return False
        self.queue_order = queue_order
        self._ranked = list(queue_order.prompt_ids)
        self._ranked_pos = 0
        return True

    @property
    def informative(self) -> bool:
        """The informative order is selected and one is in use."""
        return self.order == "informative" and bool(self._ranked)

    def overrule_quality(self, index: int, tag: str, overrule: bool = True) -> Optional[Item]:
        """The expert says an automatic finding on candidate `index` of the current item is not a
        problem (or takes that back). Saved at once; returns the current item with its findings updated."""
        from core.quality import set_overruled

        item = self._require()
        rid = item.candidates[index].id
        self._overrules = set_overruled(self.project, rid, tag, overrule)
        item.quality = self._quality(item.candidates)
        return item

    def display_index(self, prompt_id: int, response_id: int) -> Optional[int]:
        """Where a response shows (0-based) when its prompt is an annotation item of this session."""
        for i, r in enumerate(self._shuffled(prompt_id, "annotation")):
            if r.id == response_id:
                return i
        return None

    # ---- loading items ------------------------------------------------------------------------

    def _quality(self, candidates: list[Response]) -> dict[int, list]:
        from core.quality import check_candidates

        found = check_candidates(candidates, self._overrules)
        return {i: found[r.id] for i, r in enumerate(candidates) if r.id in found}

    def _shuffled(self, pid: int, purpose: str) -> list[Response]:
        # Blind-evaluation answers are judged only in the evaluation queue, never as ordinary candidates.
        candidates = [r for r in self.project.responses(pid) if r.origin.get("kind") != "eval"]
        # A re-check uses another order, so the expert cannot answer from where things were.
        random.Random(f"{self.seed}:{pid}:{purpose}").shuffle(candidates)
        return candidates

    def _load(self, pid: int, purpose: str, pair_ids: Optional[tuple[int, int]] = None) -> Item:
        prompt = self.project.prompt(pid)
        candidates = self._shuffled(pid, purpose)
        kind = KIND_OF_MODE[self.mode]
        item = Item(prompt, candidates, purpose, self.mode, quality=self._quality(candidates))
        if purpose == "annotation":
            current = self.project.judgments(prompt_id=pid, kind=kind)
        else:
            current = []
        if self.mode == "pairwise" and len(candidates) >= 2:
            item.pair, item.existing = self._choose_pair(item, current, pair_ids)
        elif current:
            item.existing = current[-1]
        return item

    def _choose_pair(
        self, item: Item, current: list[Judgment], pair_ids: Optional[tuple[int, int]]
    ) -> tuple[tuple[int, int], Optional[Judgment]]:
        rng = random.Random(f"{self.seed}:{item.prompt_id}:pair:{item.purpose}")
        if pair_ids is not None:
            a, b = item.index_of(pair_ids[0]), item.index_of(pair_ids[1])
            same = [j for j in current if {j.a, j.b} == set(pair_ids)]
            return ((a, b) if rng.random() < 0.5 else (b, a)), (same[-1] if same else None)
        compared = {frozenset((j.a, j.b)) for j in current}
        pairs = list(itertools.combinations(range(item.k), 2))
        rng.shuffle(pairs)
        fresh = [p for p in pairs if frozenset((item.candidates[p[0]].id, item.candidates[p[1]].id)) not in compared]
        a, b = (fresh or pairs)[0]
        if rng.random() < 0.5:
            a, b = b, a
        existing = None
        if not fresh:  # every pair compared: show one again with its stored choice
            ids = {item.candidates[a].id, item.candidates[b].id}
            existing = next((j for j in reversed(current) if {j.a, j.b} == ids), None)
        return (a, b), existing

    def _show_annotation_at(self, index: int) -> Item:
        self.index = index
        self.current = self._load(self.history[index], "annotation")
        return self.current

    def _next_in_queue(self) -> Optional[int]:
        """The informative order's next unjudged prompt not shown yet this session, when there is one;
        else unjudged prompts after the current one in project order, then from the start, then the
        skipped ones."""
        if self.order == "informative":
            pid = self._next_informative()
            if pid is not None:
                return pid
        pos = (
            self.current.prompt.position
            if (self.current and self.current.purpose == "annotation")
            else (self.project.prompt(self.history[self.index]).position if self.index >= 0 else 0)
        )
        here = self.current.prompt_id if self.current else None
        for after, skipped in ((pos, False), (0, False), (pos, True), (0, True)):
            pid = self._next_unjudged(after, skipped)
            if pid is not None and pid != here:
                return pid
        return None

    def _next_informative(self) -> Optional[int]:
        here = self.current.prompt_id if self.current else None
        shown = set(self.history)
        while self._ranked_pos < len(self._ranked):
            pid = self._ranked[self._ranked_pos]
            self._ranked_pos += 1
            if pid != here and pid not in shown and not self._has_any_judgment(pid):
                return pid
        return None

    def _has_any_judgment(self, pid: int) -> bool:
        """A current annotation judgment of any kind, a skip included (one index probe)."""
        return (
            self._db.execute(
                "SELECT 1 FROM judgments WHERE prompt_id=? AND status='current' AND +purpose='annotation' LIMIT 1",
                (pid,),
            ).fetchone()
            is not None
        )

    def _next_unjudged(self, after_position: int, include_skipped: bool) -> Optional[int]:
        return self.project.next_unjudged(after_position, self.split, include_skipped=include_skipped)

    def _pick_consistency(self) -> Optional[tuple[int, Optional[tuple[int, int]]]]:
        """A random already-judged prompt of this mode's kind, not re-checked yet this session.
        Random row id then a range scan on the primary key: O(log n), no ORDER BY random()."""
        kind = KIND_OF_MODE[self.mode]
        top = self._db.execute("SELECT max(id) FROM judgments").fetchone()[0]
        if not top:
            return None
        avoid = self._checked | set(self.history[-20:])
        split_sql = " AND p.split=?" if self.split else ""
        for _ in range(6):
            start = self.rng.randint(1, top)
            rows = self._db.execute(
                "SELECT j.prompt_id, j.a, j.b FROM judgments j JOIN prompts p ON p.id=j.prompt_id "
                "WHERE j.id>=? AND j.status='current' AND j.purpose='annotation' AND j.kind=?"
                + split_sql
                + " ORDER BY j.id LIMIT 8",
                [start, kind] + ([self.split] if self.split else []),
            ).fetchall()
            for pid, a, b in rows:
                if pid not in avoid:
                    return pid, ((a, b) if kind == "pairwise" else None)
        return None

    def _advance(self) -> Optional[Item]:
        """The item after the current one: forward in history if the expert went back, else maybe a
        blind re-check, else the queue."""
        if self._pending_check:
            self._pending_check = False
            picked = self._pick_consistency()
            if picked is not None:
                pid, pair = picked
                self._checked.add(pid)
                self.current = self._load(pid, "consistency", pair)
                return self.current
        if 0 <= self.index < len(self.history) - 1:
            return self._show_annotation_at(self.index + 1)
        pid = self._next_in_queue()
        if pid is None:
            self.current = None
            return None
        self.history.append(pid)
        return self._show_annotation_at(len(self.history) - 1)

    # ---- navigation ---------------------------------------------------------------------------

    def start(self) -> Optional[Item]:
        self.current = None
        pid = self._next_in_queue()
        if pid is None:
            return None
        self.history.append(pid)
        return self._show_annotation_at(len(self.history) - 1)

    def next(self) -> Optional[Item]:
        """Move on without recording anything (the item stays in the queue)."""
        return self._advance()

    def previous(self) -> Optional[Item]:
        if self.current is not None and self.current.purpose == "consistency":
            return self._show_annotation_at(self.index) if self.index >= 0 else self.current
        if self.index > 0:
            return self._show_annotation_at(self.index - 1)
        return self.current

    def goto(self, prompt_id: int) -> Item:
        """Show a given prompt (from the data page); it joins the history after the current one."""
        self.project.prompt(prompt_id)  # UserError if unknown
        self.history.insert(self.index + 1, prompt_id)
        return self._show_annotation_at(self.index + 1)

    def skip(self) -> Optional[Item]:
        item = self._require()
        if item.purpose == "annotation":
            jid = self.project.record_skip(item.prompt_id, seconds=self._elapsed(item))
            self._undo.append((jid, item.prompt_id, "annotation", None))
        return self._advance()

    # ---- submitting ---------------------------------------------------------------------------

    def _require(self) -> Item:
        if self.current is None:
            raise UserError("Nothing to annotate: every prompt in the queue has been judged.")
        return self.current

    @staticmethod
    def _elapsed(item: Item) -> float:
        return round(time.monotonic() - item.shown_at, 3)

    def _has_judgment(self, pid: int) -> bool:
        # Unary + keeps SQLite on the (prompt_id, status) index: the (status, purpose) index would
        # scan every current judgment (milliseconds at 100k).
        return (
            self._db.execute(
                "SELECT 1 FROM judgments WHERE prompt_id=? AND status='current' AND +purpose='annotation' "
                "AND kind!='skip' LIMIT 1",
                (pid,),
            ).fetchone()
            is not None
        )

    def _after_record(
        self, item: Item, jid: int, had: bool, seconds: float, pair: Optional[tuple[int, int]] = None
    ) -> Optional[Item]:
        self._undo.append((jid, item.prompt_id, item.purpose, pair))
        if item.purpose == "annotation":
            if not had:
                self.progress.judged += 1
            self.progress.today += 1
            self.progress.seconds_today += seconds
            self._pending_check = self.consistency_share > 0 and self.rng.random() < self.consistency_share
        return self._advance()

    def _check_mode(self, item: Item, mode: str) -> None:
        if item.mode != mode:
            raise UserError(f"This item is shown in {item.mode} mode, not {mode}.")

    def submit_ranking(
        self, tiers: Sequence[Sequence[int]], flags: Iterable[str] = (), comment: str = ""
    ) -> Optional[Item]:
        """Record tiers of display indices (best first); returns the next item."""
        item = self._require()
        self._check_mode(item, "ranking")
        flat = [i for t in tiers for i in t]
        if sorted(flat) != list(range(item.k)):
            raise UserError(f"A ranking must place each of the {item.k} candidates once.")
        ids = [[item.candidates[i].id for i in tier] for tier in tiers]
        seconds = self._elapsed(item)
        had = item.purpose == "annotation" and self._has_judgment(item.prompt_id)
        jid = self.project.record_ranking(
            item.prompt_id, ids, flags=tuple(flags), comment=comment, seconds=seconds, purpose=item.purpose
        )
        return self._after_record(item, jid, had, seconds)

    def submit_pairwise(self, result: str, flags: Iterable[str] = (), comment: str = "") -> Optional[Item]:
        """result: 'a' (left/A better), 'b', 'tie' or 'both_bad'."""
        item = self._require()
        self._check_mode(item, "pairwise")
        if item.pair is None:
            raise UserError("This prompt has fewer than two candidates to compare.")
        a, b = item.candidates[item.pair[0]].id, item.candidates[item.pair[1]].id
        seconds = self._elapsed(item)
        had = item.purpose == "annotation" and self._has_judgment(item.prompt_id)
        jid = self.project.record_pairwise(
            item.prompt_id, a, b, result, flags=tuple(flags), comment=comment, seconds=seconds, purpose=item.purpose
        )
        return self._after_record(item, jid, had, seconds, (a, b))

    def submit_ratings(self, ratings: dict[int, int], flags: Iterable[str] = (), comment: str = "") -> Optional[Item]:
        """ratings: display index -> 1..7, one per candidate."""
        item = self._require()
        self._check_mode(item, "rating")
        missing = [i + 1 for i in range(item.k) if i not in ratings]
        if missing:
            raise UserError(f"Rate every candidate before submitting (missing: {', '.join(map(str, missing))}).")
        bad = [v for v in ratings.values() if not RATING_MIN <= int(v) <= RATING_MAX]
        if bad:
            raise UserError(f"Ratings go from {RATING_MIN} to {RATING_MAX}.")
        by_id = {item.candidates[i].id: int(v) for i, v in ratings.items()}
        seconds = self._elapsed(item)
        had = item.purpose == "annotation" and self._has_judgment(item.prompt_id)
        jid = self.project.record_ratings(
            item.prompt_id, by_id, flags=tuple(flags), comment=comment, seconds=seconds, purpose=item.purpose
        )
        return self._after_record(item, jid, had, seconds)

    @property
    def last_recorded(self) -> Optional[tuple[int, int, str]]:
        """(judgment id, prompt id, purpose) of the last judgment this session recorded, or None."""
        if not self._undo:
            return None
        jid, pid, purpose, _ = self._undo[-1]
        return jid, pid, purpose

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> Optional[Item]:
        """Undo the last judgment submitted in this session and show its item again."""
        if not self._undo:
            raise UserError("Nothing to undo in this session.")
        jid, pid, purpose, pair = self._undo.pop()
        judgment = self.project.judgment(jid)
        self.project.undo_judgment(jid)
        self._pending_check = False
        if purpose == "annotation" and judgment.kind != "skip":
            if not self._has_judgment(pid):
                self.progress.judged -= 1
            if judgment.created >= _midnight():
                self.progress.today -= 1
                self.progress.seconds_today -= judgment.seconds
        if purpose == "consistency":
            self.current = self._load(pid, "consistency", pair)
            return self.current
        if pid in self.history:
            index = len(self.history) - 1 - self.history[::-1].index(pid)
        else:
            self.history.insert(self.index + 1, pid)
            index = self.index + 1
        item = self._show_annotation_at(index)
        if self.mode == "pairwise" and pair is not None and item.k >= 2:
            self.current = self._load(pid, "annotation", pair)  # the same pair as the undone one
        return self.current

    # ---- progress -----------------------------------------------------------------------------

    def _count_progress(self) -> ProgressInfo:
        db, split = self._db, self.split
        split_sql, args = (" WHERE split=?", [split]) if split else ("", [])
        total = db.execute("SELECT count(*) FROM prompts" + split_sql, args).fetchone()[0]
        judged = db.execute(
            "SELECT count(DISTINCT j.prompt_id) FROM judgments j JOIN prompts p ON p.id=j.prompt_id "
            "WHERE j.status='current' AND j.purpose='annotation' AND j.kind!='skip'"
            + (" AND p.split=?" if split else ""),
            args,
        ).fetchone()[0]
        today, seconds = db.execute(
            "SELECT count(*), coalesce(sum(seconds), 0) FROM judgments WHERE purpose='annotation' "
            "AND kind!='skip' AND status!='undone' AND created>=?",
            (_midnight(),),
        ).fetchone()
        return ProgressInfo(judged, total, today, float(seconds))

    def refresh_progress(self) -> ProgressInfo:
        self.progress = self._count_progress()
        return self.progress


# ---- consistency: did the expert agree with themselves? -------------------------------------------


def kendall_tau_b(x: dict[int, float], y: dict[int, float]) -> Optional[float]:
    """Kendall's tau-b between two scorings (higher = better) over their common keys; None when
    undefined (fewer than two items, or one side all tied)."""
    keys = sorted(set(x) & set(y))
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(keys, 2):
        dx = (x[i] > x[j]) - (x[i] < x[j])
        dy = (y[i] > y[j]) - (y[i] < y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx == dy:
            concordant += 1
        else:
            discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    if denom == 0:
        return None
    return (concordant - discordant) / denom


def tier_scores(tiers: Sequence[Sequence[int]]) -> dict[int, float]:
    """Tiers (best first) as scores where higher is better."""
    return {r: float(len(tiers) - k) for k, tier in enumerate(tiers) for r in tier}


def _pairwise_outcome(j: Judgment):
    if j.choice == "a":
        return ("win", j.a)
    if j.choice == "b":
        return ("win", j.b)
    return (j.choice, None)


@dataclass(frozen=True)
class ConsistencyCheck:
    prompt_id: int
    kind: str
    original_id: int
    check_id: int
    agreed: bool
    """Ranking/rating: the same top choice; pairwise: the same outcome."""
    tau: Optional[float]
    """Kendall tau-b between original and re-check (ranking, rating), None for pairwise."""
    same_top: Optional[bool]


def consistency_checks(project: Project) -> list[ConsistencyCheck]:
    """Each current consistency re-check against the annotation it re-checked: the latest judgment of
    the same kind (and pair) made before it and not undone."""
    checks = project.judgments(purpose="consistency")
    if not checks:
        return []
    originals: dict[int, list[Judgment]] = {}
    for pid in {c.prompt_id for c in checks}:
        originals[pid] = [
            j
            for j in project.judgments(prompt_id=pid, purpose="annotation", include_history=True)
            if j.status != "undone"
        ]
    out = []
    for c in checks:
        candidates = [
            j
            for j in originals[c.prompt_id]
            if j.kind == c.kind and j.id < c.id and (c.kind != "pairwise" or {j.a, j.b} == {c.a, c.b})
        ]
        if not candidates:
            continue
        o = candidates[-1]
        if c.kind == "ranking":
            tau = kendall_tau_b(tier_scores(o.tiers), tier_scores(c.tiers))
            same_top = set(o.tiers[0]) == set(c.tiers[0])
            out.append(ConsistencyCheck(c.prompt_id, c.kind, o.id, c.id, same_top, tau, same_top))
        elif c.kind == "rating":
            tau = kendall_tau_b(o.ratings, c.ratings)
            top = lambda r: {k for k, v in r.items() if v == max(r.values())}  # noqa: E731
            same_top = top(o.ratings) == top(c.ratings)
            out.append(ConsistencyCheck(c.prompt_id, c.kind, o.id, c.id, same_top, tau, same_top))
        elif c.kind == "pairwise":
            agreed = _pairwise_outcome(o) == _pairwise_outcome(c)
            out.append(ConsistencyCheck(c.prompt_id, c.kind, o.id, c.id, agreed, None, None))
    return out


def consistency_summary(checks: Sequence[ConsistencyCheck]) -> dict:
    """{"checks": n, "agreement": share agreed or None, "mean_tau": mean tau-b or None}."""
    taus = [c.tau for c in checks if c.tau is not None]
    return {
        "checks": len(checks),
        "agreement": (sum(c.agreed for c in checks) / len(checks)) if checks else None,
        "mean_tau": (sum(taus) / len(taus)) if taus else None,
    }
