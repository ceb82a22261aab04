"""Shared fixtures for the evaluation tests (imported by them; not a conftest): a small encrypted project
with a simulated expert's rankings, a reward-model run, a real policy run and a prepared blind set."""

import random

import pytest
import torch

from core.jobs import run_job
from core.models.tiny import build_tiny_model

PASS = "correct horse battery staple"
WORDS = (
    "sorry your order ships today refund is on its way please restart the router thanks for waiting "
    "package arrives monday account updated try again later we can help"
).split()
CORPUS = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
N_TRAIN, N_HELDOUT = 24, 12


def expert_score(text: str) -> int:
    """The simulated expert's own rule: more letter e is better (nothing in the product knows it)."""
    return text.count("e")


def expert_choice(text_a: str, text_b: str) -> str:
    """The simulated expert's blind verdict on a pair."""
    if not text_a.strip() and not text_b.strip():
        return "both_bad"
    sa, sb = expert_score(text_a), expert_score(text_b)
    return "a" if sa > sb else "b" if sb > sa else "tie"


def expert_flags(text_a: str, text_b: str, tags) -> tuple:
    """Flags the expert sets: the first tag when either answer is very short."""
    return (tags[0],) if min(len(text_a.split()), len(text_b.split())) < 2 else ()


def _response(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))


def rank_by_rule(proj, pid) -> None:
    """Rank a prompt's candidates by the expert's rule (equal scores tie)."""
    by_score: dict[int, list[int]] = {}
    for r in proj.responses(pid):
        by_score.setdefault(expert_score(r.text), []).append(r.id)
    proj.record_ranking(pid, tiers=[by_score[s] for s in sorted(by_score, reverse=True)])


@pytest.fixture(scope="session")
def eval_base(tmp_path_factory):
    """A tiny GPT-2 whose tokenizer knows the expert's words (so answers are words)."""
    return str(build_tiny_model(tmp_path_factory.mktemp("eval_base") / "m", arch="gpt2", seed=0, corpus=CORPUS))


def make_eval_project(folder, base: str, *, reward: bool = True):
    """Project with ranked train and held-out prompts, optionally a reward run, and a short policy run.
    Returns (proj, policy_run_id, reward_run_id or None)."""
    from core.project import Project
    from core.training.policy_config import PolicyConfig
    from core.training.policy_job import train_policy
    from core.training.reward import RewardConfig, train_reward_model

    torch.manual_seed(0)
    rng = random.Random(0)
    proj = Project.create(folder, PASS)
    with proj.transaction():
        for i in range(N_TRAIN + N_HELDOUT):
            split = "train" if i < N_TRAIN else "heldout"
            pid = proj.add_prompt(f"Customer case {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}?", split=split)
            for _ in range(4):
                proj.add_response(pid, _response(rng), origin={"kind": "import"})
    for pid in proj.prompt_ids():
        rank_by_rule(proj, pid)
    reward_run = None
    if reward:
        cfg = RewardConfig(
            base_model=base,
            device="cpu",
            learning_rate=2e-3,
            epochs=2,
            prompts_per_micro_batch=8,
            max_length=48,
            val_fraction=0.2,
            eval_every=50,
            early_stopping_patience=0,
            checkpoint_every=1000,
            min_pairs=10,
            seed=0,
        )
        reward_run = run_job(train_reward_model(proj, cfg)).run_id
    # "full" fine-tuning at a high learning rate: two steps change the greedy answers on most prompts.
    pcfg = PolicyConfig(
        algo="ppo",
        policy_path=base,
        mode="full",
        total_steps=2,
        batch_size=4,
        minibatch_size=4,
        ppo_epochs=1,
        max_new_tokens=10,
        temperature=1.0,
        learning_rate=3e-2,
        device="cpu",
        dtype="float32",
        log_samples_every=0,
        checkpoint_every=0,
        reward_run=reward_run,
    )
    rule = lambda batch: [float(expert_score(t)) for t in batch.responses]  # noqa: E731
    policy_run = run_job(train_policy(proj, pcfg, reward_fn=rule)).run_id
    return proj, policy_run, reward_run
