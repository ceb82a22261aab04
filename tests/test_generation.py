"""Batched sampling (left padding, static cache, seeds, EOS) and the candidate-generation job."""

import pytest
import torch

from core.jobs import CancelToken, Cancelled, run_job
from core.models.candidates import generate_candidates, model_origin
from core.models.generation import SamplingSettings, eos_token_ids, sample
from core.models.loading import encode_batch, load_model, position_ids_from_mask
from core.project import Project
from tests.models_fixtures import PASS, tiny_gpt2, tiny_qwen2, one_thread  # noqa: F401 (fixtures)

PROMPTS = [
    "Hello there",
    "Please restart the router and check whether the light turns green, then tell me what you see",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my refund?"}],
    "x",
    "Could you share the error message?",
]
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=16)


def _ids(out, row):
    return out.response_ids[row, : int(out.response_mask[row].sum())].tolist()


@pytest.fixture(scope="module", params=["gpt2", "qwen2"])
def loaded(request, tiny_gpt2, tiny_qwen2):
    return load_model(tiny_gpt2 if request.param == "gpt2" else tiny_qwen2, device="cpu")


@pytest.mark.parametrize("backend", ["static", "hf"])
def test_batched_left_padded_greedy_equals_one_by_one(loaded, backend):
    model, tok = loaded
    batch = encode_batch(tok, PROMPTS)
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    out = sample(model, tok, batch["input_ids"], batch["attention_mask"], GREEDY, backend=backend)
    assert out.backend == backend
    for i, prompt in enumerate(PROMPTS):
        one = encode_batch(tok, [prompt])
        alone = sample(model, tok, one["input_ids"], one["attention_mask"], GREEDY, backend=backend)
        assert _ids(out, i) == _ids(alone, 0), f"row {i} differs when batched"
        assert out.texts[i] == alone.texts[0]
    assert torch.equal(out.sequences[:, : batch["input_ids"].shape[1]], batch["input_ids"])


def test_static_loop_matches_transformers_generate(loaded):
    model, tok = loaded
    batch = encode_batch(tok, PROMPTS)
    ours = sample(model, tok, batch["input_ids"], batch["attention_mask"], GREEDY, backend="static")
    ref = model.generate(
        **{k: batch[k] for k in ("input_ids", "attention_mask")},
        do_sample=False,
        max_new_tokens=GREEDY.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos_token_ids(model, tok),
    )
    ref_new = ref[:, batch["input_ids"].shape[1] :]
    for i in range(len(PROMPTS)):
        n = len(_ids(ours, i))
        assert ref_new[i, :n].tolist() == _ids(ours, i)


def test_seeds_make_sampling_reproducible(loaded):
    model, tok = loaded
    batch = encode_batch(tok, PROMPTS)
    s = SamplingSettings(temperature=1.0, top_p=0.9, top_k=50, max_new_tokens=12, seed=7)
    a = sample(model, tok, batch["input_ids"], batch["attention_mask"], s)
    b = sample(model, tok, batch["input_ids"], batch["attention_mask"], s)
    c = sample(model, tok, batch["input_ids"], batch["attention_mask"], SamplingSettings(**{**s.__dict__, "seed": 8}))
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert not torch.equal(a.response_ids, c.response_ids)


def test_each_row_stops_at_its_own_eos(loaded):
    model, tok = loaded
    batch = encode_batch(tok, PROMPTS)
    free = sample(model, tok, batch["input_ids"], batch["attention_mask"], GREEDY)
    # Make the token row 0 emits at step 3 an EOS: row 0 must stop there, others wherever that token occurs.
    stop = int(free.response_ids[0, 3])
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        out = sample(model, tok, batch["input_ids"], batch["attention_mask"], GREEDY)
    finally:
        model.generation_config.eos_token_id = saved
    first_stop = free.response_ids[0].tolist().index(stop)
    assert _ids(out, 0) == free.response_ids[0, : first_stop + 1].tolist()
    for i in range(len(PROMPTS)):
        ids = out.response_ids[i].tolist()
        n = int(out.response_mask[i].sum())
        if stop in ids[:n]:
            assert ids.index(stop) == n - 1  # stops right at it, EOS kept
            assert all(t == tok.pad_token_id for t in ids[n:])  # pad after
        else:
            assert n == GREEDY.max_new_tokens
        assert ids[:n] == free.response_ids[i, :n].tolist()  # same tokens up to the stop


