"""Search a project's decrypted text in memory (the Data page's search box), as a job.

    texts = {}                                   # the caller's in-memory cache; drop it when locking
    ids = run_job(search_prompts(proj, "refund", cache=texts))
    ids = run_job(search_prompts(proj, "late", cache=texts))   # second search: no decryption

Text is decrypted only into memory (`cache`), never written anywhere. Matching is case-insensitive,
every word of the query must appear (in any order), over the prompt, its reference and, with
`responses=True`, its candidates.
"""

from __future__ import annotations

from typing import Any, Optional

from core.jobs import NEVER, CancelToken, Progress

__all__ = ["prompt_text", "search_prompts"]

CHUNK = 500


def prompt_text(prompt: Any) -> str:
    """A prompt (string or chat messages) as one line-broken plain text, e.g. for display or search."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in prompt)


def _terms(query: str) -> list[str]:
    return [t for t in query.casefold().split() if t]


def search_prompts(
    project,
    query: str,
    *,
    responses: bool = False,
    ids: Optional[list[int]] = None,
    cache: Optional[dict[tuple[int, bool], str]] = None,
    cancel: CancelToken = NEVER,
):
    """Job: ids (project order) of prompts whose text contains every word of `query`.

    ids: search only these prompts (default all). cache: {(prompt id, with responses): casefolded
    text}, filled as prompts are decrypted and reused by later searches.
    """
    terms = _terms(query)
    all_ids = project.prompt_ids() if ids is None else list(ids)
    if not terms:
        return all_ids
    cache = {} if cache is None else cache
    total = len(all_ids)
    found: list[int] = []
    yield Progress(0, total, "searching")
    for start in range(0, total, CHUNK):
        cancel.raise_if_cancelled()
        for pid in all_ids[start : start + CHUNK]:
            key = (pid, responses)
            text = cache.get(key)
            if text is None:
                p = project.prompt(pid)
                parts = [prompt_text(p.prompt), p.reference or ""]
                if responses:
                    parts += [r.text for r in project.responses(pid)]
                text = cache[key] = "\n".join(parts).casefold()
            if all(t in text for t in terms):
                found.append(pid)
        yield Progress(min(start + CHUNK, total), total, "searching")
    return found
