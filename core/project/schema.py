"""The project database schema, made with sqlite-utils, with forward-only migrations.

`MIGRATIONS[i]` takes the schema from version i to i+1. Append, never edit a released step.
Plaintext columns are ids, timestamps, splits, statuses, rank positions and numbers (see
docs/security.md); every column holding user content is a BLOB of AES-GCM ciphertext.
"""

from __future__ import annotations

from typing import Callable

import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["prompts"].create(
        {
            "id": int,
            "position": int,
            "split": str,
            "kind": str,
            "body": bytes,
            "reference": bytes,
            "hash": bytes,
            "created": float,
        },
        pk="id",
    )
    db["prompts"].create_index(["hash"], unique=True)
    db["prompts"].create_index(["position"])
    db["responses"].create(
        {
            "id": int,
            "prompt_id": int,
            "text": bytes,
            "origin": bytes,
            "origin_key": bytes,
            "hash": bytes,
            "created": float,
        },
        pk="id",
        foreign_keys=[("prompt_id", "prompts", "id")],
    )
    # Dedupe within a prompt compares keyed hashes of its few responses; a unique index over random
    # 32-byte hashes would double the cost of bulk imports for no gain.
    db["responses"].create_index(["prompt_id"])
    db["judgments"].create(
        {
            "id": int,
            "prompt_id": int,
            "kind": str,
            "subject": str,
            "purpose": str,
            "status": str,
            "tiers": str,
            "a": int,
            "b": int,
            "choice": str,
            "ratings": str,
            "flags": bytes,
            "comment": bytes,
            "seconds": float,
            "created": float,
            "replaces": int,
        },
        pk="id",
        foreign_keys=[("prompt_id", "prompts", "id")],
    )
    db["judgments"].create_index(["prompt_id", "status"])
    db["judgments"].create_index(["status", "purpose"])
    db["settings"].create({"key": str, "value": bytes}, pk="key")
    db["runs"].create(
        {
            "id": int,
            "kind": str,
            "status": str,
            "config": bytes,
            "summary": bytes,
            "parent": int,
            "created": float,
            "updated": float,
        },
        pk="id",
    )
    db["metrics"].create(
        {"run_id": int, "step": int, "name": str, "value": float}, foreign_keys=[("run_id", "runs", "id")]
    )
    db["metrics"].create_index(["run_id", "name", "step"])
    db["samples"].create(
        {"id": int, "run_id": int, "step": int, "rows": bytes}, pk="id", foreign_keys=[("run_id", "runs", "id")]
    )
    db["artifacts"].create(
        {"id": int, "run_id": int, "name": str, "file": str, "size": int, "created": float},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["artifacts"].create_index(["run_id", "name"], unique=True)
    db["audit"].create({"id": int, "ts": float, "event": str, "details": bytes, "mac": bytes}, pk="id")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database, current: int) -> int:
    """Apply the missing steps; the caller holds a write transaction. Returns the new version."""
    if current > SCHEMA_VERSION:
        from core.errors import UserError

        raise UserError(
            f"This project was made by a newer RLHF Studio (schema {current}, this app knows "
            f"{SCHEMA_VERSION}). Update the app to open it."
        )
    for step in MIGRATIONS[current:]:
        step(db)
    return SCHEMA_VERSION
