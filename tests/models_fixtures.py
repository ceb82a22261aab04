"""Shared fixtures for the model / generation / demo tests (imported by them; not a conftest)."""

import socket

import pytest

from core.models.tiny import build_tiny_model

# Fast KDF for test projects only (the store enforces its own minimum).
PASS = "correct horse battery staple"


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("gen_gpt2") / "m", arch="gpt2", seed=0))


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("gen_qwen2") / "m", arch="qwen2", seed=0))


@pytest.fixture
def no_network(monkeypatch):
    """Every way to open a connection or resolve a name raises: proves a code path is offline."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture(autouse=False)
def one_thread():
    """Tiny models gain nothing from a second thread, and lose a lot to OpenMP spin-waits on a busy box."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