def test_mixed_temperatures_and_logprobs(loaded):
    model, tok = loaded
    batch = encode_batch(tok, PROMPTS)
    greedy = sample(model, tok, batch["input_ids"], batch["attention_mask"], GREEDY)
    temps = [0.0, 1.0, 0.0, 0.7, 1.3]
    s = SamplingSettings(temperature=1.0, top_p=1.0, max_new_tokens=16, seed=1)
    out = sample(model, tok, batch["input_ids"], batch["attention_mask"], s, temperatures=temps, return_logprobs=True)
    for i, t in enumerate(temps):
        if t == 0:
            assert _ids(out, i) == _ids(greedy, i)
    # log-probs equal a fresh forward pass over prompt + response at each row's temperature
    seq = out.sequences
    mask = torch.cat([batch["attention_mask"], out.response_mask], 1)
    with torch.no_grad():
        logits = model(input_ids=seq, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
    P = batch["input_ids"].shape[1]
    scale = torch.tensor([t if t > 0 else 1.0 for t in temps])[:, None, None]
    lp = (logits[:, P - 1 : -1].float() / scale).log_softmax(-1).gather(-1, out.response_ids[..., None]).squeeze(-1)
    lp = lp * out.response_mask
    assert torch.allclose(lp, out.logprobs, atol=2e-4)


def test_model_mode_restored_and_left_padding_required(loaded):
    model, tok = loaded
    batch = encode_batch(tok, PROMPTS[:2])
    model.train()
    sample(model, tok, batch["input_ids"], batch["attention_mask"], GREEDY)
    assert model.training
    model.eval()
    right = batch["attention_mask"].flip(1)
    with pytest.raises(ValueError, match="left-padded"):
        sample(model, tok, batch["input_ids"], right, GREEDY)


# ---------------------------------------------------------------------------------------------------
# the job


def _project(tmp_path, n=6):
    proj = Project.create(tmp_path / "gen.rlhfproj", PASS)
    pids = [proj.add_prompt(f"Question number {i}: where is my order {1000 + i}?") for i in range(n)]
    return proj, pids


SETTINGS = SamplingSettings(temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0, temperatures=(0.9, 1.2))


def test_job_stores_k_per_prompt_and_skips_done_prompts(tmp_path, tiny_qwen2):
    proj, pids = _project(tmp_path)
    events = []
    report = run_job(
        generate_candidates(proj, tiny_qwen2, k=3, settings=SETTINGS, batch_size=5), on_progress=events.append
    )
    origin = model_origin(tiny_qwen2)
    for pid in pids:
        rs = proj.responses(pid)
        assert len(rs) == 3 and len({r.text for r in rs}) == 3
        assert all(r.origin["kind"] == "model" and r.origin["model"] == origin for r in rs)
        assert {r.origin["settings"]["temperature"] for r in rs} <= {0.9, 1.2}
        assert all(r.origin["settings"]["max_new_tokens"] == 12 for r in rs)
    assert report.added == 18 and report.skipped == 0 and not report.short
    assert events[-1].step == events[-1].total
    assert any(e.samples for e in events)
    # a second run has nothing to do
    again = run_job(generate_candidates(proj, tiny_qwen2, k=3, settings=SETTINGS))
    assert again.skipped == len(pids) and again.added == 0
    # raising k tops prompts up
    more = run_job(generate_candidates(proj, tiny_qwen2, k=4, settings=SETTINGS, prompt_ids=pids[:2]))
    assert more.added == 2 and [len(proj.responses(p)) for p in pids] == [4, 4, 3, 3, 3, 3]
    proj.close()


def test_job_resumes_after_cancel_without_duplicates(tmp_path, tiny_gpt2):
    proj, pids = _project(tmp_path)
    token = CancelToken()
    job = generate_candidates(proj, tiny_gpt2, k=3, settings=SETTINGS, batch_size=4, cancel=token)
    with pytest.raises(Cancelled):
        for event in job:
            if event.message == "generating" and event.step >= 8:
                token.cancel()
    partial = sum(len(proj.responses(p)) for p in pids)
    assert partial == 8  # two whole batches, nothing of the third
    report = run_job(generate_candidates(proj, tiny_gpt2, k=3, settings=SETTINGS, batch_size=4))
    assert report.added == 18 - 8
    for pid in pids:
        texts = [r.text for r in proj.responses(pid)]
        assert len(texts) == 3 == len(set(texts))
    # the resumed run sampled what an uninterrupted run would have
    with Project.create(tmp_path / "ref.rlhfproj", PASS) as ref:
        for i in range(6):
            ref.add_prompt(f"Question number {i}: where is my order {1000 + i}?")
        run_job(generate_candidates(ref, tiny_gpt2, k=3, settings=SETTINGS, batch_size=4))
        assert {p.id: sorted(r.text for r in ref.responses(p.id)) for p in ref.prompts()} == {
            p: sorted(r.text for r in proj.responses(p)) for p in pids
        }
    proj.close()


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield


# ---------------------------------------------------------------------------------------------------
# command line and the shared progress driver


def test_cli_generate_fills_and_resumes(tmp_path, tiny_gpt2, capsys):
    from core.cli import main

    proj, pids = _project(tmp_path, n=3)
    proj.close()
    pw = tmp_path / "pw"
    pw.write_text(PASS + "\n")
    args = [
        "generate",
        str(tmp_path / "gen.rlhfproj"),
        "--model",
        tiny_gpt2,
        "-k",
        "2",
        "--max-new-tokens",
        "8",
        "--temperatures",
        "0.8,1.2",
        "--passphrase-file",
        str(pw),
    ]
    assert main(args) == 0
    assert "6 candidates added" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 candidates added" in capsys.readouterr().out
    with Project.open(tmp_path / "gen.rlhfproj", PASS) as proj:
        assert [len(proj.responses(p)) for p in pids] == [2, 2, 2]
    assert (
        main(["generate", str(tmp_path / "gen.rlhfproj"), "--model", str(tmp_path), "--passphrase-file", str(pw)]) == 2
    )  # not a model folder: a clear error, exit 2
    assert "not a Hugging Face model folder" in capsys.readouterr().err


def test_progress_driver_turns_ctrl_c_into_cancel():
    import os
    import signal

    from core.cli.progress import run_with_progress
    from core.jobs import Progress

    token = CancelToken()
    steps = []

    def job(cancel):
        for i in range(100):
            cancel.raise_if_cancelled()
            steps.append(i)
            if i == 3:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C
            yield Progress(i + 1, 100, "working", metrics={"loss/x": 1.0 / (i + 1)})
        return "finished"

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Cancelled):
        run_with_progress(job(token), token, desc="t", disable=True)
    assert token.cancelled and steps == [0, 1, 2, 3]
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    def quiet(cancel):
        for i in range(3):
            cancel.raise_if_cancelled()
            yield Progress(i + 1, 3, "working")
        return "finished"

    assert run_with_progress(quiet(CancelToken()), CancelToken(), disable=True) == "finished"
