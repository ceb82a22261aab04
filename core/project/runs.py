"""Training and evaluation runs: their config and status, metrics, samples and encrypted artifacts."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from typing import Any, Optional, Sequence

from core.errors import IntegrityError, UserError
from core.project import crypto
from core.project.records import ARTIFACTS_DIR, ArtifactInfo, Run, _fsync_dir


class RunsMixin:
    """Part of `Project` (core/project/store.py): runs, metrics, samples and artifacts."""

    # ---- runs, metrics, samples ---------------------------------------------------------------------

    def create_run(self, kind: str, config: dict, parent: Optional[int] = None) -> int:
        with self.transaction() as conn:
            run_id = self._next_id(conn, "runs")
            now = time.time()
            conn.execute(
                "INSERT INTO runs(id, kind, status, config, summary, parent, created, updated) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    kind,
                    "created",
                    self._cipher.encrypt_json("runs", "config", run_id, config),
                    self._cipher.encrypt_json("runs", "summary", run_id, {}),
                    parent,
                    now,
                    now,
                ),
            )
            return run_id

    def update_run(
        self, run_id: int, status: Optional[str] = None, summary: Optional[dict] = None, config: Optional[dict] = None
    ) -> None:
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
                raise UserError(f"No run with id {run_id}.")
            if status is not None:
                conn.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))
            if summary is not None:
                conn.execute(
                    "UPDATE runs SET summary=? WHERE id=?",
                    (self._cipher.encrypt_json("runs", "summary", run_id, summary), run_id),
                )
            if config is not None:
                conn.execute(
                    "UPDATE runs SET config=? WHERE id=?",
                    (self._cipher.encrypt_json("runs", "config", run_id, config), run_id),
                )
            conn.execute("UPDATE runs SET updated=? WHERE id=?", (time.time(), run_id))

    def _run_from_row(self, row: Sequence[Any]) -> Run:
        rid, kind, status, config, summary, parent, created, updated = row
        dec = self._cipher.decrypt_json
        return Run(
            rid,
            kind,
            status,
            dec("runs", "config", rid, config) or {},
            dec("runs", "summary", rid, summary) or {},
            created,
            updated,
            parent,
        )

    def run(self, run_id: int) -> Run:
        row = (
            self._conn()
            .execute(
                "SELECT id, kind, status, config, summary, parent, created, updated FROM runs WHERE id=?", (run_id,)
            )
            .fetchone()
        )
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
            conn.executemany(
                "INSERT INTO metrics(run_id, step, name, value) VALUES (?,?,?,?)",
                [(run_id, int(step), k, float(v)) for k, v in metrics.items()],
            )

    def metrics(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in self._conn().execute(
            "SELECT name, step, value FROM metrics WHERE run_id=? ORDER BY rowid", (run_id,)
        ):
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
            conn.execute(
                "INSERT INTO samples(id, run_id, step, rows) VALUES (?,?,?,?)",
                (sid, run_id, int(step), self._cipher.encrypt_json("samples", "rows", sid, rows)),
            )

    def samples(self, run_id: int) -> list[tuple[int, list[dict]]]:
        return [
            (step, self._cipher.decrypt_json("samples", "rows", sid, rows))
            for sid, step, rows in self._conn().execute(
                "SELECT id, step, rows FROM samples WHERE run_id=? ORDER BY id", (run_id,)
            )
        ]

    # ---- artifacts ----------------------------------------------------------------------------------

    def save_artifact(self, run_id: int, name: str, files: dict[str, bytes]) -> int:
        """Encrypt `files` into one artifact, written atomically; replaces (run_id, name) if present."""
        folder = self.path / ARTIFACTS_DIR
        folder.mkdir(exist_ok=True)
        with self.transaction() as conn:
            old = conn.execute("SELECT id, file FROM artifacts WHERE run_id=? AND name=?", (run_id, name)).fetchone()
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
            conn.execute(
                "INSERT INTO artifacts(id, run_id, name, file, size, created) VALUES (?,?,?,?,?,?)",
                (aid, run_id, name, filename, size, time.time()),
            )
        if old:  # only after the commit: a crash before it leaves the old artifact in place
            with contextlib.suppress(FileNotFoundError):
                (folder / old[1]).unlink()
        return aid

    def load_artifact(self, run_id: int, name: str) -> dict[str, bytes]:
        row = (
            self._conn().execute("SELECT id, file FROM artifacts WHERE run_id=? AND name=?", (run_id, name)).fetchone()
        )
        if row is None:
            raise UserError(f"Run {run_id} has no artifact named {name!r}.")
        path = self.path / ARTIFACTS_DIR / row[1]
        if not path.exists():
            raise IntegrityError(f"{path}: artifact file is missing.")
        with open(path, "rb") as fh:
            return crypto.decrypt_files(self._keys, self.project_id, row[0], fh, str(path))

    def has_artifact(self, run_id: int, name: str) -> bool:
        return (
            self._conn().execute("SELECT 1 FROM artifacts WHERE run_id=? AND name=?", (run_id, name)).fetchone()
            is not None
        )

    def artifacts(self, run_id: Optional[int] = None) -> list[ArtifactInfo]:
        sql, args = "SELECT id, run_id, name, size, created FROM artifacts", []
        if run_id is not None:
            sql, args = sql + " WHERE run_id=?", [run_id]
        return [ArtifactInfo(*r) for r in self._conn().execute(sql + " ORDER BY id", args)]
