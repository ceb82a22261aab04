"""Data-parallel training on the CPU: 2 gloo processes give the losses and the final weights of one
process on the same global batch (reward model and DPO), through the same encrypted run record."""

import random

import pytest
import torch

from core.jobs import run_job
from core.project import Project
from core.training import checkpoint as ckpt
from core.training.reward import RewardConfig, load_reward_model, train_reward_model
from tests.reward_fixtures import reward_one_thread, tiny_base  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("reward_one_thread")
PASS = "correct horse battery staple"
WORDS = "sorry please restart the router your order ships today refund thank you for waiting".split()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    rng = random.Random(0)
    proj = Project.create(tmp_path_factory.mktemp("dp") / "dp.rlhfproj", PASS)
    for i in range(14):
        pid = proj.add_prompt(f"Question {i}: where is my order?")
        rids = [
            proj.add_response(
                pid, " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))) + f" {k}", origin={"kind": "import"}
            )
            for k in range(3)
        ]
        proj.record_ranking(pid, tiers=[[rids[0]], [rids[1], rids[2]]])
    yield proj
    proj.close()


def _losses(proj, run_id, key):
    return [v for _, v in proj.metrics(run_id)[key]]


def test_reward_model_two_gloo_processes_match_one(project, tiny_base):
    # 3 prompts a step split 2 + 1 over the ranks (unequal slices), 2 micro-batches on rank 0; full fine-tune.
    # adam_eps 1e-6: Adam divides by sqrt(v) + eps, which turns the last-bit differences of an all-reduced
    # sum into visible ones for weights whose gradient is ~1e-8; a larger eps keeps the comparison tight.
    cfg = dict(
        adam_eps=1e-6,
        base_model=tiny_base,
        device="cpu",
        finetune="full",
        learning_rate=3e-3,
        warmup_ratio=0.0,
        max_steps=4,
        prompts_per_micro_batch=1,
        grad_accum_steps=3,
        max_length=32,
        val_fraction=0.2,
        eval_every=2,
        early_stopping_patience=0,
        restore_best=False,
        checkpoint_every=0,
        min_pairs=5,
        seed=0,
    )
    single = run_job(train_reward_model(project, RewardConfig(**cfg)))
    dp = run_job(train_reward_model(project, RewardConfig(**cfg, gpus=2)))
    assert project.run(dp.run_id).status == "done" and project.run(dp.run_id).config["gpus"] == 2
    a, b = _losses(project, single.run_id, "loss/train"), _losses(project, dp.run_id, "loss/train")
    assert len(a) == len(b) == 4 and a[0] != a[-1]
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    assert _losses(project, dp.run_id, "accuracy/val") == pytest.approx(_losses(project, single.run_id, "accuracy/val"))
    wa = ckpt.bytes_to_tensors(project.load_artifact(single.run_id, "final")["model.safetensors"])
    wb = ckpt.bytes_to_tensors(project.load_artifact(dp.run_id, "final")["model.safetensors"])
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
    assert dp.offset == pytest.approx(single.offset, abs=1e-4)
    # The data-parallel run's artifact loads and scores like any other.
    rm = load_reward_model(project, dp.run_id, device="cpu")
    assert len(rm.score([("Question 0: where is my order?", "sorry")])) == 1


def test_dpo_two_gloo_processes_match_one(project, tiny_base):
    from core.training.policy_config import PolicyConfig
    from core.training.policy_job import train_policy

    cfg = dict(
        algo="dpo",
        policy_path=tiny_base,
        mode="lora",
        device="cpu",
        dtype="float32",
        total_steps=3,
        batch_size=5,
        minibatch_size=2,
        learning_rate=1e-2,
        dpo_eval_every=0,
        checkpoint_every=0,
        log_samples_every=0,
        max_new_tokens=12,
        max_prompt_tokens=24,
        seed=0,
    )
    single = run_job(train_policy(project, PolicyConfig(**cfg)))
    dp = run_job(train_policy(project, PolicyConfig(**cfg, gpus=2)))
    assert project.run(dp.run_id).status == "done"
    a, b = _losses(project, single.run_id, "loss/policy"), _losses(project, dp.run_id, "loss/policy")
    assert len(a) == len(b) == 3 and a[0] != a[-1]
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    wa = ckpt.bytes_to_tensors(project.load_artifact(single.run_id, "policy")["policy.safetensors"])
    wb = ckpt.bytes_to_tensors(project.load_artifact(dp.run_id, "policy")["policy.safetensors"])
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
