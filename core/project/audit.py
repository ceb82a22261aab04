"""The tamper-evident audit log: appending events and verifying the chain."""

from __future__ import annotations

import time
from typing import Any

from core.project import crypto


class AuditMixin:
    """Part of `Project` (core/project/store.py): the audit log."""

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
            conn.execute(
                "INSERT INTO audit(id, ts, event, details, mac) VALUES (?,?,?,?,?)", (aid, ts, event, blob, mac)
            )
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_head', ?)", (f"{aid}:{mac.hex()}",))

    def audit_log(self) -> list[dict]:
        return [
            {
                "id": aid,
                "ts": ts,
                "event": event,
                "details": self._cipher.decrypt_json("audit", "details", aid, details),
            }
            for aid, ts, event, details in self._conn().execute("SELECT id, ts, event, details FROM audit ORDER BY id")
        ]

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
