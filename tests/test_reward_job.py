"""The reward-model job on a real encrypted project: learning, held-out split, cancel and resume."""

import random

import pytest

from core.errors import UserError
from core.jobs import CancelToken, Cancelled, run_job
from core.project import Project
from core.training.reward import (
    RewardConfig,
    collect_data,
    load_reward_model,
    tokenize,
    with_off_topic_contrasts,
    score_prompt,
    train_reward_model,
)
from tests.reward_fixtures import reward_one_thread, tiny_base  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("reward_one_thread")

PASS = "correct horse"
WORDS = (
    "please restart the router and check the light your order ships today a refund is on its way "
    "we updated the account try again later thank you for waiting the package arrives monday"
).split()
QUESTIONS = [
    "My order is late.",
    "The router blinks red.",
    "I was charged twice.",
    "Where is my package?",
    "I cannot log in.",
    "The app crashes.",
]


def _oracle_prefers(text: str) -> bool:
    """The test's hidden rule: an apology is better. The trainer never sees this function."""
    return "sorry" in text.split()


def _response(rng: random.Random, apologetic: bool) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 10))]
    if apologetic:
        words.insert(rng.randrange(len(words) + 1), "sorry")
    return " ".join(words)


def _fill(proj: Project, n_train: int, n_heldout: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with proj.transaction():
        pass
    for i in range(n_train + n_heldout):
        split = "train" if i < n_train else "heldout"
        pid = proj.add_prompt(f"{QUESTIONS[i % len(QUESTIONS)]} (case {i})", split=split)
        kinds = [True, True, False, False]
        rng.shuffle(kinds)
        rids = [proj.add_response(pid, _response(rng, k), origin={"kind": "import"}) for k in kinds]
        texts = {r.id: r.text for r in proj.responses(pid)}
        good = [r for r in rids if _oracle_prefers(texts[r])]
        bad = [r for r in rids if not _oracle_prefers(texts[r])]
        if i % 5 == 4:  # some prompts judged pairwise instead of ranked
            proj.record_pairwise(pid, a=bad[0], b=good[0], result="b")
            proj.record_pairwise(pid, a=good[1], b=bad[1], result="a")
        else:
            proj.record_ranking(pid, tiers=[good, bad])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = Project.create(tmp_path_factory.mktemp("rm") / "rm.rlhfproj", PASS)
    _fill(proj, n_train=60, n_heldout=8)
    yield proj
    proj.close()


def _config(base, **kw):
    values = dict(
        base_model=base,
        device="cpu",
        learning_rate=1e-3,
        warmup_ratio=0.05,
        epochs=4,
        prompts_per_micro_batch=4,
        grad_accum_steps=1,
        max_length=48,
        val_fraction=0.2,
        eval_every=12,
        early_stopping_patience=0,
        checkpoint_every=25,
        min_pairs=20,
        seed=0,
    )
    values.update(kw)
    return RewardConfig(**values)


def test_split_by_prompt_and_heldout_never_trained(project, tiny_base):
    data = collect_data(project, _config(tiny_base))
    train = {e.prompt_id for e in data.train}
    val = {e.prompt_id for e in data.val}
    heldout = {e.prompt_id for e in data.heldout}
    assert train and val and heldout
    assert not (train & val) and not (train & heldout) and not (val & heldout)
    assert heldout == set(project.prompt_ids(split="heldout"))
    assert data.n_pairs == sum(len(e.pairs) for e in data.train + data.val)
    # The snapshot hash depends on which judgments exist, not on text, and is stable.
    assert data.snapshot_hash == collect_data(project, _config(tiny_base)).snapshot_hash


def test_off_topic_contrasts_prefer_the_best_reply_to_a_reply_to_another_request(project, tiny_base):
    from transformers import AutoTokenizer

    config = _config(tiny_base, off_topic_pairs=2, max_length=256)
    data = collect_data(project, config)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokenize(project, tokenizer, data.train + data.val, config.max_length)
    before = [(list(e.pairs), list(e.tokens)) for e in data.train]
    train = with_off_topic_contrasts(project, tokenizer, data.train, config)
    assert [(e.pairs, e.tokens) for e in data.train] == before  # the originals are untouched
    assert [e.prompt_id for e in train] == [e.prompt_id for e in data.train]
    responses = {r.text: pid for pid in project.prompt_ids() for r in project.responses(pid)}
    for ex, new in zip(data.train, train):
        losers = {l for _, l, _ in ex.pairs}
        best = min(w for w, _, _ in ex.pairs if w not in losers)
        assert new.pairs[: len(ex.pairs)] == ex.pairs and new.tokens[: len(ex.tokens)] == ex.tokens
        extra = new.pairs[len(ex.pairs) :]
        assert [(w, l) for w, l, _ in extra] == [(best, len(ex.tokens)), (best, len(ex.tokens) + 1)]
        prompt = project.prompt(ex.prompt_id).prompt
        donors = set()
        for ids, start in zip(new.tokens[len(ex.tokens) :], new.starts[len(ex.tokens) :]):
            assert prompt in tokenizer.decode(ids[:start])
            reply = tokenizer.decode(ids[start:], skip_special_tokens=True).strip()
            donor = responses[reply]  # another training prompt's reply, shown under this prompt
            assert donor != ex.prompt_id and donor in {e.prompt_id for e in data.train}
            donors.add(donor)
        assert len(donors) == 2
    # The same seed draws the same contrasts (a resumed run sees the same data); none when switched off.
    assert [e.tokens for e in with_off_topic_contrasts(project, tokenizer, data.train, config)] == [
        e.tokens for e in train
    ]
    off = with_off_topic_contrasts(
        project, tokenizer, data.train, _config(tiny_base, off_topic_pairs=0, max_length=256)
    )
    assert [e.pairs for e in off] == [e.pairs for e in data.train]


def test_learns_the_hidden_rule(project, tiny_base):
    events = []  # (how long training takes is a bench figure, bench/reward.py, not a test bound)
    # This project's replies are random words, unrelated to their requests, so the one assumption behind
    # the off-topic contrasts (an answer to the request beats an answer to another) cannot hold here:
    # they would be noise. The contrasts have their own test above; this one is about the expert's pairs.
    # Eight epochs, not four: the default reading sums the reply's states, so it must first learn to give
    # the 6-10 random words around "sorry" no weight (a mean or the last token needs half as many).
    config = _config(tiny_base, off_topic_pairs=0, epochs=8)
    result = run_job(train_reward_model(project, config, cancel=CancelToken()), events.append)
    assert result.metrics["accuracy/val"] >= 0.85, result.metrics
    assert result.metrics["accuracy/heldout"] >= 0.85, result.metrics
    run = project.run(result.run_id)
    assert run.status == "done" and run.kind == "reward"
    assert run.summary["final/accuracy/val"] == pytest.approx(result.metrics["accuracy/val"])
    assert len(run.summary["data_hash"]) == 64
    # Progress events carry what a chart needs.
    assert events[0].metrics["run/id"] == result.run_id
    steps = [e for e in events if "loss/train" in e.metrics]
    assert [e.step for e in steps] == list(range(1, result.steps + 1))
    assert all(e.total == steps[0].total for e in steps)
    assert {"loss/train", "accuracy/train", "lr"} <= set(steps[0].metrics)
    assert any("accuracy/val" in e.metrics and "margin/val" in e.metrics for e in steps)
    m = project.metrics(result.run_id)
    assert [s for s, _ in m["loss/train"]] == list(range(1, result.steps + 1))
    assert m["loss/train"][-1][1] < m["loss/train"][0][1]
    # Centred: mean reward over the training responses ~ 0; the scorer ranks a fresh prompt's candidates.
    rm = load_reward_model(project, result.run_id)
    data = collect_data(project, _config(tiny_base))
    train_texts = [
        (project.prompt(e.prompt_id).prompt, r.text)
        for e in data.train
        for r in project.responses(e.prompt_id)
        if r.id in e.response_ids
    ]
    rewards = rm.score(train_texts)
    assert abs(sum(rewards) / len(rewards)) < 1e-3 * max(1.0, rm.scale)
    assert rm.scale == pytest.approx(run.summary["reward_scale"])
    heldout_pid = project.prompt_ids(split="heldout")[0]
    by_id = score_prompt(project, result.run_id, heldout_pid, model=rm)
    texts = {r.id: r.text for r in project.responses(heldout_pid)}
    good = [v for r, v in by_id.items() if _oracle_prefers(texts[r])]
    bad = [v for r, v in by_id.items() if not _oracle_prefers(texts[r])]
    assert min(good) > max(bad) or sum(good) / len(good) > sum(bad) / len(bad)


def test_cancel_then_resume_continues(tiny_base, tmp_path):
    project = Project.create(tmp_path / "resume.rlhfproj", PASS)
    _fill(project, n_train=30, n_heldout=0, seed=2)
    cfg = _config(tiny_base, epochs=2, checkpoint_every=1000, eval_every=4)
    # The uninterrupted reference run.
    ref = run_job(train_reward_model(project, cfg))
    ref_loss = dict(project.metrics(ref.run_id)["loss/train"])

    token = CancelToken()

    def cancel_at_5(event):
        if event.step == 5 and "loss/train" in event.metrics:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(train_reward_model(project, cfg, cancel=token), cancel_at_5)
    run_id = max(r.id for r in project.runs(kind="reward"))
    run = project.run(run_id)
    assert run.status == "cancelled"
    assert project.has_artifact(run_id, "checkpoint") and not project.has_artifact(run_id, "final")
    assert [s for s, _ in project.metrics(run_id)["loss/train"]] == list(range(1, 6))

    # A consistent project: it closes and reopens, and the checkpoint decrypts.
    folder = project.path
    project.close()
    reopened = Project.open(folder, PASS)
    try:
        assert reopened.run(run_id).status == "cancelled"
        assert "state.json" in reopened.load_artifact(run_id, "checkpoint")
        events = []
        result = run_job(train_reward_model(reopened, {}, resume_run=run_id), events.append)
        assert result.run_id == run_id and reopened.run(run_id).status == "done"
        trained = [e for e in events if "loss/train" in e.metrics]
        assert trained[0].step == 6  # the step counter carries on
        loss = reopened.metrics(run_id)["loss/train"]
        assert [s for s, _ in loss] == list(range(1, result.steps + 1))  # one clean curve, no restart
        assert result.steps == ref.steps
        # Same data order and restored optimizer state: the resumed curve matches the uninterrupted one.
        for step, value in loss:
            assert value == pytest.approx(ref_loss[step], rel=1e-4, abs=1e-5)
        with pytest.raises(UserError):
            run_job(train_reward_model(reopened, {}, resume_run=run_id))  # already finished

        # A crash mid-run (here: the driver dies at step 6): resume from the step-4 checkpoint, and the
        # metrics logged after it are replaced, not duplicated.
        job = train_reward_model(reopened, dict(vars(cfg), checkpoint_every=4))
        for event in job:
            if event.step == 6 and "loss/train" in event.metrics:
                break
        job.close()
        crashed = max(r.id for r in reopened.runs(kind="reward"))
        assert reopened.run(crashed).status == "failed"
        events = []
        again = run_job(train_reward_model(reopened, {}, resume_run=crashed), events.append)
        assert [e for e in events if "loss/train" in e.metrics][0].step == 5
        loss = reopened.metrics(crashed)["loss/train"]
        assert [s for s, _ in loss] == list(range(1, again.steps + 1))
        for step, value in loss:
            assert value == pytest.approx(ref_loss[step], rel=1e-4, abs=1e-5)
    finally:
        reopened.close()


def test_preflight_refuses_too_few_pairs(tiny_base, tmp_path):
    with Project.create(tmp_path / "small.rlhfproj", PASS) as proj:
        _fill(proj, n_train=3, n_heldout=0)
        with pytest.raises(UserError, match="only 12 preference pairs"):
            run_job(train_reward_model(proj, _config(tiny_base)))
        assert proj.runs(kind="reward") == []


@pytest.mark.parametrize("mode", ["lora", "freeze"])
def test_lora_and_frozen_runs_load_back_for_scoring(project, tiny_base, mode):
    cfg = _config(tiny_base, finetune=mode, lora_r=8, freeze_layers=1, learning_rate=3e-3, max_steps=4, eval_every=2)
    result = run_job(train_reward_model(project, cfg))
    files = project.load_artifact(result.run_id, "final")
    assert set(files) == {"model.safetensors", "reward.json"}
    rm = load_reward_model(project, result.run_id)
    assert not hasattr(rm.model, "peft_config")  # LoRA merged for scoring
    assert all(not p.requires_grad for p in rm.model.parameters())
    # The reloaded model reproduces the trained one: its validation accuracy is the run's final figure.
    data = collect_data(project, cfg)
    correct = total = 0
    for e in data.val:
        texts = {r.id: r.text for r in project.responses(e.prompt_id)}
        scores = rm.score([(project.prompt(e.prompt_id).prompt, texts[r]) for r in e.response_ids])
        for w, l, _ in e.pairs:
            correct += 1.0 if scores[w] > scores[l] else 0.5 if scores[w] == scores[l] else 0.0
            total += 1
    assert correct / total == pytest.approx(project.run(result.run_id).summary["final/accuracy/val"], abs=1e-9)
    assert len(set(round(v, 6) for v in scores)) > 1
