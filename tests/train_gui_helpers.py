"""Fixtures for the Train and Models page tests (imported by them; not a conftest).

The project is demo-shaped: customer-support requests from `core.demo.corpus`, four replies each of
varied tone, helpfulness and accuracy, ranked by the simulated expert (`expert_score`, ties allowed).
The tiny model's tokenizer is trained on the same corpus, so its tokens are words the rule looks at.
"""

from __future__ import annotations

import os
import random

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

PASSPHRASE = "correct horse battery staple"
KINDS = ("helpful", "inaccurate", "vague", "off_topic")
TONES = ("polite", "neutral", "rude")


def corpus_lines(n: int = 400, seed: int = 7) -> list[str]:
    from core.demo.corpus import examples

    lines = []
    for ex in examples(n, seed=seed):
        lines += [ex.request, ex.reply]
    return lines


def build_model(folder, seed: int = 0) -> str:
    from core.models.tiny import build_tiny_model

    return str(build_tiny_model(folder, arch="gpt2", seed=seed, corpus=corpus_lines(), hidden=64, layers=2, heads=4))


def fill_project(
    proj, n_prompts: int = 40, n_heldout: int = 6, k: int = 4, seed: int = 0, rank: bool = True
) -> list[int]:
    """Prompts with k replies each; ranked best-first by the simulated expert (equal scores tie)."""
    from core.demo.corpus import make_reply, make_request

    rng = random.Random(seed)
    pids = []
    with proj.transaction():
        for i in range(n_prompts + n_heldout):
            topic, request, slots = make_request(rng)
            pid = proj.add_prompt(f"{request} (#{i})", split="train" if i < n_prompts else "heldout")
            pids.append(pid)
            kinds = list(KINDS)
            rng.shuffle(kinds)
            for kind in kinds[:k]:
                reply = make_reply(rng, topic, slots, rng.choice(TONES), kind, rng.choice(("short", "medium")))
                proj.add_response(pid, reply, origin={"kind": "import"})
    if rank:
        rank_by_expert(proj, pids)
    return pids


def rank_by_expert(proj, pids=None) -> int:
    """Record the simulated expert's ranking of every prompt's candidates (equal scores tie). Returns
    how many prompts were ranked (a prompt whose candidates all score the same gives no ranking)."""
    from core.demo.corpus import expert_score

    n = 0
    for pid in pids if pids is not None else proj.prompt_ids():
        prompt = proj.prompt(pid).prompt
        scored: dict[float, list[int]] = {}
        for r in proj.responses(pid):
            scored.setdefault(round(expert_score(prompt, r.text), 3), []).append(r.id)
        tiers = [scored[s] for s in sorted(scored, reverse=True)]
        if len(tiers) > 1:
            proj.record_ranking(pid, tiers=tiers)
            n += 1
    return n


def make_demo_project(folder, n_prompts: int = 28):
    """The real demo project (core.demo.project: prompts, candidates sampled from the committed demo
    model, held-out split, guidelines), small, ranked by the simulated expert."""
    from core.demo.project import create_demo_project
    from core.jobs import run_job

    report = run_job(create_demo_project(folder, PASSPHRASE, n_prompts=n_prompts, keep_open=True))
    rank_by_expert(report.project)
    return report.project


def make_project(folder, **kw):
    from core.project import Project

    proj = Project.create(folder, PASSPHRASE)
    fill_project(proj, **kw)
    return proj


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("train_gui_model") / "support-gpt2")


@pytest.fixture
def gui_settings(tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    yield settings
    settings.sync()


@pytest.fixture
def app_context(qtbot, gui_settings):
    from desktop.context import AppContext

    ctx = AppContext(settings=gui_settings)
    yield ctx
    ctx.runner.cancel_all()
    ctx.runner.wait(30_000)


def wait_until_idle(qtbot, ctx, timeout=60_000):
    """Wait until every job of the context has ended (their signals delivered)."""
    qtbot.waitUntil(lambda: not ctx.runner.active, timeout=timeout)
