"""Shared fixtures for the reward-model tests (imported by them; not a conftest)."""

import pytest

from core.models.tiny import build_tiny_model

CORPUS = [
    "I am sorry about the delay. Your order ships today.",
    "Sorry, that was our mistake. A refund is on its way.",
    "Please restart the router and check the light.",
    "Your account is fine. Try again later.",
    "We cannot help with that. Contact the bank.",
    "Thank you for waiting. The package arrives Monday.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}<>-_/\\@#$%^&*+=",
]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A tiny random GPT-2 and its tokenizer (pad id 0 != eos id 1) in a normal HF folder."""
    return str(
        build_tiny_model(
            tmp_path_factory.mktemp("reward_base") / "gpt2",
            arch="gpt2",
            seed=0,
            corpus=CORPUS,
            hidden=64,
            layers=2,
            heads=4,
        )
    )


@pytest.fixture(scope="session")
def tiny_qwen_base(tmp_path_factory):
    return str(
        build_tiny_model(
            tmp_path_factory.mktemp("reward_base_qwen") / "qwen2",
            arch="qwen2",
            seed=0,
            corpus=CORPUS,
            hidden=64,
            layers=2,
            heads=4,
        )
    )


@pytest.fixture
def reward_one_thread():
    """Tiny models gain nothing from a second thread, and lose a lot to OpenMP spin-waits on a busy box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
