"""Shared helpers for the annotation tests (core session and the Annotate page)."""

from __future__ import annotations

from pathlib import Path

from core.project import Project

PASSPHRASE = "correct horse battery staple"


def prompt_text(i: int):
    if i % 5 == 3:  # some chat prompts, shown as a dialogue
        return [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"Question {i}: what is `x` after `x = {i} * 2`?"},
        ]
    return f"# Task {i}\n\nExplain item **{i}** briefly.\n\n```python\nprint({i})\n```"


def response_text(i: int, r: int) -> str:
    body = f"Answer {r} to prompt {i}. " + ("More detail follows. " * (r * 3))
    return body + f"\n\n- point {r}\n- point {r + 1}\n"


def fill_project(proj: Project, n: int = 12, k: int = 4, heldout_every: int = 0) -> list[int]:
    """Add n prompts with k responses each; returns the prompt ids in project order."""
    pids = []
    with proj.transaction():
        for i in range(n):
            split = "heldout" if heldout_every and i % heldout_every == heldout_every - 1 else "train"
            pid = proj.add_prompt(prompt_text(i), split=split)
            for r in range(k):
                proj.add_response(pid, response_text(i, r), origin={"kind": "model", "model": f"/m/{r % 2}"})
            pids.append(pid)
        proj.set_setting("guidelines", "Prefer **correct** and concise answers.")
    return pids


def make_project(folder: Path, n: int = 12, k: int = 4) -> tuple[Path, list[int]]:
    """Create, fill and close a project; returns its path and prompt ids."""
    proj = Project.create(folder / "annot", PASSPHRASE)
    try:
        pids = fill_project(proj, n, k)
        return proj.path, pids
    finally:
        proj.close()
