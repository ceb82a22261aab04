"""The docs stay true: the training options page is generated from the config dataclasses."""

from pathlib import Path

from core.training.options_doc import render

REPO = Path(__file__).resolve().parents[1]


def test_training_options_page_is_current():
    assert (REPO / "docs" / "training.md").read_text("utf-8") == render(), (
        "docs/training.md is stale: run `python -m core.training.options_doc > docs/training.md`"
    )


def test_readme_keeps_the_two_setup_commands():
    readme = (REPO / "README.md").read_text("utf-8")
    assert "make run" in readme and "make test" in readme
