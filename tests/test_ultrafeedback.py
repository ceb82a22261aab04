"""UltraFeedback's raw shape (instruction + completions with response and overall_score) imports as
rated completions; its extra fields are ignored and a bad score is reported by line and field."""

import json

import pytest

from core.data import import_file
from core.errors import ImportFailed
from core.jobs import run_job
from core.project import Project

PASS = "correct horse battery staple"

ROW = {
    "source": "evol_instruct",
    "instruction": "Name a prime number.",
    "models": ["a", "b", "c"],
    "completions": [
        {
            "model": "a",
            "response": "7 is prime.",
            "overall_score": 8.5,
            "critique": "fine",
            "annotations": {"helpfulness": {"Rating": "5"}},
            "fine-grained_score": 4.75,
        },
        {"model": "b", "response": "9.", "overall_score": 2.0, "annotations": {}},
        {"model": "c", "response": "2, the only even prime.", "overall_score": 9, "annotations": {}},
    ],
    "correct_answers": ["2"],
    "incorrect_answers": ["9"],
}


@pytest.fixture
def project(tmp_path):
    proj = Project.create(tmp_path / "uf.rlhfproj", PASS)
    yield proj
    proj.close()


def test_ultrafeedback_raw_rows_import_as_ratings(project, tmp_path):
    f = tmp_path / "uf.jsonl"
    f.write_text(json.dumps(ROW) + "\n")
    run_job(import_file(project, f))
    (p,) = project.prompts()
    assert p.prompt == "Name a prime number."
    (j,) = project.judgments()
    by_text = {project.response(rid).text: v for rid, v in j.ratings.items()}
    assert by_text == {"7 is prime.": 8.5, "9.": 2.0, "2, the only even prime.": 9.0}
    pairs = {
        (project.response(x.chosen_id).text, project.response(x.rejected_id).text) for x in project.preference_pairs()
    }
    assert ("2, the only even prime.", "9.") in pairs and len(pairs) == 3


def test_ultrafeedback_bad_score_names_line_and_field(project, tmp_path):
    bad = json.loads(json.dumps(ROW))
    bad["completions"][1]["overall_score"] = "N/A"
    f = tmp_path / "uf.jsonl"
    f.write_text(json.dumps(ROW) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ImportFailed, match=r"uf\.jsonl:2: .*completions\[1\]\.overall_score.*must be a number"):
        run_job(import_file(project, f))
    assert project.prompts() == []
