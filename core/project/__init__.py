"""The encrypted local project: keys, field cipher, schema, lock, audit log, artifacts, backup."""
from core.project.store import (
    DEFAULT_TAGS,
    SUFFIX,
    ArtifactInfo,
    Judgment,
    Pair,
    Project,
    Prompt,
    Response,
    Run,
)

__all__ = ["Project", "Prompt", "Response", "Judgment", "Pair", "Run", "ArtifactInfo", "DEFAULT_TAGS", "SUFFIX"]
