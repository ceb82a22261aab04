"""Import a file into a project: validate everything first, then write it in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core.data.formats import ImportRecord, detect_format, iter_records
from core.errors import ImportFailed, UserError
from core.jobs import NEVER, CancelToken, Progress

MAX_ERRORS_KEPT = 200


@dataclass
class Preview:
    fmt: str
    shape: str
    records: list[ImportRecord]
    errors: list[str]
    total: int


@dataclass
class ImportReport:
    records: int = 0
    prompts_added: int = 0
    prompts_existing: int = 0
    responses_added: int = 0
    judgments_added: int = 0
    fmt: str = ""
    shape: str = ""


def _shape(records: list[ImportRecord]) -> str:
    shapes = [r.shape for r in records]
    return max(set(shapes), key=shapes.count) if shapes else "prompts"


def preview(path: str | Path, limit: int = 20, fmt: Optional[str] = None) -> Preview:
    """The first `limit` records and every error in the file (for the import dialog)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    fmt = fmt or detect_format(path)
    records, errors, total = [], [], 0
    for record, error in iter_records(path, fmt):
        if error:
            if len(errors) < MAX_ERRORS_KEPT:
                errors.append(error)
            continue
        total += 1
        if len(records) < limit:
            records.append(record)
    return Preview(fmt, _shape(records), records, errors, total)


def import_file(
    project, path: str | Path, *, fmt: Optional[str] = None, split: Optional[str] = None, cancel: CancelToken = NEVER
):
    """Job: import every record of `path`, or nothing (ImportFailed lists each error by line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    fmt = fmt or detect_format(path)
    yield Progress(0, None, "reading file")
    records: list[ImportRecord] = []
    errors: list[str] = []
    for i, (record, error) in enumerate(iter_records(path, fmt)):
        if error:
            errors.append(error)
        else:
            records.append(record)
        if i % 5000 == 0:
            cancel.raise_if_cancelled()
    if errors:
        raise ImportFailed(path, errors)
    if not records:
        raise ImportFailed(path, [f"{path.name}: no records found"])
    total = len(records)
    report = ImportReport(records=total, fmt=fmt, shape=_shape(records))
    yield Progress(0, total, "validated; writing")
    batch = 5000
    # One transaction for the whole file: a cancel or an error rolls everything back.
    cache: dict = {}
    with project.transaction():
        for start in range(0, total, batch):
            cancel.raise_if_cancelled()
            chunk = records[start : start + batch]
            added = project.add_many(
                ((r.prompt, r.reference, r.split or split or "train", r.responses) for r in chunk),
                origin={"kind": "import", "file": path.name},
                cache=cache,
            )
            for record, (pid, rids, is_new, new_responses) in zip(chunk, added):
                report.prompts_added += is_new
                report.responses_added += new_responses
                report.prompts_existing += not is_new
                report.judgments_added += _record_judgment(project, record, pid, rids)
            yield Progress(min(start + batch, total), total, "importing")
    project.audit("imported", records=total, prompts_added=report.prompts_added, fmt=fmt)
    return report


def _record_judgment(project, record: ImportRecord, pid: int, rids: list[int]) -> int:
    """Record the file's judgment unless the same one is already current (re-imports are idempotent)."""
    current = project.judgments(prompt_id=pid) if record.shape not in ("prompts", "responses") else []
    if record.ranking is not None:
        tiers = [[rids[i] for i in tier] for tier in record.ranking]
        if any(j.kind == "ranking" and j.tiers == tiers for j in current):
            return 0
        project.record_ranking(pid, tiers)
        return 1
    if record.preference is not None:
        a, b = rids[record.preference[0]], rids[record.preference[1]]
        if any(j.kind == "pairwise" and (j.a, j.b, j.choice) == (a, b, "a") for j in current):
            return 0
        project.record_pairwise(pid, a, b, "a")
        return 1
    if record.ratings is not None and any(r is not None for r in record.ratings):
        ratings = {rids[i]: r for i, r in enumerate(record.ratings) if r is not None}
        if any(j.kind == "rating" and j.ratings == ratings for j in current):
            return 0
        project.record_ratings(pid, ratings)
        return 1
    return 0
