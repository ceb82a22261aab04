"""The embedded demo model and the demo project, offline."""

import json
import statistics

import pytest
import torch

from core.demo import corpus as C
from core.demo.build_model import BuildConfig, build
from core.demo.metrics import distinct_n, diversity, unique_share
from core.demo.project import DEMO_TAGS, GUIDELINES, create_demo_project, demo_model_dir, demo_settings
from core.jobs import run_job
from core.models.candidates import generate_candidates
from core.models.generation import SamplingSettings, generate_texts
from core.models.loading import load_model
from core.project import Project
from tests.models_fixtures import PASS, no_network, one_thread  # noqa: F401 (fixtures)

DEMO = demo_model_dir()


def test_committed_demo_model_is_small_and_loads_and_generates():
    size = sum(f.stat().st_size for f in DEMO.iterdir() if f.is_file())
    assert size < 10_000_000
    model, tok = load_model(DEMO, device="cpu")
    assert model.config.model_type == "qwen2" and tok.pad_token_id != tok.eos_token_id
    prompts = C.demo_prompts(12, seed=99)
    replies = generate_texts(model, tok, prompts, SamplingSettings(temperature=0, max_new_tokens=112))
    assert all(r.strip() for r in replies)
    # Greedy replies are real support replies: mostly finished sentences that score above the
    # low-temperature-free baseline of an empty/garbled reply (expert_score("") is negative).
    finished = sum(r.rstrip()[-1] in ".!?" for r in replies)
    assert finished >= 0.8 * len(replies)
    greedy_score = statistics.mean(C.expert_score(p, r) for p, r in zip(prompts, replies))
    assert greedy_score > C.expert_score(prompts[0], "ok")


def test_demo_candidates_differ_in_quality():
    """The temperature mix spreads candidates: per prompt, the expert's scores are not all equal."""
    model, tok = load_model(DEMO, device="cpu")
    prompts = C.demo_prompts(10, seed=5)
    s = demo_settings(seed=3)
    rows = [p for p in prompts for _ in range(4)]
    temps = [s.temperature_for(i) for i in range(4)] * len(prompts)
    from core.models.loading import encode_batch
    from core.models.generation import sample

    batch = encode_batch(tok, rows)
    out = sample(model, tok, batch["input_ids"], batch["attention_mask"], s, temperatures=temps)
    groups = [out.texts[i * 4 : i * 4 + 4] for i in range(len(prompts))]
    spread = [len({C.expert_score(p, t) for t in g}) > 1 for p, g in zip(prompts, groups)]
    assert sum(spread) >= 0.75 * len(prompts)
    assert unique_share(groups) > 0.9


