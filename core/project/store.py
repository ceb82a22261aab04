"""The encrypted project: a folder `NAME.rlhfproj/` with key.json, project.db (SQLite, WAL) and
artifacts/ (encrypted streams), guarded by a lock file.

Every public write is its own transaction, committed (synchronous=FULL) before the call returns, so an
acknowledged judgment survives a crash or a kill. Each thread gets its own SQLite connection; SQLite's
own locking serialises writers and WAL lets readers (the GUI) run beside a writer (a job).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import sqlite_utils
from filelock import FileLock, Timeout

from core.errors import IntegrityError, ProjectLocked, UserError
from core.project import crypto
from core.project.schema import migrate

KEY_FILE = "key.json"
DB_FILE = "project.db"
LOCK_FILE = "project.lock"
ARTIFACTS_DIR = "artifacts"
SUFFIX = ".rlhfproj"

PromptText = str | list[dict[str, str]]
SPLITS = ("train", "heldout")
PAIRWISE_RESULTS = ("a", "b", "tie", "both_bad")


@dataclass(frozen=True)
class Prompt:
    id: int
    prompt: PromptText
    reference: Optional[str]
    split: str
    position: int

    @property
    def is_chat(self) -> bool:
        return isinstance(self.prompt, list)


@dataclass(frozen=True)
class Response:
    id: int
    prompt_id: int
    text: str
    origin: dict


@dataclass(frozen=True)
class Judgment:
    id: int
    prompt_id: int
    kind: str  # ranking | pairwise | rating | skip
    purpose: str  # annotation | consistency | evaluation
    status: str  # current | superseded | undone
    tiers: Optional[list[list[int]]] = None
    a: Optional[int] = None
    b: Optional[int] = None
    choice: Optional[str] = None
    ratings: Optional[dict[int, float]] = None
    flags: tuple[str, ...] = ()
    comment: str = ""
    seconds: float = 0.0
    created: float = 0.0
    replaces: Optional[int] = None


@dataclass(frozen=True)
class Pair:
    prompt_id: int
    chosen_id: int
    rejected_id: int
    margin: float = 0.0


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    status: str
    config: dict
    summary: dict
    created: float
    updated: float
    parent: Optional[int] = None


@dataclass(frozen=True)
class ArtifactInfo:
    id: int
    run_id: int
    name: str
    size: int
    created: float


def canonical_prompt(prompt: PromptText) -> str:
    return json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp-{secrets.token_hex(4)}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_header(folder: Path) -> dict:
    path = folder / KEY_FILE
    if not path.exists():
        raise UserError(f"{folder}: not an RLHF Studio project ({KEY_FILE} is missing).")
    try:
        return json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{path}: the key file is damaged ({exc.__class__.__name__}).") from None


class Project:
    """An open, unlocked project. Use `Project.create` or `Project.open`; close when done."""

    def __init__(self, folder: Path, header: dict, data_key: bytes, lock: Optional[FileLock]):
        self.path = folder
        self.project_id: str = header["project_id"]
        self._keys = crypto.Keys.from_data_key(data_key)
        self._cipher = crypto.FieldCipher(self._keys)
        self._lock = lock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False

    # ---- lifecycle --------------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | os.PathLike, passphrase: str, kdf: dict | None = None) -> "Project":
        folder = Path(folder)
        if folder.suffix != SUFFIX:
            folder = folder.with_name(folder.name + SUFFIX)
        if folder.exists() and any(folder.iterdir()):
            raise UserError(f"{folder}: already exists and is not empty.")
        if len(passphrase) < 1:
            raise UserError("The passphrase must not be empty.")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ARTIFACTS_DIR).mkdir(exist_ok=True)
        data_key = secrets.token_bytes(32)
        header = crypto.new_key_header(passphrase, data_key, secrets.token_hex(16), kdf)
        lock = cls._acquire_lock(folder)
        try:
            _atomic_write(folder / KEY_FILE, json.dumps(header, indent=1).encode())
            project = cls(folder, header, data_key, lock)
            project._initialise()
            project.audit("created")
        except BaseException:
            lock.release()
            raise
        return project

    @classmethod
    def open(cls, folder: str | os.PathLike, passphrase: str) -> "Project":
        folder = Path(folder)
        if not folder.is_dir() and folder.with_name(folder.name + SUFFIX).is_dir():
            folder = folder.with_name(folder.name + SUFFIX)
        if not folder.is_dir():
            raise UserError(f"{folder}: no such project folder.")
        header = _read_header(folder)
        # The passphrase is checked before anything else is touched: a wrong one changes no byte.
        data_key = crypto.unwrap_data_key(header, passphrase, str(folder / KEY_FILE))
        if not (folder / DB_FILE).exists():
            raise IntegrityError(f"{folder}: {DB_FILE} is missing.")
        lock = cls._acquire_lock(folder)
        try:
            project = cls(folder, header, data_key, lock)
            project._initialise()
            project.audit("opened")
        except BaseException:
            lock.release()
            raise
        return project

    @staticmethod
    def _acquire_lock(folder: Path) -> FileLock:
        lock = FileLock(str(folder / LOCK_FILE), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise ProjectLocked(
                f"{folder.name} is already open in another window or program. Close it there first."
            ) from None
        except OSError as exc:  # a read-only disk or folder, a full disk, no permission
            raise UserError(
                f"{folder}: cannot be written ({exc.strerror or exc}). A project is opened for writing: "
                "if the folder is read-only (a read-only disk, a CD, a shared folder), copy it somewhere "
                "writable first."
            ) from None
        return lock

    def _initialise(self) -> None:
        conn = self._conn()
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA quick_check(1)").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IntegrityError(f"{self.path / DB_FILE}: the database is damaged ({exc}).") from None
        if mode.lower() != "wal":
            raise UserError(f"{self.path / DB_FILE}: could not switch to WAL mode.")
        # An artifact write killed before its rename leaves a `.tmp` no row names (we hold the lock: no
        # other writer can be mid-write); remove it.
        for tmp in (self.path / ARTIFACTS_DIR).glob("*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
        with self.transaction():
            db = sqlite_utils.Database(conn)
            version = 0
            if "meta" in db.table_names():
                row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else 0
            new_version = migrate(db, version)
            if new_version != version:
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(new_version),),
                )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        if self._lock is not None:
            self._lock.release()
        # Drop key material references; Python cannot wipe memory, but nothing keeps them alive.
        self._keys = None  # type: ignore[assignment]
        self._cipher = None  # type: ignore[assignment]

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({self.path.name!r}{', closed' if self._closed else ''})"

    # ---- connections and transactions -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise UserError("The project is closed (or locked). Unlock it to continue.")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path / DB_FILE, isolation_level=None, check_same_thread=False, timeout=30
            )
            # FULL: a commit is on disk before we acknowledge it. MEMORY: no temp files with content.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.depth = 0
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested calls join the outer transaction."""
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException as exc:
            self._local.depth = 0
            if conn.in_transaction:  # after some errors (a full disk) SQLite has already rolled back
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            _raise_storage_error(self.path, exc)
            raise
        self._local.depth = 0
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            _raise_storage_error(self.path, exc)
            raise

    def _next_id(self, conn: sqlite3.Connection, table: str) -> int:
        return conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils view of this thread's connection (read-only use outside transactions)."""
        return sqlite_utils.Database(self._conn())

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
                (pid, pid, split, "chat" if isinstance(prompt, list) else "text",
                 enc("prompts", "body", pid, canonical_prompt(prompt)),
                 enc("prompts", "reference", pid, reference), digest, time.time()),
            )
            return pid

    def add_many(self, items: Iterable[tuple[PromptText, Optional[str], str, Sequence[str]]],
                 origin: Optional[dict] = None, cache: Optional[dict] = None) -> list[tuple[int, list[int], bool, int]]:
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
                cache["responses"] = {(p, bytes(h)): i for p, h, i in
                                      conn.execute("SELECT prompt_id, hash, id FROM responses")}
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
                    prompt_rows.append((pid, pid, split, "chat" if isinstance(prompt, list) else "text",
                                        enc("prompts", "body", pid, canonical_prompt(prompt)),
                                        enc("prompts", "reference", pid, reference), digest, now))
                rids, added = [], 0
                for text in texts:
                    rdigest = self.response_hash(text)
                    rid = known_responses.get((pid, rdigest))
                    if rid is None:
                        rid, next_rid = next_rid, next_rid + 1
                        known_responses[(pid, rdigest)] = rid
                        response_rows.append((rid, pid, enc("responses", "text", rid, text),
                                              enc("responses", "origin", rid, origin_json), origin_key,
                                              rdigest, now))
                        added += 1
                    rids.append(rid)
                out.append((pid, rids, is_new, added))
            conn.executemany("INSERT INTO prompts(id, position, split, kind, body, reference, hash, created) "
                             "VALUES (?,?,?,?,?,?,?,?)", prompt_rows)
            conn.executemany("INSERT INTO responses(id, prompt_id, text, origin, origin_key, hash, created) "
                             "VALUES (?,?,?,?,?,?,?)", response_rows)
        return out

    def set_split(self, prompt_ids: Iterable[int], split: str) -> None:
        if split not in SPLITS:
            raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        with self.transaction() as conn:
            conn.executemany("UPDATE prompts SET split=? WHERE id=?", [(split, i) for i in prompt_ids])

    def _prompt_from_row(self, row: Sequence[Any]) -> Prompt:
        pid, position, split, body, reference = row
        dec = self._cipher.decrypt
        return Prompt(pid, json.loads(dec("prompts", "body", pid, body)),
                      dec("prompts", "reference", pid, reference), split, position)

    def prompt(self, prompt_id: int) -> Prompt:
        row = self._conn().execute(
            "SELECT id, position, split, body, reference FROM prompts WHERE id=?", (prompt_id,)
        ).fetchone()
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
                "INSERT INTO responses(id, prompt_id, text, origin, origin_key, hash, created) "
                "VALUES (?,?,?,?,?,?,?)",
                (rid, prompt_id, self._cipher.encrypt("responses", "text", rid, text),
                 self._cipher.encrypt_json("responses", "origin", rid, origin),
                 self.origin_key(origin), digest, time.time()),
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
        rows = self._conn().execute(
            "SELECT id, text, origin FROM responses WHERE prompt_id=? ORDER BY id", (prompt_id,)
        ).fetchall()
        dec = self._cipher
        return [Response(rid, prompt_id, dec.decrypt("responses", "text", rid, text),
                         dec.decrypt_json("responses", "origin", rid, origin)) for rid, text, origin in rows]

    def response(self, response_id: int) -> Response:
        row = self._conn().execute(
            "SELECT id, prompt_id, text, origin FROM responses WHERE id=?", (response_id,)
        ).fetchone()
        if row is None:
            raise UserError(f"No response with id {response_id}.")
        rid, pid, text, origin = row
        return Response(rid, pid, self._cipher.decrypt("responses", "text", rid, text),
                        self._cipher.decrypt_json("responses", "origin", rid, origin))

    # ---- judgments --------------------------------------------------------------------------------

    def _record(self, prompt_id: int, kind: str, subject: str, purpose: str, *, flags: Iterable[str],
                comment: str, seconds: float, **cols: Any) -> int:
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
                    "UPDATE judgments SET status='superseded' WHERE prompt_id=? AND +kind='skip' "
                    "AND +status='current'", (prompt_id,))
            enc = self._cipher
            conn.execute(
                "INSERT INTO judgments(id, prompt_id, kind, subject, purpose, status, tiers, a, b, choice, "
                "ratings, flags, comment, seconds, created, replaces) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (jid, prompt_id, kind, subject, purpose, "current", cols.get("tiers"), cols.get("a"),
                 cols.get("b"), cols.get("choice"), cols.get("ratings"),
                 enc.encrypt_json("judgments", "flags", jid, list(flags)) if flags else None,
                 enc.encrypt("judgments", "comment", jid, comment) if comment else None,
                 float(seconds), time.time(), previous),
            )
            return jid

    def _response_ids(self, conn: sqlite3.Connection, prompt_id: int) -> set[int]:
        return {r[0] for r in conn.execute("SELECT id FROM responses WHERE prompt_id=?", (prompt_id,))}

    def record_ranking(self, prompt_id: int, tiers: Sequence[Sequence[int]], *, flags: Iterable[str] = (),
                       comment: str = "", seconds: float = 0.0, purpose: str = "annotation") -> int:
        """Rank a prompt's responses best-first; each tier is a set of tied response ids."""
        tiers = [[int(r) for r in tier] for tier in tiers if len(tier)]
        flat = [r for tier in tiers for r in tier]
        if len(flat) != len(set(flat)):
            raise UserError("A ranking lists the same response twice.")
        unknown = set(flat) - self._response_ids(self._conn(), prompt_id)
        if unknown:
            raise UserError(f"Ranking names responses {sorted(unknown)} that do not belong to prompt {prompt_id}.")
        return self._record(prompt_id, "ranking", "", purpose, flags=flags, comment=comment,
                            seconds=seconds, tiers=json.dumps(tiers))

    def record_pairwise(self, prompt_id: int, a: int, b: int, result: str, *, flags: Iterable[str] = (),
                        comment: str = "", seconds: float = 0.0, purpose: str = "annotation") -> int:
        """A pairwise choice: result is 'a', 'b', 'tie' or 'both_bad'."""
        if result not in PAIRWISE_RESULTS:
            raise UserError(f"Unknown pairwise result {result!r}; use one of {', '.join(PAIRWISE_RESULTS)}.")
        if a == b:
            raise UserError("A pairwise judgment needs two different responses.")
        unknown = {a, b} - self._response_ids(self._conn(), prompt_id)
        if unknown:
            raise UserError(f"Responses {sorted(unknown)} do not belong to prompt {prompt_id}.")
        subject = f"{min(a, b)}-{max(a, b)}"
        return self._record(prompt_id, "pairwise", subject, purpose, flags=flags, comment=comment,
                            seconds=seconds, a=int(a), b=int(b), choice=result)

    def record_ratings(self, prompt_id: int, ratings: dict[int, float], *, flags: Iterable[str] = (),
                       comment: str = "", seconds: float = 0.0, purpose: str = "annotation") -> int:
        """Per-response ratings (the GUI uses 1-7; imported scores are kept as given)."""
        unknown = set(int(r) for r in ratings) - self._response_ids(self._conn(), prompt_id)
        if unknown:
            raise UserError(f"Ratings name responses {sorted(unknown)} that do not belong to prompt {prompt_id}.")
        clean = {str(int(k)): float(v) for k, v in ratings.items()}
        return self._record(prompt_id, "rating", "", purpose, flags=flags, comment=comment,
                            seconds=seconds, ratings=json.dumps(clean))

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

    _JUDGMENT_COLS = ("id, prompt_id, kind, purpose, status, tiers, a, b, choice, ratings, flags, comment, "
                      "seconds, created, replaces")

    def _judgment_from_row(self, row: Sequence[Any]) -> Judgment:
        (jid, pid, kind, purpose, status, tiers, a, b, choice, ratings, flags, comment, seconds, created,
         replaces) = row
        dec = self._cipher
        return Judgment(
            jid, pid, kind, purpose, status,
            tiers=json.loads(tiers) if tiers else None, a=a, b=b, choice=choice,
            ratings={int(k): v for k, v in json.loads(ratings).items()} if ratings else None,
            flags=tuple(dec.decrypt_json("judgments", "flags", jid, flags) or ()),
            comment=dec.decrypt("judgments", "comment", jid, comment) or "",
            seconds=seconds or 0.0, created=created, replaces=replaces,
        )

    def judgments(self, prompt_id: Optional[int] = None, kind: Optional[str] = None,
                  purpose: Optional[str] = "annotation", include_history: bool = False) -> list[Judgment]:
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
        row = self._conn().execute(
            f"SELECT {self._JUDGMENT_COLS} FROM judgments WHERE id=?", (judgment_id,)).fetchone()
        if row is None:
            raise UserError(f"No judgment with id {judgment_id}.")
        return self._judgment_from_row(row)

    def preference_pairs(self, split: Optional[str] = None, margin_mode: str = "none") -> list[Pair]:
        """Every (chosen, rejected) pair implied by the current annotation judgments."""
        from core.training import pairs as P

        split_of = {} if split is None else dict(
            self._conn().execute("SELECT id, split FROM prompts").fetchall())
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

    def next_unjudged(self, after_position: int = 0, split: Optional[str] = None,
                      include_skipped: bool = False) -> Optional[int]:
        """The first prompt after `after_position`, in project order, with no current judgment."""
        sql = (
            "SELECT p.id FROM prompts p WHERE p.position > ? "
            + ("AND p.split = ? " if split else "")
            + "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.prompt_id = p.id AND +j.status='current' "
            + "AND +j.purpose='annotation'" + (" AND j.kind != 'skip'" if include_skipped else "") + ") "
            + "ORDER BY p.position LIMIT 1"
        )
        args: list[Any] = [after_position] + ([split] if split else [])
        row = self._conn().execute(sql, args).fetchone()
        return row[0] if row else None

    def prompt_status(self) -> list[tuple[int, int, str, str, int, int]]:
        """One row per prompt in project order: (id, position, split, status, n_responses, flagged),
        status being unranked | ranked | skipped. No decryption: fast at 100,000 rows."""
        rows = self._conn().execute(
            "SELECT p.id, p.position, p.split, "
            " (SELECT group_concat(kind) FROM judgments j WHERE j.prompt_id=p.id AND +j.status='current' "
            "  AND +j.purpose='annotation'), "
            " (SELECT count(*) FROM responses r WHERE r.prompt_id=p.id), "
            " (SELECT count(*) FROM judgments j WHERE j.prompt_id=p.id AND +j.status='current' "
            "  AND +j.purpose='annotation' AND j.flags IS NOT NULL) "
            "FROM prompts p ORDER BY p.position"
        ).fetchall()
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
                "AND purpose='annotation' AND kind!='skip'"),
            "ranked_prompts": one(
                "SELECT count(DISTINCT prompt_id) FROM judgments WHERE status='current' "
                "AND purpose='annotation' AND kind='ranking'"),
            "pairs": len(self.preference_pairs()),
            "runs": one("SELECT count(*) FROM runs"),
        }

    # ---- settings -----------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return default if row is None else self._cipher.decrypt_json("settings", "value", key, row[0])

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                         (key, self._cipher.encrypt_json("settings", "value", key, value)))

    def tags(self) -> list[str]:
        return list(self.get_setting("tags", DEFAULT_TAGS))

    # ---- runs, metrics, samples ---------------------------------------------------------------------

    def create_run(self, kind: str, config: dict, parent: Optional[int] = None) -> int:
        with self.transaction() as conn:
            run_id = self._next_id(conn, "runs")
            now = time.time()
            conn.execute(
                "INSERT INTO runs(id, kind, status, config, summary, parent, created, updated) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (run_id, kind, "created", self._cipher.encrypt_json("runs", "config", run_id, config),
                 self._cipher.encrypt_json("runs", "summary", run_id, {}), parent, now, now),
            )
            return run_id

    def update_run(self, run_id: int, status: Optional[str] = None, summary: Optional[dict] = None,
                   config: Optional[dict] = None) -> None:
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
                raise UserError(f"No run with id {run_id}.")
            if status is not None:
                conn.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))
            if summary is not None:
                conn.execute("UPDATE runs SET summary=? WHERE id=?",
                             (self._cipher.encrypt_json("runs", "summary", run_id, summary), run_id))
            if config is not None:
                conn.execute("UPDATE runs SET config=? WHERE id=?",
                             (self._cipher.encrypt_json("runs", "config", run_id, config), run_id))
            conn.execute("UPDATE runs SET updated=? WHERE id=?", (time.time(), run_id))

    def _run_from_row(self, row: Sequence[Any]) -> Run:
        rid, kind, status, config, summary, parent, created, updated = row
        dec = self._cipher.decrypt_json
        return Run(rid, kind, status, dec("runs", "config", rid, config) or {},
                   dec("runs", "summary", rid, summary) or {}, created, updated, parent)

    def run(self, run_id: int) -> Run:
        row = self._conn().execute(
            "SELECT id, kind, status, config, summary, parent, created, updated FROM runs WHERE id=?",
            (run_id,)).fetchone()
        if row is None:
            raise UserError(f"No run with id {run_id}.")
        return self._run_from_row(row)

    def runs(self, kind: Optional[str] = None) -> list[Run]:
        sql = "SELECT id, kind, status, config, summary, parent, created, updated FROM runs"
        args = []
        if kind is not None:
            sql, args = sql + " WHERE kind=?", [kind]
        return [self._run_from_row(r) for r in self._conn().execute(sql + " ORDER BY id", args)]

    def log_metrics(self, run_id: int, step: int, metrics: dict[str, float]) -> None:
        with self.transaction() as conn:
            conn.executemany("INSERT INTO metrics(run_id, step, name, value) VALUES (?,?,?,?)",
                             [(run_id, int(step), k, float(v)) for k, v in metrics.items()])

    def metrics(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in self._conn().execute(
                "SELECT name, step, value FROM metrics WHERE run_id=? ORDER BY rowid", (run_id,)):
            out.setdefault(name, []).append((step, value))
        return out

    def truncate_metrics(self, run_id: int, after_step: int) -> None:
        """Drop metrics logged after a checkpoint, so a resumed run continues one clean curve."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, after_step))
            conn.execute("DELETE FROM samples WHERE run_id=? AND step>?", (run_id, after_step))

    def log_samples(self, run_id: int, step: int, rows: list[dict]) -> None:
        with self.transaction() as conn:
            sid = self._next_id(conn, "samples")
            conn.execute("INSERT INTO samples(id, run_id, step, rows) VALUES (?,?,?,?)",
                         (sid, run_id, int(step), self._cipher.encrypt_json("samples", "rows", sid, rows)))

    def samples(self, run_id: int) -> list[tuple[int, list[dict]]]:
        return [(step, self._cipher.decrypt_json("samples", "rows", sid, rows)) for sid, step, rows in
                self._conn().execute("SELECT id, step, rows FROM samples WHERE run_id=? ORDER BY id", (run_id,))]

    # ---- artifacts ----------------------------------------------------------------------------------

    def save_artifact(self, run_id: int, name: str, files: dict[str, bytes]) -> int:
        """Encrypt `files` into one artifact, written atomically; replaces (run_id, name) if present."""
        folder = self.path / ARTIFACTS_DIR
        folder.mkdir(exist_ok=True)
        with self.transaction() as conn:
            old = conn.execute("SELECT id, file FROM artifacts WHERE run_id=? AND name=?",
                               (run_id, name)).fetchone()
            aid = self._next_id(conn, "artifacts")
            filename = f"{aid:06d}-{secrets.token_hex(6)}.bin"
            tmp = folder / (filename + ".tmp")
            with open(tmp, "wb") as fh:
                size = crypto.encrypt_files(self._keys, self.project_id, aid, files, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / filename)
            _fsync_dir(folder)
            if old:
                conn.execute("DELETE FROM artifacts WHERE id=?", (old[0],))
            conn.execute("INSERT INTO artifacts(id, run_id, name, file, size, created) VALUES (?,?,?,?,?,?)",
                         (aid, run_id, name, filename, size, time.time()))
        if old:  # only after the commit: a crash before it leaves the old artifact in place
            with contextlib.suppress(FileNotFoundError):
                (folder / old[1]).unlink()
        return aid

    def load_artifact(self, run_id: int, name: str) -> dict[str, bytes]:
        row = self._conn().execute("SELECT id, file FROM artifacts WHERE run_id=? AND name=?",
                                   (run_id, name)).fetchone()
        if row is None:
            raise UserError(f"Run {run_id} has no artifact named {name!r}.")
        path = self.path / ARTIFACTS_DIR / row[1]
        if not path.exists():
            raise IntegrityError(f"{path}: artifact file is missing.")
        with open(path, "rb") as fh:
            return crypto.decrypt_files(self._keys, self.project_id, row[0], fh, str(path))

    def has_artifact(self, run_id: int, name: str) -> bool:
        return self._conn().execute("SELECT 1 FROM artifacts WHERE run_id=? AND name=?",
                                    (run_id, name)).fetchone() is not None

    def artifacts(self, run_id: Optional[int] = None) -> list[ArtifactInfo]:
        sql, args = "SELECT id, run_id, name, size, created FROM artifacts", []
        if run_id is not None:
            sql, args = sql + " WHERE run_id=?", [run_id]
        return [ArtifactInfo(*r) for r in self._conn().execute(sql + " ORDER BY id", args)]

    # ---- audit log ----------------------------------------------------------------------------------

    def audit(self, event: str, **details: Any) -> None:
        """Append to the tamper-evident log. Events and details are ours: counts and ids, never user text."""
        with self.transaction() as conn:
            # Chain from the recorded head, not from the last row: if someone deleted the newest
            # rows, the next entry then fails to verify instead of silently papering over the gap.
            head = conn.execute("SELECT value FROM meta WHERE key='audit_head'").fetchone()
            last_id = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
            if head:
                head_id, head_mac = head[0].split(":")
                aid, prev_mac = max(int(head_id), last_id) + 1, bytes.fromhex(head_mac)
            else:  # a missing head with rows present is itself tampering; verify_audit reports it
                aid, prev_mac = last_id + 1, b"\0" * 32
            ts = time.time()
            blob = self._cipher.encrypt_json("audit", "details", aid, details)
            mac = crypto.audit_mac(self._keys, prev_mac, [str(aid), repr(ts), event, blob.hex()])
            conn.execute("INSERT INTO audit(id, ts, event, details, mac) VALUES (?,?,?,?,?)",
                         (aid, ts, event, blob, mac))
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_head', ?)",
                         (f"{aid}:{mac.hex()}",))

    def audit_log(self) -> list[dict]:
        return [{"id": aid, "ts": ts, "event": event,
                 "details": self._cipher.decrypt_json("audit", "details", aid, details)}
                for aid, ts, event, details in
                self._conn().execute("SELECT id, ts, event, details FROM audit ORDER BY id")]

    def verify_audit(self) -> list[str]:
        """Problems found in the audit chain (empty when intact)."""
        problems: list[str] = []
        prev_mac, expected_id = b"\0" * 32, 1
        rows = self._conn().execute("SELECT id, ts, event, details, mac FROM audit ORDER BY id").fetchall()
        for aid, ts, event, details, mac in rows:
            if aid != expected_id:
                problems.append(f"audit entry {expected_id} is missing (next is {aid})")
            want = crypto.audit_mac(self._keys, prev_mac, [str(aid), repr(ts), event, bytes(details).hex()])
            if bytes(mac) != want:
                problems.append(f"audit entry {aid} ({event}) was altered or does not follow entry {aid - 1}")
            prev_mac, expected_id = bytes(mac), aid + 1
        head = self._conn().execute("SELECT value FROM meta WHERE key='audit_head'").fetchone()
        if rows and (head is None or head[0] != f"{rows[-1][0]}:{bytes(rows[-1][4]).hex()}"):
            problems.append("the newest audit entries were removed (the chain's head does not match)")
        return problems

    # ---- passphrase and backup ----------------------------------------------------------------------

    def change_passphrase(self, old: str, new: str) -> None:
        """Rewrap the data key under `new`. Atomic: the key file is replaced in one rename."""
        header = _read_header(self.path)
        data_key = crypto.unwrap_data_key(header, old, str(self.path / KEY_FILE))
        new_header = crypto.new_key_header(new, data_key, self.project_id, {
            k: v for k, v in header["kdf"].items() if k != "salt"})
        _atomic_write(self.path / KEY_FILE, json.dumps(new_header, indent=1).encode())
        self.audit("passphrase_changed")

    def backup(self, dest: str | os.PathLike) -> Path:
        """A consistent encrypted copy (same passphrase) made with SQLite's backup API."""
        dest = Path(dest)
        if dest.suffix != SUFFIX:
            dest = dest.with_name(dest.name + SUFFIX)
        if dest.exists():
            raise UserError(f"{dest}: already exists; choose a new folder for the backup.")
        (dest / ARTIFACTS_DIR).mkdir(parents=True)
        (dest / KEY_FILE).write_bytes((self.path / KEY_FILE).read_bytes())
        target = sqlite3.connect(dest / DB_FILE)
        try:
            # One backup step copies a consistent snapshot; the artifact list is read from the copy,
            # so rows and artifact files agree.
            self._conn().backup(target, pages=-1)
            files = [r[0] for r in target.execute("SELECT file FROM artifacts")]
        finally:
            target.close()
        for name in files:
            (dest / ARTIFACTS_DIR / name).write_bytes((self.path / ARTIFACTS_DIR / name).read_bytes())
        self.audit("backup", artifacts=len(files))
        return dest


DEFAULT_TAGS = ["harmful", "toxic", "hallucination", "off-topic"]


def _raise_storage_error(folder: Path, exc: BaseException) -> None:
    """Turn a full or read-only disk into a plain message; anything else is left as it is."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).lower()
    if (isinstance(exc, sqlite3.OperationalError) and (code == 13 or "disk is full" in text)) or \
            (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        raise UserError(f"{folder}: the disk is full. This change was not saved (everything saved before "
                        "it is safe). Free some space and try again.") from None
    if (isinstance(exc, sqlite3.OperationalError) and (code == 8 or "readonly" in text)) or \
            (isinstance(exc, OSError) and exc.errno == errno.EROFS):
        raise UserError(f"{folder}: the project cannot be written (read-only disk or folder). "
                        "This change was not saved.") from None


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise UserError("A prompt must not be empty.")
        return
    if isinstance(prompt, list) and prompt:
        for i, m in enumerate(prompt):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise UserError(f"Chat message {i + 1} must be an object with string 'role' and 'content'.")
        return
    raise UserError("A prompt must be a string or a non-empty list of chat messages.")
