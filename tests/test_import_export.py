"""Import of every format, malformed files rejected whole with line numbers, export round trips."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from core.data import export_data, import_file, preview
from core.errors import ImportFailed, UserError
from core.jobs import run_job
from core.project import Project


@pytest.fixture
def project(tmp_path):
    proj = Project.create(tmp_path / "p", "pw")
    yield proj
    proj.close()


def _write(tmp_path, name, content) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, list):
        path.write_text("".join(json.dumps(o) + "\n" for o in content))
    else:
        path.write_text(content)
    return path


def _snapshot(proj):
    return (
        proj.counts(),
        [(p.id, p.prompt) for p in proj.prompts()],
        [(j.id, j.kind, j.status) for j in proj.judgments(include_history=True, purpose=None)],
    )


def test_prompt_only_with_reference_and_split(project, tmp_path):
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    f = _write(
        tmp_path,
        "p.jsonl",
        [{"prompt": "a", "reference": "gold"}, {"prompt": "b", "split": "heldout"}, {"prompt": chat}],
    )
    report = run_job(import_file(project, f))
    assert (report.prompts_added, report.shape) == (3, "prompts")
    ps = project.prompts()
    assert ps[0].reference == "gold" and ps[1].split == "heldout" and ps[2].is_chat


def test_responses_and_ranking_with_ties(project, tmp_path):
    f = _write(
        tmp_path,
        "r.jsonl",
        [
            {"prompt": "q1", "responses": ["a", "b", "c"]},
            {"prompt": "q2", "responses": ["x", "y", "z", "w"], "ranking": [2, 0, 3, 1]},
            {"prompt": "q3", "responses": ["x", "y", "z"], "ranking": [[1, 2], [0]]},
        ],
    )
    run_job(import_file(project, f))
    q2, q3 = project.prompts()[1:]
    ids2 = [r.id for r in project.responses(q2.id)]
    assert project.judgments(prompt_id=q2.id)[0].tiers == [[ids2[2]], [ids2[0]], [ids2[3]], [ids2[1]]]
    ids3 = [r.id for r in project.responses(q3.id)]
    assert project.judgments(prompt_id=q3.id)[0].tiers == [[ids3[1], ids3[2]], [ids3[0]]]
    assert len(project.preference_pairs()) == 6 + 2


def test_trl_pairs_standard_conversational_and_implicit(project, tmp_path):
    f = _write(
        tmp_path,
        "pairs.jsonl",
        [
            {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
            {
                "prompt": [{"role": "user", "content": "What colour is the sky?"}],
                "chosen": [{"role": "assistant", "content": "Blue."}],
                "rejected": [{"role": "assistant", "content": "Green."}],
            },
            {"chosen": "\n\nHuman: hi\n\nAssistant: hello!", "rejected": "\n\nHuman: hi\n\nAssistant: go away"},
            {
                "chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bye"}],
            },
        ],
    )
    run_job(import_file(project, f))
    pairs = project.preference_pairs()
    texts = [(project.response(p.chosen_id).text, project.response(p.rejected_id).text) for p in pairs]
    assert texts == [(" blue.", " green."), ("Blue.", "Green."), ("hello!", "go away"), ("hello", "bye")]
    prompts = [p.prompt for p in project.prompts()]
    assert prompts[2] == "\n\nHuman: hi\n\nAssistant:" and prompts[3] == [{"role": "user", "content": "hi"}]


def test_rated_completions(project, tmp_path):
    f = _write(
        tmp_path,
        "rated.json",
        json.dumps(
            [
                {
                    "prompt": "q",
                    "completions": [
                        {"text": "a", "rating": 6},
                        {"response": "b", "score": 2.5},
                        {"text": "c", "rating": 6},
                    ],
                }
            ]
        ),
    )
    run_job(import_file(project, f))
    (j,) = project.judgments()
    assert sorted(j.ratings.values()) == [2.5, 6.0, 6.0]
    assert len(project.preference_pairs()) == 2  # equal ratings give no pair


def test_csv_pairs_and_responses_with_ranking(project, tmp_path):
    f1 = _write(tmp_path, "pairs.csv", 'prompt,chosen,rejected\n"Hi, there",good,bad\nq2,"multi\nline",no\n')
    f2 = _write(
        tmp_path, "ranked.csv", 'prompt,response_1,response_2,response_3,ranking\nq3,a,b,c,"[2, 0, 1]"\nq4,d,e,,\n'
    )
    run_job(import_file(project, f1))
    run_job(import_file(project, f2))
    assert [p.prompt for p in project.prompts()] == ["Hi, there", "q2", "q3", "q4"]
    assert project.responses(2)[0].text == "multi\nline"
    assert len(project.responses(4)) == 2
    assert len(project.preference_pairs()) == 2 + 3


def test_dedupe_on_reimport(project, tmp_path):
    f = _write(tmp_path, "r.jsonl", [{"prompt": "q", "responses": ["a", "b"], "ranking": [1, 0]}])
    run_job(import_file(project, f))
    again = run_job(import_file(project, f))
    assert (again.prompts_added, again.responses_added, again.judgments_added) == (0, 0, 0)
    assert project.counts()["responses"] == 2


MALFORMED = [
    ("truncated.jsonl", b'{"prompt": "ok"}\n{"prompt": "cut', r"truncated\.jsonl:2: invalid JSON"),
    (
        "types.jsonl",
        b'{"prompt": "ok"}\n{"prompt": "q", "responses": "notalist"}\n',
        r"types\.jsonl:2: field 'responses' must be a non-empty list",
    ),
    ("types2.jsonl", b'{"prompt": 5}\n', r"types2\.jsonl:1: field 'prompt' must be a string or a list"),
    (
        "rank.jsonl",
        b'{"prompt": "q", "responses": ["a"], "ranking": [3]}\n',
        r"rank\.jsonl:1: field 'ranking' index 3 is out of range",
    ),
    ("empty.jsonl", b"", r"empty\.jsonl: the file is empty"),
    ("bad_utf8.jsonl", b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', r"bad_utf8\.jsonl:2: not valid UTF-8"),
    ("missing.csv", b"prompt,chosen\nq,a\n", r"missing\.csv:1: missing column 'rejected'"),
    ("array.json", b'[{"prompt": "a"},\n {"prompt": "b"},\n {"nope": 1}]', r"array\.json:3: field 'prompt' is missing"),
    (
        "huge.jsonl",
        b'{"prompt": "ok"}\n{"prompt": "' + b"x" * (10 * 1024 * 1024) + b'"}\n',
        r"huge\.jsonl:2: the line is 10\.0 MB, over the 4 MB limit",
    ),
]


@pytest.mark.parametrize("name,content,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_rejected_whole(project, tmp_path, name, content, message):
    run_job(import_file(project, _write(tmp_path, "seed.jsonl", [{"prompt": "seed", "responses": ["s"]}])))
    before = _snapshot(project)
    with pytest.raises(ImportFailed, match=message) as info:
        run_job(import_file(project, _write(tmp_path, name, content)))
    assert "nothing was changed" in str(info.value)
    assert _snapshot(project) == before


def test_preview_shows_rows_and_errors(tmp_path):
    f = _write(tmp_path, "mixed.jsonl", b'{"prompt": "a", "responses": ["x", "y"]}\n{"prompt": 1}\n{"prompt": "b"}\n')
    pv = preview(f, limit=5)
    assert pv.fmt == "jsonl" and pv.total == 2 and len(pv.records) == 2
    assert pv.errors == ["mixed.jsonl:2: field 'prompt' must be a string or a list of chat messages, not a number"]


def test_export_needs_plaintext_confirmation(project, tmp_path):
    with pytest.raises(UserError, match="unencrypted"):
        run_job(export_data(project, tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()


def test_trl_pairs_export(project, tmp_path):
    f = _write(tmp_path, "r.jsonl", [{"prompt": "q", "responses": ["a", "b", "c"], "ranking": [[2], [0, 1]]}])
    run_job(import_file(project, f))
    n = run_job(export_data(project, tmp_path / "pairs.jsonl", what="pairs", plaintext=True))
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert n == 2 and rows == [
        {"prompt": "q", "chosen": "c", "rejected": "a"},
        {"prompt": "q", "chosen": "c", "rejected": "b"},
    ]


text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(lambda s: s.strip())
prompt_st = st.one_of(
    text,
    st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": text}), min_size=1, max_size=2
    ),
)


@st.composite
def datasets(draw):
    prompts = draw(st.lists(prompt_st, min_size=1, max_size=5, unique_by=lambda p: json.dumps(p, sort_keys=True)))
    rows = []
    for p in prompts:
        responses = draw(st.lists(text, min_size=0, max_size=4, unique=True))
        row = {"prompt": p}
        if responses:
            row["responses"] = responses
            if draw(st.booleans()):
                order = draw(st.permutations(range(len(responses))))
                cuts = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
                tiers, cur = [], []
                for idx, cut in zip(order, cuts):
                    cur.append(idx)
                    if cut:
                        tiers.append(cur)
                        cur = []
                if cur:
                    tiers.append(cur)
                row["ranking"] = tiers
        rows.append(row)
    return rows


def _canon(proj):
    out = []
    for p in proj.prompts():
        resp = {r.id: r.text for r in proj.responses(p.id)}
        ranking = [j.tiers for j in proj.judgments(prompt_id=p.id, kind="ranking")]
        tiers = [sorted(resp[r] for r in tier) for tier in ranking[0]] if ranking else None
        out.append((json.dumps(p.prompt, sort_keys=True), sorted(resp.values()), tiers))
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=datasets())
def test_rankings_round_trip(tmp_path_factory, fmt, rows):
    tmp = tmp_path_factory.mktemp("rt")
    src = _write(tmp, "src.jsonl", rows)
    with Project.create(tmp / "a", "pw") as a:
        run_job(import_file(a, src))
        run_job(export_data(a, tmp / f"out.{fmt}", what="rankings", fmt=fmt, plaintext=True))
        expected = _canon(a)
    with Project.create(tmp / "b", "pw") as b:
        run_job(import_file(b, tmp / f"out.{fmt}"))
        assert _canon(b) == expected
