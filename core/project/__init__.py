"""The encrypted local project: keys, field cipher, schema, lock, audit log, artifacts, backup."""

from core.project.records import DEFAULT_TAGS, SUFFIX, ArtifactInfo, Judgment, Pair, Prompt, Response, Run
from core.project.store import Project

__all__ = ["Project", "Prompt", "Response", "Judgment", "Pair", "Run", "ArtifactInfo", "DEFAULT_TAGS", "SUFFIX"]
