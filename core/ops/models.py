"""Model operations: check and describe local model folders, export a tuned model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Progress


def validate_model_job(path: str | Path, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Check a folder with the loader (files, config, tokenizer) and describe it; returns describe_model's dict."""
    from core.models.loading import check_model_folder, describe_model, load_tokenizer

    yield Progress(0, 3, "checking the folder")
    check_model_folder(path)
    cancel.raise_if_cancelled()
    yield Progress(1, 3, "loading the tokenizer")
    load_tokenizer(path)
    cancel.raise_if_cancelled()
    yield Progress(2, 3, "estimating memory")
    info = describe_model(path)
    yield Progress(3, 3, "done")
    return info


def describe_models_job(paths: list[str], cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """{path: describe_model dict, or {"error": message}} for each folder (a missing one is an error row)."""
    from core.models.loading import describe_model

    out: dict[str, dict[str, Any]] = {}
    for i, path in enumerate(paths):
        cancel.raise_if_cancelled()
        yield Progress(i, len(paths), "estimating memory")
        try:
            out[path] = describe_model(path)
        except UserError as exc:
            out[path] = {"error": str(exc)}
    yield Progress(len(paths), len(paths), "done")
    return out


def export_job(project, run_id: int, folder: str, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """core.training.export.export_model (plaintext: the user confirmed), imported on the worker."""
    from core.training.export import export_model

    yield Progress(0, None, "exporting the model")
    return export_model(project, run_id, folder, plaintext=True)
