"""The whole loop on the demo project, offline, on the product's defaults (the Balanced presets that one
click runs: no hand-set learning rate, length or mode): a simulated expert ranks the demo candidates, the
reward model learns the rankings, PPO tunes the demo model against it, and the tuned policy's replies
score higher under that same expert than the base model's on held-out prompts. Sockets are patched to
fail. (bench/eval_loop.py --defaults measures the same loop for several experts with blind judging.)"""

import statistics

import pytest

from core.demo import corpus as C
from core.demo.project import create_demo_project, demo_model_dir
from core.jobs import run_job
from core.models.generation import SamplingSettings, generate_texts
from core.models.loading import load_model
from core.training.export import load_tuned_policy
from core.training.policy_config import preset
from core.training.presets import config_for_project
from core.training.policy_job import train_policy
from core.training.reward import train_reward_model
from tests.models_fixtures import no_network  # noqa: F401 (fixture)
from tests.policy_fixtures import PASS, two_threads  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.loop]


def _rank_like_the_expert(proj):
    """Tiers best first; candidates the expert scores the same are tied."""
    for pid in proj.prompt_ids(split="train"):
        prompt = proj.prompt(pid).prompt
        by_score: dict[float, list[int]] = {}
        for r in proj.responses(pid):
            by_score.setdefault(C.expert_score(prompt, r.text), []).append(r.id)
        tiers = [by_score[s] for s in sorted(by_score, reverse=True)]
        if len(tiers) > 1:
            proj.record_ranking(pid, tiers=tiers)


def _expert_mean(model, tok, prompts):
    settings = SamplingSettings(temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=112, seed=7)
    rows = [p for p in prompts for _ in range(8)]  # 8 samples per held-out prompt: less noise
    replies = generate_texts(model, tok, rows, settings, batch_size=128)
    return statistics.mean(C.expert_score(p, r) for p, r in zip(rows, replies))


@pytest.mark.timeout(1200)  # a hang guard: 350-700 s on 2 cores (one thread under make test)
def test_tuned_policy_beats_base_under_the_simulated_expert(tmp_path, no_network, two_threads):
    demo = str(demo_model_dir())
    report = run_job(create_demo_project(tmp_path / "demo.rlhfproj", PASS, n_prompts=96, keep_open=True))
    proj = report.project
    try:
        _rank_like_the_expert(proj)
        rcfg = config_for_project(proj, demo, "balanced", device="cpu")
        reward = run_job(train_reward_model(proj, rcfg))
        assert reward.metrics["accuracy/val"] >= 0.6, reward.metrics  # small validation split: noisy

        cfg = preset("balanced", algo="ppo", policy_path=demo, reward_run=reward.run_id, device="cpu")
        result = run_job(train_policy(proj, cfg))
        curve = [v for _, v in proj.metrics(result.run_id)["reward/mean"]]
        assert statistics.mean(curve[-10:]) > statistics.mean(curve[:10]), curve

        heldout = [p.prompt for p in proj.prompts(split="heldout")]
        base, tok = load_model(demo, device="cpu")
        tuned, tok2 = load_tuned_policy(proj, result.run_id, device="cpu", dtype="float32")
        base_score, tuned_score = _expert_mean(base, tok, heldout), _expert_mean(tuned, tok2, heldout)
        print(
            f"expert score on held-out prompts: base {base_score:.2f}, tuned {tuned_score:.2f}; "
            f"reward-model val accuracy {reward.metrics['accuracy/val']:.2f}"
        )
        assert tuned_score > base_score + 0.25, (base_score, tuned_score)
    finally:
        proj.close()
    assert no_network == []  # nothing even tried to connect