def test_dropping_finished_rows_changes_nothing():
    """Row compaction (finished rows leave the batch) gives the same greedy tokens and exact log-probs."""
    from core.models.generation import sample
    from core.models.loading import encode_batch, position_ids_from_mask

    model, tok = load_model(DEMO, device="cpu")
    batch = encode_batch(tok, C.demo_prompts(12, seed=8))
    s = SamplingSettings(temperature=0, max_new_tokens=112)
    full = sample(model, tok, batch["input_ids"], batch["attention_mask"], s, compact_rows=False)
    lengths = full.response_mask.sum(1)
    assert lengths.min() < 40 < lengths.max()  # rows really finish at different steps
    temps = [0.0, 1.0] * 6
    out = sample(
        model,
        tok,
        batch["input_ids"],
        batch["attention_mask"],
        s,
        temperatures=temps,
        compact_rows=True,
        return_logprobs=True,
    )

    def ids(o, i):
        return o.response_ids[i, : int(o.response_mask[i].sum())].tolist()

    assert all(ids(out, i) == ids(full, i) for i in range(0, 12, 2))
    mask = torch.cat([batch["attention_mask"], out.response_mask], 1)
    with torch.no_grad():
        logits = model(input_ids=out.sequences, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
    P = batch["input_ids"].shape[1]
    scale = torch.tensor([t or 1.0 for t in temps])[:, None, None]
    lp = (logits[:, P - 1 : -1] / scale).log_softmax(-1).gather(-1, out.response_ids[..., None]).squeeze(-1)
    assert torch.allclose(lp * out.response_mask, out.logprobs, atol=1e-4)


def test_build_script_regenerates_a_model_reproducibly(tmp_path):
    cfg = BuildConfig(
        examples=300, vocab_size=400, hidden=32, layers=1, heads=2, steps=8, batch_size=8, max_positions=256
    )
    a = build(tmp_path / "a", cfg, log=lambda *_: None)
    b = build(tmp_path / "b", cfg, log=lambda *_: None)
    for name in ("config.json", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    info = json.loads((a / "build.json").read_text())
    assert info["config"]["steps"] == 8
    model, tok = load_model(a, device="cpu")
    assert (
        generate_texts(
            model, tok, ["My order 12345 has not arrived."], SamplingSettings(temperature=0, max_new_tokens=8)
        )
        is not None
    )


def test_corpus_is_varied_and_expert_score_tracks_quality():
    ex = list(C.examples(600, seed=1))
    by_kind = {
        k: statistics.mean(C.expert_score(e.request, e.reply) for e in ex if e.kind == k)
        for k in ("helpful", "inaccurate", "vague", "off_topic")
    }
    assert by_kind["helpful"] > max(by_kind["inaccurate"], by_kind["vague"], by_kind["off_topic"]) + 2
    by_tone = {
        t: statistics.mean(C.expert_score(e.request, e.reply) for e in ex if e.tone == t)
        for t in ("polite", "neutral", "rude")
    }
    assert by_tone["polite"] > by_tone["neutral"] > by_tone["rude"]
    assert len({e.reply for e in ex}) > 0.95 * len(ex)
    assert len(set(C.demo_prompts(240))) == 240
    assert sum(C.classify_request(e.request).key == e.topic for e in ex) > 0.95 * len(ex)


def test_diversity_metrics():
    assert unique_share([["a", "a", "b"], ["c"]]) == pytest.approx(3 / 4)
    assert distinct_n(["a b c d e", "a b c d f"], 4) == pytest.approx(3 / 4)
    assert distinct_n(["short"], 4) == 0.0
    d = diversity([["a b c d e", "a b c d e"]])
    assert d["unique_share"] == 0.5 and d["distinct_4_within_prompt"] == 0.5


def test_demo_project_and_generation_run_offline(tmp_path, no_network):
    import socket

    with pytest.raises(OSError):  # the patch is live
        socket.create_connection(("example.com", 80))
    n_attempts = len(no_network)
    report = run_job(create_demo_project(tmp_path / "demo", PASS, n_prompts=40, seed=0))
    assert report.path.name == "demo.rlhfproj"
    assert report.prompts == 40 and report.heldout == 8 and report.responses == 40 * 6
    assert report.unique_share > 0.9 and report.distinct_4 > 0.1
    with Project.open(report.path, PASS) as proj:
        assert len(proj.prompts(split="heldout")) == 8
        assert all(len(proj.responses(p.id)) == 6 for p in proj.prompts())  # DEFAULT_K
        assert proj.get_setting("guidelines") == GUIDELINES
        assert proj.get_setting("tags") == DEMO_TAGS
        # the generation job, offline too: top two prompts up to 7 with a different temperature
        extra = run_job(
            generate_candidates(
                proj, DEMO, k=7, prompt_ids=[1, 2], settings=SamplingSettings(temperature=0.9, max_new_tokens=64)
            )
        )
        assert extra.added == 2 and extra.skipped == 0
        assert [len(proj.responses(p)) for p in (1, 2, 3)] == [7, 7, 6]
    assert len(no_network) == n_attempts  # nothing even tried to connect


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
