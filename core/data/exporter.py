"""Exports: TRL preference pairs, rankings (which round-trip through import), prompts.

Every export writes plaintext, so it needs `plaintext=True`: the CLI asks for `--plaintext` and the GUI
asks the user to confirm. Files are written atomically and the export is audited (counts only).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Progress

WHAT = ("pairs", "rankings", "prompts")
EXPORT_FORMATS = ("jsonl", "json", "csv")


def _completion(prompt: Any, text: str) -> Any:
    # TRL's conversational form when the prompt is a chat, standard form otherwise.
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


def _pairs_rows(project, cancel) -> Iterator[dict]:
    by_prompt: dict[int, list] = {}
    for pair in project.preference_pairs():
        by_prompt.setdefault(pair.prompt_id, []).append(pair)
    for i, (pid, pairs) in enumerate(by_prompt.items()):
        if i % 500 == 0:
            cancel.raise_if_cancelled()
        prompt = project.prompt(pid).prompt
        text = {r.id: r.text for r in project.responses(pid)}
        for pair in pairs:
            yield {
                "prompt": prompt,
                "chosen": _completion(prompt, text[pair.chosen_id]),
                "rejected": _completion(prompt, text[pair.rejected_id]),
            }


def _ranking_rows(project, cancel) -> Iterator[dict]:
    rankings = {j.prompt_id: j.tiers for j in project.judgments(kind="ranking")}
    for i, p in enumerate(project.prompts()):
        if i % 500 == 0:
            cancel.raise_if_cancelled()
        responses = project.responses(p.id)
        row: dict[str, Any] = {"prompt": p.prompt, "responses": [r.text for r in responses]}
        tiers = rankings.get(p.id)
        if tiers:
            index = {r.id: k for k, r in enumerate(responses)}
            tiers_idx = [[index[r] for r in tier] for tier in tiers]
            row["ranking"] = [t[0] for t in tiers_idx] if all(len(t) == 1 for t in tiers_idx) else tiers_idx
        if p.reference is not None:
            row["reference"] = p.reference
        row["split"] = p.split
        if not responses:
            del row["responses"]
        yield row


def _prompt_rows(project, cancel) -> Iterator[dict]:
    for i, p in enumerate(project.prompts()):
        if i % 500 == 0:
            cancel.raise_if_cancelled()
        row: dict[str, Any] = {"prompt": p.prompt, "split": p.split}
        if p.reference is not None:
            row["reference"] = p.reference
        yield row


def _csv_cell(value: Any) -> str:
    if (
        isinstance(value, list)
        and value
        and isinstance(value[0], dict)
        and value[0].get("role") == "assistant"
        and len(value) == 1
    ):
        return value[0]["content"]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _to_csv(rows: list[dict], what: str) -> str:
    buf = io.StringIO()
    if what == "pairs":
        header = ["prompt", "chosen", "rejected"]
        flat = [{k: _csv_cell(r[k]) for k in header} for r in rows]
    elif what == "rankings":
        k = max((len(r.get("responses", [])) for r in rows), default=0)
        header = ["prompt"] + [f"response_{i + 1}" for i in range(k)] + ["ranking", "reference", "split"]
        flat = []
        for r in rows:
            out = {
                "prompt": _csv_cell(r["prompt"]),
                "ranking": json.dumps(r["ranking"]) if "ranking" in r else "",
                "reference": r.get("reference") or "",
                "split": r["split"],
            }
            for i, text in enumerate(r.get("responses", [])):
                out[f"response_{i + 1}"] = text
            flat.append(out)
    else:
        header = ["prompt", "reference", "split"]
        flat = [
            {"prompt": _csv_cell(r["prompt"]), "reference": r.get("reference") or "", "split": r["split"]} for r in rows
        ]
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\r\n")  # RFC 4180; also quotes a bare \r
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def export_data(
    project,
    path: str | Path,
    *,
    what: str = "pairs",
    fmt: str = "jsonl",
    plaintext: bool = False,
    cancel: CancelToken = NEVER,
):
    """Job: write `what` to `path` in `fmt`. Returns the number of rows written."""
    if what not in WHAT:
        raise UserError(f"Unknown export {what!r}; choose one of {', '.join(WHAT)}.")
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"Unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    if not plaintext:
        raise UserError("An export writes your data unencrypted. Confirm it explicitly (--plaintext).")
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder.")
    source = {"pairs": _pairs_rows, "rankings": _ranking_rows, "prompts": _prompt_rows}[what]
    rows = []
    for row in source(project, cancel):
        rows.append(row)
        if len(rows) % 1000 == 0:
            yield Progress(len(rows), None, "collecting")
    cancel.raise_if_cancelled()
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif fmt == "json":
        text = json.dumps(rows, ensure_ascii=False, indent=1)
    else:
        text = _to_csv(rows, what)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    project.audit("exported", what=what, fmt=fmt, rows=len(rows))
    yield Progress(len(rows), len(rows), "written")
    return len(rows)
