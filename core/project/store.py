"""The encrypted project: a folder `NAME.rlhfproj/` with key.json, project.db (SQLite, WAL) and
artifacts/ (encrypted streams), guarded by a lock file.

Every public write is its own transaction, committed (synchronous=FULL) before the call returns, so an
acknowledged judgment survives a crash or a kill. Each thread gets its own SQLite connection; SQLite's
own locking serialises writers and WAL lets readers (the GUI) run beside a writer (a job).

The Project class is assembled from one part per domain: content (prompts and responses), judgments
(and the annotation queue), runs (metrics, samples, artifacts) and audit; this module holds the
lifecycle, connections and transactions, settings, passphrase change and backup.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import sqlite_utils
from filelock import FileLock, Timeout

from core.errors import IntegrityError, ProjectLocked, UserError
from core.project import crypto
from core.project.audit import AuditMixin
from core.project.content import ContentMixin
from core.project.judgments import JudgmentsMixin
from core.project.records import (
    ARTIFACTS_DIR,
    DB_FILE,
    DEFAULT_TAGS,
    KEY_FILE,
    LOCK_FILE,
    SUFFIX,
    _atomic_write,
    _raise_storage_error,
    _read_header,
)
from core.project.runs import RunsMixin
from core.project.schema import migrate


CLOSED_MESSAGE = "The project is closed (or locked). Unlock it to continue."


class _Closed:
    """Stands in for a closed project's keys: any use says the project is closed."""

    def __getattr__(self, name):
        raise UserError(CLOSED_MESSAGE)


_CLOSED = _Closed()


class Project(ContentMixin, JudgmentsMixin, RunsMixin, AuditMixin):
    """An open, unlocked project. Use `Project.create` or `Project.open`; close when done."""

    def __init__(self, folder: Path, header: dict, data_key: bytes, lock: Optional[FileLock]):
        self.path = folder
        self.project_id: str = header["project_id"]
        self._keys = crypto.Keys.from_data_key(data_key)
        self._cipher = crypto.FieldCipher(self._keys)
        self._lock = lock
        self._local = threading.local()
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
        """Close the project. Safe while other threads still read or write it (a job being cancelled):
        closing a connection another thread is inside crashes the sqlite3 module, so only this thread's
        connection is closed here; the others are let go and close when their last statement ends, and
        each of those threads gets "the project is closed" at its next call (its open transaction, if
        any, rolls back then)."""
        if self._closed:
            return
        self._closed = True
        own = getattr(self._local, "conn", None)
        # A fresh thread-local drops this object's references to every thread's connection: a
        # connection then closes when the statement or cursor still using it lets it go.
        self._local = threading.local()
        if own is not None:
            with contextlib.suppress(sqlite3.Error):
                own.close()
        if self._lock is not None:
            self._lock.release()
        # Drop key material references; Python cannot wipe memory, but nothing keeps them alive. A
        # thread still at work on the project gets a clear error, not an AttributeError on None.
        self._keys = _CLOSED  # type: ignore[assignment]
        self._cipher = _CLOSED  # type: ignore[assignment]

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

    def _conn(self, local: Optional[threading.local] = None) -> sqlite3.Connection:
        # Read the thread-local once: close() swaps it, and a connection made during close() must
        # land in the old one (let go with it), not in the new one.
        local = self._local if local is None else local
        if self._closed:
            raise UserError(CLOSED_MESSAGE)
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path / DB_FILE, isolation_level=None, check_same_thread=False, timeout=30)
            # FULL: a commit is on disk before we acknowledge it. MEMORY: no temp files with content.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            local.conn = conn
            local.depth = 0
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested calls join the outer transaction."""
        local = self._local
        conn = self._conn(local)
        if local.depth:
            local.depth += 1
            try:
                yield conn
            finally:
                local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        local.depth = 1
        try:
            yield conn
        except BaseException as exc:
            local.depth = 0
            if conn.in_transaction:  # after some errors (a full disk) SQLite has already rolled back
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            _raise_storage_error(self.path, exc)
            raise
        local.depth = 0
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

    # ---- settings -----------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return default if row is None else self._cipher.decrypt_json("settings", "value", key, row[0])

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                (key, self._cipher.encrypt_json("settings", "value", key, value)),
            )

    def tags(self) -> list[str]:
        return list(self.get_setting("tags", DEFAULT_TAGS))

    # ---- passphrase and backup ----------------------------------------------------------------------

    def change_passphrase(self, old: str, new: str) -> None:
        """Rewrap the data key under `new`. Atomic: the key file is replaced in one rename."""
        header = _read_header(self.path)
        data_key = crypto.unwrap_data_key(header, old, str(self.path / KEY_FILE))
        new_header = crypto.new_key_header(
            new, data_key, self.project_id, {k: v for k, v in header["kdf"].items() if k != "salt"}
        )
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
