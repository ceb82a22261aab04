"""Judgments (rankings, pairs, ratings, skips, undo), the pairs they imply, and the annotation queue."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Iterable, Optional, Sequence

from core.errors import UserError
from core.project.records import PAIRWISE_RESULTS, Judgment, Pair


class JudgmentsMixin:
    """Part of `Project` (core/project/store.py): judgments and the annotation queue."""

    # ---- judgments --------------------------------------------------------------------------------

    def _record(
        self,
        prompt_id: int,
        kind: str,
        subject: str,
        purpose: str,
        *,
        flags: Iterable[str],
        comment: str,
        seconds: float,
        **cols: Any,
    ) -> int:
        if purpose not in ("annotation", "consistency", "evaluation"):
            raise UserError(f"Unknown judgment purpose {purpose!r}.")
        flags = tuple(flags)
        with self.transaction() as conn:
            jid = self._next_id(conn, "judgments")
            previous = None
            if purpose != "consistency":  # a consistency re-check never replaces the original
                row = conn.execute(
                    "SELECT id FROM judgments WHERE prompt_id=? AND kind=? AND subject=? AND +purpose=? "
                    "AND +status='current' ORDER BY id DESC LIMIT 1",
                    (prompt_id, kind, subject, purpose),
                ).fetchone()
                if row:
                    previous = row[0]
                    conn.execute("UPDATE judgments SET status='superseded' WHERE id=?", (previous,))
            if kind != "skip" and purpose == "annotation":
                # A real judgment ends any skip of this prompt (kept as history).
                conn.execute(
                    "UPDATE judgments SET status='superseded' WHERE prompt_id=? AND +kind='skip' AND +status='current'",
                    (prompt_id,),
                )
            enc = self._cipher
            conn.execute(
                "INSERT INTO judgments(id, prompt_id, kind, subject, purpose, status, tiers, a, b, choice, "
                "ratings, flags, comment, seconds, created, replaces) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    jid,
                    prompt_id,
                    kind,
                    subject,
                    purpose,
                    "current",
                    cols.get("tiers"),
                    cols.get("a"),
                    cols.get("b"),
                    cols.get("choice"),
                    cols.get("ratings"),
                    enc.encrypt_json("judgments", "flags", jid, list(flags)) if flags else None,
                    enc.encrypt("judgments", "comment", jid, comment) if comment else None,
                    float(seconds),
                    time.time(),
                    previous,
                ),
            )
            return jid

    def _response_ids(self, conn: sqlite3.Connection, prompt_id: int) -> set[int]:
        return {r[0] for r in conn.execute("SELECT id FROM responses WHERE prompt_id=?", (prompt_id,))}

    def record_ranking(
        self,
        prompt_id: int,
        tiers: Sequence[Sequence[int]],
        *,
        flags: Iterable[str] = (),
        comment: str = "",
        seconds: float = 0.0,
        purpose: str = "annotation",
    ) -> int:
        """Rank a prompt's responses best-first; each tier is a set of tied response ids."""
        tiers = [[int(r) for r in tier] for tier in tiers if len(tier)]
        flat = [r for tier in tiers for r in tier]
        if len(flat) != len(set(flat)):
            raise UserError("A ranking lists the same response twice.")
        unknown = set(flat) - self._response_ids(self._conn(), prompt_id)
        if unknown:
            raise UserError(f"Ranking names responses {sorted(unknown)} that do not belong to prompt {prompt_id}.")
        return self._record(
            prompt_id, "ranking", "", purpose, flags=flags, comment=comment, seconds=seconds, tiers=json.dumps(tiers)
        )

    def record_pairwise(
        self,
        prompt_id: int,
        a: int,
        b: int,
        result: str,
        *,
        flags: Iterable[str] = (),
        comment: str = "",
        seconds: float = 0.0,
        purpose: str = "annotation",
    ) -> int:
        """A pairwise choice: result is 'a', 'b', 'tie' or 'both_bad'."""
        if result not in PAIRWISE_RESULTS:
            raise UserError(f"Unknown pairwise result {result!r}; use one of {', '.join(PAIRWISE_RESULTS)}.")
        if a == b:
            raise UserError("A pairwise judgment needs two different responses.")
        unknown = {a, b} - self._response_ids(self._conn(), prompt_id)
        if unknown:
            raise UserError(f"Responses {sorted(unknown)} do not belong to prompt {prompt_id}.")
        subject = f"{min(a, b)}-{max(a, b)}"
        return self._record(
            prompt_id,
            "pairwise",
            subject,
            purpose,
            flags=flags,
            comment=comment,
            seconds=seconds,
            a=int(a),
            b=int(b),
            choice=result,
        )

    def record_ratings(
        self,
        prompt_id: int,
        ratings: dict[int, float],
        *,
        flags: Iterable[str] = (),
        comment: str = "",
        seconds: float = 0.0,
        purpose: str = "annotation",
    ) -> int:
        """Per-response ratings (the GUI uses 1-7; imported scores are kept as given)."""
        unknown = set(int(r) for r in ratings) - self._response_ids(self._conn(), prompt_id)
        if unknown:
            raise UserError(f"Ratings name responses {sorted(unknown)} that do not belong to prompt {prompt_id}.")
        clean = {str(int(k)): float(v) for k, v in ratings.items()}
        return self._record(
            prompt_id, "rating", "", purpose, flags=flags, comment=comment, seconds=seconds, ratings=json.dumps(clean)
        )

    def record_skip(self, prompt_id: int, *, seconds: float = 0.0) -> int:
        return self._record(prompt_id, "skip", "", "annotation", flags=(), comment="", seconds=seconds)

    def undo_judgment(self, judgment_id: int) -> None:
        """Mark a judgment undone (kept as history) and bring back the one it replaced."""
        with self.transaction() as conn:
            row = conn.execute("SELECT status, replaces FROM judgments WHERE id=?", (judgment_id,)).fetchone()
            if row is None:
                raise UserError(f"No judgment with id {judgment_id}.")
            if row[0] != "current":
                raise UserError(f"Judgment {judgment_id} is not current; nothing to undo.")
            conn.execute("UPDATE judgments SET status='undone' WHERE id=?", (judgment_id,))
            if row[1] is not None:
                conn.execute("UPDATE judgments SET status='current' WHERE id=? AND status='superseded'", (row[1],))

    _JUDGMENT_COLS = (
        "id, prompt_id, kind, purpose, status, tiers, a, b, choice, ratings, flags, comment, seconds, created, replaces"
    )

    def _judgment_from_row(self, row: Sequence[Any]) -> Judgment:
        (jid, pid, kind, purpose, status, tiers, a, b, choice, ratings, flags, comment, seconds, created, replaces) = (
            row
        )
        dec = self._cipher
        return Judgment(
            jid,
            pid,
            kind,
            purpose,
            status,
            tiers=json.loads(tiers) if tiers else None,
            a=a,
            b=b,
            choice=choice,
            ratings={int(k): v for k, v in json.loads(ratings).items()} if ratings else None,
            flags=tuple(dec.decrypt_json("judgments", "flags", jid, flags) or ()),
            comment=dec.decrypt("judgments", "comment", jid, comment) or "",
            seconds=seconds or 0.0,
            created=created,
            replaces=replaces,
        )

    def judgments(
        self,
        prompt_id: Optional[int] = None,
        kind: Optional[str] = None,
        purpose: Optional[str] = "annotation",
        include_history: bool = False,
    ) -> list[Judgment]:
        """Current judgments (or all, with history), oldest first."""
        clauses, args = [], []
        if not include_history:
            clauses.append("status='current'")
        for col, val in (("prompt_id", prompt_id), ("kind", kind), ("purpose", purpose)):
            if val is not None:
                clauses.append(f"{col}=?")
                args.append(val)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._conn().execute(f"SELECT {self._JUDGMENT_COLS} FROM judgments{where} ORDER BY id", args)
        return [self._judgment_from_row(r) for r in rows]

    def judgment(self, judgment_id: int) -> Judgment:
        row = self._conn().execute(f"SELECT {self._JUDGMENT_COLS} FROM judgments WHERE id=?", (judgment_id,)).fetchone()
        if row is None:
            raise UserError(f"No judgment with id {judgment_id}.")
        return self._judgment_from_row(row)

    def preference_pairs(self, split: Optional[str] = None, margin_mode: str = "none") -> list[Pair]:
        """Every (chosen, rejected) pair implied by the current annotation judgments."""
        from core.training import pairs as P

        split_of = {} if split is None else dict(self._conn().execute("SELECT id, split FROM prompts").fetchall())
        pairs: list[Pair] = []
        for j in self.judgments(purpose="annotation"):
            if split is not None and split_of.get(j.prompt_id) != split:
                continue
            if j.kind == "ranking":
                implied = P.pairs_from_ranking(j.tiers, margin_mode)
            elif j.kind == "pairwise":
                implied = P.pairs_from_pairwise(j.a, j.b, j.choice, margin_mode)
            elif j.kind == "rating":
                implied = P.pairs_from_ratings(j.ratings, margin_mode)
            else:
                continue
            for chosen, rejected, margin in implied:
                pairs.append(Pair(j.prompt_id, chosen, rejected, margin))
        return pairs

    # ---- annotation queue and status (fast paths for the GUI) -------------------------------------
    # Unary `+` on status/purpose keeps SQLite on the (prompt_id, status) index: without planner
    # statistics it would otherwise probe (status, purpose) and scan every current judgment per prompt.

    def next_unjudged(
        self, after_position: int = 0, split: Optional[str] = None, include_skipped: bool = False
    ) -> Optional[int]:
        """The first prompt after `after_position`, in project order, with no current judgment."""
        sql = (
            "SELECT p.id FROM prompts p WHERE p.position > ? "
            + ("AND p.split = ? " if split else "")
            + "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.prompt_id = p.id AND +j.status='current' "
            + "AND +j.purpose='annotation'"
            + (" AND j.kind != 'skip'" if include_skipped else "")
            + ") "
            + "ORDER BY p.position LIMIT 1"
        )
        args: list[Any] = [after_position] + ([split] if split else [])
        row = self._conn().execute(sql, args).fetchone()
        return row[0] if row else None

    def prompt_status(self) -> list[tuple[int, int, str, str, int, int]]:
        """One row per prompt in project order: (id, position, split, status, n_responses, flagged),
        status being unranked | ranked | skipped. No decryption: fast at 100,000 rows."""
        rows = (
            self._conn()
            .execute(
                "SELECT p.id, p.position, p.split, "
                " (SELECT group_concat(kind) FROM judgments j WHERE j.prompt_id=p.id AND +j.status='current' "
                "  AND +j.purpose='annotation'), "
                " (SELECT count(*) FROM responses r WHERE r.prompt_id=p.id), "
                " (SELECT count(*) FROM judgments j WHERE j.prompt_id=p.id AND +j.status='current' "
                "  AND +j.purpose='annotation' AND j.flags IS NOT NULL) "
                "FROM prompts p ORDER BY p.position"
            )
            .fetchall()
        )
        out = []
        for pid, pos, split, kinds, n, flagged in rows:
            if not kinds:
                status = "unranked"
            elif set(kinds.split(",")) == {"skip"}:
                status = "skipped"
            else:
                status = "ranked"
            out.append((pid, pos, split, status, n, 1 if flagged else 0))
        return out

    def counts(self) -> dict[str, int]:
        conn = self._conn()
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "prompts": one("SELECT count(*) FROM prompts"),
            "heldout_prompts": one("SELECT count(*) FROM prompts WHERE split='heldout'"),
            "responses": one("SELECT count(*) FROM responses"),
            "judged_prompts": one(
                "SELECT count(DISTINCT prompt_id) FROM judgments WHERE status='current' "
                "AND purpose='annotation' AND kind!='skip'"
            ),
            "ranked_prompts": one(
                "SELECT count(DISTINCT prompt_id) FROM judgments WHERE status='current' "
                "AND purpose='annotation' AND kind='ranking'"
            ),
            "pairs": len(self.preference_pairs()),
            "runs": one("SELECT count(*) FROM runs"),
        }
