"""Shared fixtures and rule rewards for the policy tests (imported by them; not a conftest)."""

import os

import pytest
import torch

from core.models.tiny import build_tiny_model

PASS = "correct horse battery staple"


@pytest.fixture(scope="session")
def policy_gpt2(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("policy_gpt2") / "m", arch="gpt2", seed=0))


@pytest.fixture(scope="session")
def policy_qwen2(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("policy_qwen2") / "m", arch="qwen2", seed=0))


def _torch_threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread; on 2 shared cores more threads only contend."""
    yield from _torch_threads(1)


@pytest.fixture
def two_threads():
    """The demo model at PPO's batch of 16 runs faster on two threads than one on 2 cores (the learning
    test on the defaults: 424 s against 553 s, the same figures). Under pytest-xdist the other worker
    has the second core, so one thread; RLHF_TEST_TORCH_THREADS says how many where something else
    shares the machine (make test runs the learning test beside the rest of the suite)."""
    shared = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1
    yield from _torch_threads(int(os.environ.get("RLHF_TEST_TORCH_THREADS", 1 if shared else 2)))


def low_id_share(batch):
    """Rule reward: the share of response tokens whose id is below 128 (about 1/4 for a random model)."""
    return [sum(1 for t in ids if t < 128) / max(1, len(ids)) for ids in batch.response_ids]


def token_set_share(token_ids):
    """Rule reward: the share of response tokens that are in `token_ids`."""
    wanted = set(token_ids)

    def reward(batch):
        return [sum(1 for t in ids if t in wanted) / max(1, len(ids)) for ids in batch.response_ids]

    return reward


def make_project(folder, n_prompts=16, with_reference=False):
    from core.project import Project

    proj = Project.create(folder, PASS)
    with proj.transaction():
        for i in range(n_prompts):
            proj.add_prompt(
                f"Customer question number {i}: where is my order?",
                reference="Your order ships today." if with_reference else None,
            )
    return proj
