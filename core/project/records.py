"""What a project holds, as plain records (prompts, responses, judgments, pairs, runs, artifacts), the
folder layout, and the small helpers every part of the store uses."""

from __future__ import annotations

import errno
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from core.errors import IntegrityError, UserError

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


DEFAULT_TAGS = ["harmful", "toxic", "hallucination", "off-topic"]


def _raise_storage_error(folder: Path, exc: BaseException) -> None:
    """Turn a full or read-only disk into a plain message; anything else is left as it is."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).lower()
    if (isinstance(exc, sqlite3.OperationalError) and (code == 13 or "disk is full" in text)) or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    ):
        raise UserError(
            f"{folder}: the disk is full. This change was not saved (everything saved before "
            "it is safe). Free some space and try again."
        ) from None
    if (isinstance(exc, sqlite3.OperationalError) and (code == 8 or "readonly" in text)) or (
        isinstance(exc, OSError) and exc.errno == errno.EROFS
    ):
        raise UserError(
            f"{folder}: the project cannot be written (read-only disk or folder). This change was not saved."
        ) from None


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
