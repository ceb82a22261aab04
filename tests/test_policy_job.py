"""The policy job on a real encrypted project: metrics, samples, provenance, checkpoints, exact resume
after cancel, out-of-memory handling, DPO from the project's pairs, export, and the CLI."""

import math

import pytest
import torch

import core.cli
from core.errors import UserError
from core.jobs import CancelToken, Cancelled, run_job
from core.training.hybrid_reward import HybridRewardConfig
from core.training.policy_config import PolicyConfig
from core.training.policy_job import train_policy
from tests.policy_fixtures import PASS, low_id_share, make_project, one_thread, policy_gpt2  # noqa: F401

REQUIRED = (
    "reward/mean",
    "reward/model",
    "kl/mean",
    "kl/beta",
    "policy/entropy",
    "loss/policy",
    "loss/value",
    "policy/clipfrac",
    "policy/approx_kl",
    "response/length",
    "response/eos_rate",
    "perf/samples_per_s",
)


def _cfg(path, **kw):
    base = dict(
        algo="ppo",
        policy_path=path,
        mode="lora",
        lora_r=4,
        lora_alpha=8,
        total_steps=4,
        batch_size=4,
        minibatch_size=2,
        ppo_epochs=2,
        max_new_tokens=6,
        temperature=1.0,
        learning_rate=1e-3,
        log_samples_every=2,
        checkpoint_every=2,
        samples_shown=2,
        device="cpu",
        dtype="float32",
    )
    base.update(kw)
    return PolicyConfig(**base)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory, policy_gpt2):
    """A finished 4-step PPO LoRA run with rule + length rewards (shared by the export tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("pjob") / "p.rlhfproj"
    proj = make_project(folder, with_reference=True)
    cfg = _cfg(policy_gpt2, reward=HybridRewardConfig(length_weight=0.5, length_target=4, rouge_weight=0.5))
    events = []
    result = run_job(train_policy(proj, cfg, reward_fn=low_id_share), on_progress=events.append)
    yield proj, result, events, policy_gpt2
    proj.close()
    torch.set_num_threads(threads)


def test_job_logs_metrics_samples_provenance_and_artifacts(done_run):
    proj, result, events, _ = done_run
    run = proj.run(result.run_id)
    assert run.status == "done" and result.steps == 4
    assert events[0].metrics["run/id"] == result.run_id
    steps = [e for e in events if e.step > 0]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    metrics = proj.metrics(result.run_id)
    for name in REQUIRED + ("reward/length", "reward/rouge"):
        assert [s for s, _ in metrics[name]] == [1, 2, 3, 4], name
        assert all(math.isfinite(v) for _, v in metrics[name])
    assert [s for s, _ in proj.samples(result.run_id)] == [1, 2, 4]
    row = proj.samples(result.run_id)[0][1][0]
    assert {"prompt", "response", "reward", "reward/model", "reward/length", "reward/rouge"} <= set(row)
    assert steps[0].samples and not steps[2].samples  # live table rows every N steps
    prov = run.config["provenance"]
    assert prov["n_prompts"] == 16 and len(prov["data_hash"]) == 16 and prov["reward_function"] == "custom"
    names = {a.name for a in proj.artifacts(result.run_id)}
    assert {"checkpoint", "policy", "data"} <= names
    assert any(e["event"] == "trained" for e in proj.audit_log())


def _values(proj, run_id):
    return {k: v for k, v in proj.metrics(run_id).items() if not k.startswith("perf/")}


def test_resume_after_cancel_continues_exactly(tmp_path, policy_gpt2, one_thread):
    cfg = dict(total_steps=5, checkpoint_every=2, kl_coef=0.1, kl_target=0.05, kl_horizon=20, mode="full")
    with make_project(tmp_path / "a.rlhfproj") as proj:
        straight = run_job(train_policy(proj, _cfg(policy_gpt2, **cfg), reward_fn=low_id_share))
        expected = _values(proj, straight.run_id)
    betas = [v for _, v in expected["kl/beta"]]
    assert len(set(betas)) == 5  # the adaptive beta moves every step, so a reset would show

    with make_project(tmp_path / "b.rlhfproj") as proj:
        token = CancelToken()

        def stop_at_3(event):
            if event.step == 3:
                token.cancel()

        with pytest.raises(Cancelled):
            run_job(train_policy(proj, _cfg(policy_gpt2, **cfg), cancel=token, reward_fn=low_id_share), stop_at_3)
        run_id = proj.runs(kind="policy")[-1].id
        assert proj.run(run_id).status == "cancelled"
        assert max(s for s, _ in proj.metrics(run_id)["reward/mean"]) == 3
        events = []
        result = run_job(train_policy(proj, {}, resume_run=run_id, reward_fn=low_id_share), events.append)
        assert result.run_id == run_id and proj.run(run_id).status == "done"
        assert [e.step for e in events if e.step > 0] == [4, 5]
        resumed = _values(proj, run_id)
    assert resumed.keys() == expected.keys()
    for name in expected:
        steps_a, vals_a = zip(*expected[name])
        steps_b, vals_b = zip(*resumed[name])
        assert steps_a == steps_b, name
        assert vals_b == pytest.approx(vals_a, rel=1e-4, abs=1e-5), name


def test_out_of_memory_ends_the_run_with_advice(tmp_path, policy_gpt2, one_thread):
    calls = []

    def reward_that_runs_out(batch):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return low_id_share(batch)

    with make_project(tmp_path / "p.rlhfproj") as proj:
        with pytest.raises(UserError, match="Out of memory.*LoRA.*batch"):
            run_job(train_policy(proj, _cfg(policy_gpt2), reward_fn=reward_that_runs_out))
        run = proj.runs(kind="policy")[-1]
        assert run.status == "failed" and run.summary["error"] == "out_of_memory"


def test_dpo_job_trains_on_project_pairs(tmp_path, policy_gpt2, one_thread):
    with make_project(tmp_path / "p.rlhfproj", n_prompts=6) as proj:
        for p in proj.prompts():
            a = proj.add_response(p.id, "Your refund is on its way.")
            b = proj.add_response(p.id, "No.")
            c = proj.add_response(p.id, "Please wait.")
            proj.record_ranking(p.id, tiers=[[a], [c], [b]])
        cfg = _cfg(policy_gpt2, algo="dpo", total_steps=3, batch_size=6, minibatch_size=3, dpo_eval_every=3)
        result = run_job(train_policy(proj, cfg))
        m = proj.metrics(result.run_id)
        assert m["loss/policy"][0][1] == pytest.approx(math.log(2), abs=1e-4)
        assert m["loss/policy"][-1][1] < m["loss/policy"][0][1]
        assert "kl/mean" in m and "reward/mean" not in m  # no reward model: KL chart only
        assert proj.run(result.run_id).config["provenance"]["n_pairs"] == 18


def test_needs_a_reward_for_online_algorithms(tmp_path, policy_gpt2):
    with make_project(tmp_path / "p.rlhfproj") as proj:
        with pytest.raises(UserError, match="needs a reward"):
            run_job(train_policy(proj, _cfg(policy_gpt2, algo="rloo")))


# ---- export ---------------------------------------------------------------------------------------


def test_export_merged_loads_and_generates(done_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.training.export import export_model, load_tuned_policy

    proj, result, _, _ = done_run
    with pytest.raises(UserError, match="plaintext"):
        export_model(proj, result.run_id, tmp_path / "x")
    out = export_model(proj, result.run_id, tmp_path / "merged", plaintext=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    ids = tok("Hello there", return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape[1] > ids["input_ids"].shape[1]
    tuned, _ = load_tuned_policy(proj, result.run_id, device="cpu", dtype="float32")
    with torch.no_grad():
        torch.testing.assert_close(model(**ids).logits, tuned(**ids).logits, atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="not empty"):
        export_model(proj, result.run_id, out, plaintext=True)
    assert any(e["event"] == "exported" for e in proj.audit_log())


def test_export_adapter_loads_through_peft(done_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from core.training.export import export_model

    proj, result, _, base = done_run
    out = export_model(proj, result.run_id, tmp_path / "adapter", plaintext=True, merge=False)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    merged = export_model(proj, result.run_id, tmp_path / "merged2", plaintext=True)
    a = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    m = AutoModelForCausalLM.from_pretrained(merged, local_files_only=True)
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(a(x).logits, m(x).logits, atol=1e-4, rtol=0)


# ---- CLI ------------------------------------------------------------------------------------------


def _main(monkeypatch, argv):
    if "core.cli.policy_cmds" not in core.cli.COMMAND_MODULES:
        monkeypatch.setattr(core.cli, "COMMAND_MODULES", core.cli.COMMAND_MODULES + ("core.cli.policy_cmds",))
    return core.cli.main(argv)


def test_cli_train_and_export(tmp_path, policy_gpt2, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    folder = tmp_path / "c.rlhfproj"
    make_project(folder, n_prompts=4).close()
    rc = _main(
        monkeypatch,
        [
            "train-policy",
            str(folder),
            "--algo",
            "rloo",
            "--policy",
            policy_gpt2,
            "--preset",
            "quick",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "-k",
            "2",
            "--max-new-tokens",
            "5",
            "--length-target",
            "3",
            "--device",
            "cpu",
        ],
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    run_id = int(out.split("run ")[1].split(":")[0])
    assert "reward/mean" in out
    assert _main(monkeypatch, ["export-model", str(folder), str(run_id), str(tmp_path / "out")]) == 2
    assert "--plaintext" in capsys.readouterr().err
    assert _main(monkeypatch, ["export-model", str(folder), str(run_id), str(tmp_path / "out"), "--plaintext"]) == 0
    assert (tmp_path / "out" / "config.json").is_file()
    # Without any reward the online algorithms refuse with a clear message, not a traceback.
    rc = _main(monkeypatch, ["train-policy", str(folder), "--algo", "ppo", "--policy", policy_gpt2])
    assert rc == 2 and "needs a reward" in capsys.readouterr().err


# ---- with a real reward-model run ------------------------------------------------------------------


def test_ppo_on_a_reward_run_with_critic_from_the_reward_model(tmp_path, policy_gpt2, one_thread):
    from core.training.reward import RewardConfig, train_reward_model

    with make_project(tmp_path / "r.rlhfproj", n_prompts=24) as proj:
        for p in proj.prompts():
            good = proj.add_response(p.id, "Your refund is on its way, sorry for the wait.")
            mid = proj.add_response(p.id, "We are looking into it.")
            bad = proj.add_response(p.id, "No.")
            proj.record_ranking(p.id, tiers=[[good], [mid], [bad]])
        rcfg = RewardConfig(
            base_model=policy_gpt2,
            device="cpu",
            max_steps=3,
            eval_every=3,
            checkpoint_every=50,
            prompts_per_micro_batch=4,
            max_length=48,
            val_fraction=0.2,
            min_pairs=20,
            learning_rate=1e-3,
        )
        reward_run = run_job(train_reward_model(proj, rcfg)).run_id
        cfg = _cfg(policy_gpt2, reward_run=reward_run, total_steps=2, mode="lora")
        assert cfg.value_init == "auto"  # the default: a small reward model becomes the critic
        result = run_job(train_policy(proj, cfg))
        run = proj.run(result.run_id)
        assert run.status == "done" and run.parent == reward_run
        assert run.summary["critic"] == "reward-model copy"
        prov = run.config["provenance"]
        assert prov["reward_run"] == reward_run
        assert prov["reward_data_hash"] == proj.run(reward_run).summary["data_hash"]
        m = proj.metrics(result.run_id)
        assert len(m["reward/model"]) == 2 and all(math.isfinite(v) for _, v in m["loss/value"])


def test_value_init_auto_copies_the_reward_model_only_when_it_can(tmp_path, policy_gpt2, monkeypatch, one_thread):
    from transformers import AutoTokenizer

    from core.training import policy_job
    from core.training.reward import RewardConfig, train_reward_model

    with make_project(tmp_path / "v.rlhfproj", n_prompts=24) as proj:
        for p in proj.prompts():
            good = proj.add_response(p.id, "Your refund is on its way, sorry for the wait.")
            bad = proj.add_response(p.id, "No.")
            proj.record_ranking(p.id, tiers=[[good], [bad]])
        rcfg = RewardConfig(
            base_model=policy_gpt2, device="cpu", max_steps=1, max_length=48, min_pairs=10, val_fraction=0.2
        )
        reward_run = run_job(train_reward_model(proj, rcfg)).run_id
        cfg = _cfg(policy_gpt2, reward_run=reward_run)
        _, reward_model = policy_job.build_reward(proj, cfg, torch.device("cpu"), None)
        tokenizer = AutoTokenizer.from_pretrained(policy_gpt2)
        resolve = policy_job.resolve_value_init
        assert resolve(cfg, reward_model, tokenizer).value_init == "reward"
        assert resolve(_cfg(policy_gpt2, value_init="head"), reward_model, tokenizer).value_init == "head"
        assert resolve(cfg, None, tokenizer).value_init == "head"  # a rule reward: nothing to copy
        assert resolve(_cfg(policy_gpt2, algo="rloo"), reward_model, tokenizer).value_init == "head"
        monkeypatch.setattr(policy_job, "CRITIC_COPY_MAX_PARAMS", 1000)  # a model too big to train in full
        assert resolve(cfg, reward_model, tokenizer).value_init == "head"
        monkeypatch.undo()
        reward_model._rlhf_vocab = {"another": 0, "vocabulary": 1}  # a reward model on another tokenizer
        assert resolve(cfg, reward_model, tokenizer).value_init == "head"
