"""Prompts and responses: adding (deduplicated by keyed hashes), reading, splits."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable, Optional, Sequence

from core.errors import UserError
from core.project.records import SPLITS, Prompt, PromptText, Response, _check_prompt, canonical_prompt


class ContentMixin:
    """Part of `Project` (core/project/store.py): prompts and responses."""

    # ---- prompts and responses --------------------------------------------------------------------

    def prompt_hash(self, prompt: PromptText) -> bytes:
        return self._cipher.keyed_hash("prompt", canonical_prompt(prompt))

    def response_hash(self, text: str) -> bytes:
        return self._cipher.keyed_hash("response", text)

    def find_prompt(self, prompt: PromptText) -> Optional[int]:
        row = self._conn().execute("SELECT id FROM prompts WHERE hash=?", (self.prompt_hash(prompt),)).fetchone()
        return row[0] if row else None

    def add_prompt(self, prompt: PromptText, reference: Optional[str] = None, split: str = "train") -> int:
        """Add a prompt (a string or chat messages); returns its id, or the existing id if present."""
        _check_prompt(prompt)
        if split not in SPLITS:
            raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        digest = self.prompt_hash(prompt)
        with self.transaction() as conn:
            row = conn.execute("SELECT id FROM prompts WHERE hash=?", (digest,)).fetchone()
            if row:
                return row[0]
            pid = self._next_id(conn, "prompts")
            enc = self._cipher.encrypt
            conn.execute(
                "INSERT INTO prompts(id, position, split, kind, body, reference, hash, created) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    pid,
                    pid,
                    split,
                    "chat" if isinstance(prompt, list) else "text",
                    enc("prompts", "body", pid, canonical_prompt(prompt)),
                    enc("prompts", "reference", pid, reference),
                    digest,
                    time.time(),
                ),
            )
            return pid

    def add_many(
        self,
        items: Iterable[tuple[PromptText, Optional[str], str, Sequence[str]]],
        origin: Optional[dict] = None,
        cache: Optional[dict] = None,
    ) -> list[tuple[int, list[int], bool, int]]:
        """Bulk add of (prompt, reference, split, response texts) in one transaction, with the same
        dedupe as add_prompt/add_response. Returns (prompt id, response ids, prompt was new, responses added) per item.
        One executemany per table instead of a query per row: imports of 100,000 prompts stay fast.
        Pass the same `cache` dict to successive calls within one transaction to skip reloading hashes."""
        origin = origin or {"kind": "import"}
        enc, now = self._cipher.encrypt, time.time()
        origin_key = self.origin_key(origin)
        origin_json = json.dumps(origin)
        cache = {} if cache is None else cache
        with self.transaction() as conn:
            if "prompts" not in cache:
                cache["prompts"] = {bytes(h): i for h, i in conn.execute("SELECT hash, id FROM prompts")}
                cache["responses"] = {
                    (p, bytes(h)): i for p, h, i in conn.execute("SELECT prompt_id, hash, id FROM responses")
                }
            known_prompts, known_responses = cache["prompts"], cache["responses"]
            next_pid = self._next_id(conn, "prompts")
            next_rid = self._next_id(conn, "responses")
            prompt_rows, response_rows, out = [], [], []
            for prompt, reference, split, texts in items:
                _check_prompt(prompt)
                digest = self.prompt_hash(prompt)
                pid = known_prompts.get(digest)
                is_new = pid is None
                if is_new:
                    pid, next_pid = next_pid, next_pid + 1
                    known_prompts[digest] = pid
                    prompt_rows.append(
                        (
                            pid,
                            pid,
                            split,
                            "chat" if isinstance(prompt, list) else "text",
                            enc("prompts", "body", pid, canonical_prompt(prompt)),
                            enc("prompts", "reference", pid, reference),
                            digest,
                            now,
                        )
                    )
                rids, added = [], 0
                for text in texts:
                    rdigest = self.response_hash(text)
                    rid = known_responses.get((pid, rdigest))
                    if rid is None:
                        rid, next_rid = next_rid, next_rid + 1
                        known_responses[(pid, rdigest)] = rid
                        response_rows.append(
                            (
                                rid,
                                pid,
                                enc("responses", "text", rid, text),
                                enc("responses", "origin", rid, origin_json),
                                origin_key,
                                rdigest,
                                now,
                            )
                        )
                        added += 1
                    rids.append(rid)
                out.append((pid, rids, is_new, added))
            conn.executemany(
                "INSERT INTO prompts(id, position, split, kind, body, reference, hash, created) "
                "VALUES (?,?,?,?,?,?,?,?)",
                prompt_rows,
            )
            conn.executemany(
                "INSERT INTO responses(id, prompt_id, text, origin, origin_key, hash, created) VALUES (?,?,?,?,?,?,?)",
                response_rows,
            )
        return out

    def set_split(self, prompt_ids: Iterable[int], split: str) -> None:
        if split not in SPLITS:
            raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        with self.transaction() as conn:
            conn.executemany("UPDATE prompts SET split=? WHERE id=?", [(split, i) for i in prompt_ids])

    def _prompt_from_row(self, row: Sequence[Any]) -> Prompt:
        pid, position, split, body, reference = row
        dec = self._cipher.decrypt
        return Prompt(
            pid,
            json.loads(dec("prompts", "body", pid, body)),
            dec("prompts", "reference", pid, reference),
            split,
            position,
        )

    def prompt(self, prompt_id: int) -> Prompt:
        row = (
            self._conn()
            .execute("SELECT id, position, split, body, reference FROM prompts WHERE id=?", (prompt_id,))
            .fetchone()
        )
        if row is None:
            raise UserError(f"No prompt with id {prompt_id}.")
        return self._prompt_from_row(row)

    def prompts(self, split: Optional[str] = None, ids: Optional[Iterable[int]] = None) -> list[Prompt]:
        """Prompts in project order (optionally one split, or the given ids)."""
        sql = "SELECT id, position, split, body, reference FROM prompts"
        args: list[Any] = []
        if split is not None:
            sql += " WHERE split=?"
            args.append(split)
        rows = self._conn().execute(sql + " ORDER BY position", args).fetchall()
        if ids is not None:
            wanted = set(ids)
            rows = [r for r in rows if r[0] in wanted]
        return [self._prompt_from_row(r) for r in rows]

    def prompt_ids(self, split: Optional[str] = None) -> list[int]:
        sql, args = "SELECT id FROM prompts", []
        if split is not None:
            sql, args = sql + " WHERE split=?", [split]
        return [r[0] for r in self._conn().execute(sql + " ORDER BY position", args)]

    def add_response(self, prompt_id: int, text: str, origin: Optional[dict] = None) -> int:
        """Add a candidate response; the same text for the same prompt returns the existing id."""
        if not isinstance(text, str):
            raise UserError(f"A response must be text, not {type(text).__name__}.")
        origin = origin or {"kind": "import"}
        digest = self.response_hash(text)
        with self.transaction() as conn:
            for rid, existing in conn.execute("SELECT id, hash FROM responses WHERE prompt_id=?", (prompt_id,)):
                if bytes(existing) == digest:
                    return rid
            if conn.execute("SELECT 1 FROM prompts WHERE id=?", (prompt_id,)).fetchone() is None:
                raise UserError(f"No prompt with id {prompt_id}.")
            rid = self._next_id(conn, "responses")
            conn.execute(
                "INSERT INTO responses(id, prompt_id, text, origin, origin_key, hash, created) VALUES (?,?,?,?,?,?,?)",
                (
                    rid,
                    prompt_id,
                    self._cipher.encrypt("responses", "text", rid, text),
                    self._cipher.encrypt_json("responses", "origin", rid, origin),
                    self.origin_key(origin),
                    digest,
                    time.time(),
                ),
            )
            return rid

    def origin_key(self, origin: dict) -> bytes:
        """Keyed hash of where a response came from (model path), to count per model without decrypting."""
        return self._cipher.keyed_hash("origin", origin.get("kind", ""), str(origin.get("model", "")))

    def count_responses(self, prompt_id: int, origin: Optional[dict] = None) -> int:
        if origin is None:
            sql, args = "SELECT count(*) FROM responses WHERE prompt_id=?", (prompt_id,)
        else:
            sql = "SELECT count(*) FROM responses WHERE prompt_id=? AND origin_key=?"
            args = (prompt_id, self.origin_key(origin))
        return self._conn().execute(sql, args).fetchone()[0]

    def responses(self, prompt_id: int) -> list[Response]:
        rows = (
            self._conn()
            .execute("SELECT id, text, origin FROM responses WHERE prompt_id=? ORDER BY id", (prompt_id,))
            .fetchall()
        )
        dec = self._cipher
        return [
            Response(
                rid,
                prompt_id,
                dec.decrypt("responses", "text", rid, text),
                dec.decrypt_json("responses", "origin", rid, origin),
            )
            for rid, text, origin in rows
        ]

    def response(self, response_id: int) -> Response:
        row = (
            self._conn()
            .execute("SELECT id, prompt_id, text, origin FROM responses WHERE id=?", (response_id,))
            .fetchone()
        )
        if row is None:
            raise UserError(f"No response with id {response_id}.")
        rid, pid, text, origin = row
        return Response(
            rid,
            pid,
            self._cipher.decrypt("responses", "text", rid, text),
            self._cipher.decrypt_json("responses", "origin", rid, origin),
        )
