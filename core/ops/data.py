"""Data operations: candidates from a local model, the audit log with its verdict."""

from __future__ import annotations

from core.jobs import NEVER, CancelToken, Progress


def generation_job(proj, model: str, k: int, settings: dict, split, prompt_ids, cancel: CancelToken = NEVER):
    """core.models.candidates.generate_candidates, with its imports on the worker thread."""
    from core.models.candidates import generate_candidates
    from core.models.generation import SamplingSettings

    return (
        yield from generate_candidates(
            proj,
            model,
            k=k,
            settings=SamplingSettings.from_dict(settings),
            split=split,
            prompt_ids=prompt_ids,
            cancel=cancel,
        )
    )


def audit_job(project, cancel: CancelToken = NEVER):
    """(the audit log's entries, the chain's problems): what the Activity page shows."""
    yield Progress(0, 2, "reading the audit log")
    log = project.audit_log()
    cancel.raise_if_cancelled()
    yield Progress(1, 2, "verifying the chain")
    return log, project.verify_audit()
