"""The whole loop, measured: does the tuned policy win blind comparisons against its base?

    python bench/eval_loop.py                       # CPU, the committed demo model
    python bench/eval_loop.py --device cuda --steps 32 --prompts 240
    python bench/eval_loop.py --keep /tmp/loop.rlhfproj --screenshots docs/screenshots
    python bench/eval_loop.py --defaults [--experts demo,concise] [--algos ppo,rloo]   # product defaults only

--defaults runs bench/eval_loop_defaults.py: every stage is the `rlhf-studio` command with its defaults, for
the simulated experts of bench/experts.py. The rest of this docstring is about the hand-set loop below.

A simulated expert (core.demo.corpus.expert_score, which the product never sees) ranks the demo project's
candidates; a reward model learns the rankings; RLOO (or --algo ppo/grpo/dpo) tunes the demo model against it;
the blind set is
prepared on the held-out prompts (core.evaluation.blind) and judged by the same simulated expert through
the same queue the Evaluate page uses. Prints the reward model's held-out accuracy, the win rate with its
Wilson 95% interval and both models' mean reward (quality bar: win rate >= 80%). With --screenshots it
also renders the Evaluate page and the exported report from this project.

The reward model's held-out accuracy is over the pairs the expert distinguishes (tied replies give no pair);
`--tie-within 0.5` makes the simulated expert tie replies one politeness phrase apart, as a person would.
It learns the request/reply topic match (off-topic answers that look helpful are its main error) from
data: on 240 prompts it reaches ~0.75, on --prompts 960 ~0.83.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASS = "bench"


def expert_tiers(scored: list[tuple[float, int]], tie_within: float = 0.0) -> list[list[int]]:
    """[(expert score, response id)] -> tiers best first. A reply joins the current tier when its score is
    within `tie_within` of that tier's best score (anchored at the top, so ties never chain down); 0 ties
    only equal scores. A real expert ranks near-equal replies as ties rather than flipping a coin."""
    tiers: list[list[int]] = []
    top = None
    for s, rid in sorted(scored, key=lambda x: -x[0]):
        if top is None or top - s > tie_within + 1e-9:
            tiers.append([])
            top = s
        tiers[-1].append(rid)
    return tiers


def rank_like_the_expert(proj, expert_score, tie_within: float = 0.0) -> int:
    """Tiers best first by the expert's score (near-equal ones tied, see `expert_tiers`). Returns prompts
    ranked."""
    n = 0
    for pid in proj.prompt_ids():
        prompt = proj.prompt(pid).prompt
        tiers = expert_tiers([(expert_score(prompt, r.text), r.id) for r in proj.responses(pid)], tie_within)
        if len(tiers) > 1:
            proj.record_ranking(pid, tiers=tiers)
            n += 1
    return n


def recheck_some(proj, rng: random.Random, n: int, slip: float) -> None:
    """Blind re-checks: the expert ranks a few prompts again and, now and then, swaps the top two."""
    judged = [j for j in proj.judgments(kind="ranking")]
    for j in rng.sample(judged, min(n, len(judged))):
        tiers = [list(t) for t in j.tiers]
        if len(tiers) > 1 and rng.random() < slip:
            tiers[0], tiers[1] = tiers[1], tiers[0]
        proj.record_ranking(j.prompt_id, tiers=tiers, purpose="consistency")


def expert_choice(sa: float, sb: float) -> str:
    """The simulated expert's verdict on a blind pair from its two scores: both bad, A, B or a tie (scores
    within 0.25, as a person calls near-equal replies even)."""
    if max(sa, sb) <= -2:
        return "both_bad"
    return "a" if sa > sb + 0.25 else "b" if sb > sa + 0.25 else "tie"


def judge_blind(proj, eval_run: int, expert_score, tags) -> int:
    """The simulated expert judges each blind pair from what the judging view shows: prompt, A, B."""
    from core.evaluation.blind import evaluation_queue, record_evaluation

    queue = evaluation_queue(proj, eval_run)
    for item in queue:
        prompt = proj.prompt(item.prompt_id).prompt
        sa = expert_score(prompt, proj.response(item.a).text)
        sb = expert_score(prompt, proj.response(item.b).text)
        choice = expert_choice(sa, sb)
        flags = ("hallucination",) if min(sa, sb) <= -4 and "hallucination" in tags else ()
        record_evaluation(proj, item, choice, flags=flags, seconds=4.0)
    return len(queue)


def candidate_ceiling(proj, eval_run: int, expert_score) -> float:
    """The blind win rate (ties as ½) of a policy that always wrote the expert's favourite among a held-out
    prompt's stored candidates, or the base's own reply when none is better, against the same base replies:
    what choosing well among replies like the candidates can reach. A tuned model beats it only by writing
    replies better than any candidate."""
    run = proj.run(eval_run)
    won = half = 0
    for it in run.config["items"]:
        base = it["b"] if it["tuned"] == "a" else it["a"]
        prompt = proj.prompt(it["prompt"]).prompt
        base_score = expert_score(prompt, proj.response(base).text)
        stored = [r.text for r in proj.responses(it["prompt"]) if (r.origin or {}).get("kind") != "eval"]
        best = max([expert_score(prompt, text) for text in stored] + [base_score])
        choice = expert_choice(best, base_score)
        won += choice == "a"
        half += choice in ("tie", "both_bad")
    return (won + half / 2) / max(1, len(run.config["items"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--prompts", type=int, default=240, help="demo prompts (20%% held out)")
    ap.add_argument(
        "--algo",
        default="rloo",
        choices=["rloo", "grpo", "ppo", "dpo"],
        help="policy algorithm (default rloo: on the demo it beats PPO, whose value head lets it "
        "exploit the reward model by shortening replies)",
    )
    ap.add_argument("--steps", type=int, default=None, help="policy steps (default: 32 rloo/grpo, 16 ppo, 120 dpo)")
    ap.add_argument(
        "--lr", type=float, default=None, help="policy learning rate (default: 1e-4 rloo/grpo, 3e-4 ppo, 5e-4 dpo)"
    )
    ap.add_argument("--kl", type=float, default=0.05, help="initial KL coefficient")
    ap.add_argument("--rloo-k", type=int, default=4, help="RLOO/GRPO samples per prompt (8 prompts a step)")
    ap.add_argument(
        "--tie-within",
        type=float,
        default=0.0,
        help="the simulated expert ties replies whose scores differ by at most this (0 = equal "
        "scores only); pairs it ties are neither trained on nor counted in the accuracy",
    )
    ap.add_argument("--reward-epochs", type=float, default=4, help="reward-model epochs")
    ap.add_argument(
        "--eval-temperature",
        type=float,
        default=0.7,
        help="decoding of the blind set for both models (0 = greedy; default: the PPO sampling temperature)",
    )
    ap.add_argument("--model", default=None, help="demo model folder (default: resources/demo_model)")
    ap.add_argument("--keep", type=Path, help="keep the project here (default: a temporary folder)")
    ap.add_argument("--screenshots", type=Path, help="also render the Evaluate page and the report here")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument(
        "--defaults",
        action="store_true",
        help="the product's defaults only, through the CLI, for several simulated experts",
    )
    ap.add_argument(
        "--experts",
        default="demo,concise,plain,no_filler,warm",
        help="with --defaults: simulated experts from bench/experts.py, comma-separated",
    )
    ap.add_argument("--algos", default="ppo,rloo", help="with --defaults: algorithms to compare")
    args = ap.parse_args(argv)
    if args.defaults:
        import eval_loop_defaults

        return eval_loop_defaults.main(
            args.experts.split(","),
            args.algos.split(","),
            keep=args.keep,
            threads=args.threads,
            screenshots=args.screenshots,
        )

    import tempfile

    import torch

    from core.demo import corpus as C
    from core.demo.project import create_demo_project, demo_model_dir
    from core.evaluation.blind import EvalSettings, prepare_blind_eval
    from core.evaluation.report import build_report, summary_lines, write_report
    from core.jobs import run_job
    from core.training.policy_config import PolicyConfig
    from core.training.policy_job import train_policy
    from core.training.reward import RewardConfig, train_reward_model

    torch.set_num_threads(args.threads)
    model = str(Path(args.model) if args.model else demo_model_dir())
    folder = args.keep or Path(tempfile.mkdtemp()) / "loop.rlhfproj"
    dtype = "float32"
    timings = {}

    t = time.perf_counter()
    demo = run_job(create_demo_project(folder, PASS, n_prompts=args.prompts, model_path=model, keep_open=True))
    proj = demo.project
    timings["demo project"] = time.perf_counter() - t
    try:
        rng = random.Random(0)
        ranked = rank_like_the_expert(proj, C.expert_score, args.tie_within)
        recheck_some(proj, rng, n=12, slip=0.2)

        t = time.perf_counter()
        rcfg = RewardConfig(
            base_model=model,
            device=args.device,
            learning_rate=1e-3,
            epochs=args.reward_epochs,
            prompts_per_micro_batch=8,
            max_length=160,
            val_fraction=0.15,
            eval_every=20,
            early_stopping_patience=0,
            checkpoint_every=100,
            seed=0,
        )
        reward = run_job(train_reward_model(proj, rcfg))
        timings["reward model"] = time.perf_counter() - t

        t = time.perf_counter()
        group = args.algo in ("rloo", "grpo")
        steps = args.steps or {"ppo": 16, "dpo": 120}.get(args.algo, 32)
        lr = args.lr or {"ppo": 3e-4, "dpo": 5e-4}.get(args.algo, 1e-4)
        # RLOO/GRPO: 8 prompts x k samples a step, so a step sees as many samples as PPO's 16 x 2 epochs.
        pcfg = PolicyConfig(
            algo=args.algo,
            policy_path=model,
            reward_run=reward.run_id,
            mode="full",
            device=args.device,
            dtype=dtype,
            total_steps=steps,
            batch_size=8 if group else 16,
            minibatch_size=8,
            ppo_epochs=2,
            rloo_k=args.rloo_k,
            learning_rate=lr,
            temperature=0.7,
            max_new_tokens=112,
            kl_coef=args.kl,
            dpo_eval_every=0,
            log_samples_every=8,
            checkpoint_every=0,
            seed=0,
        )
        policy = run_job(train_policy(proj, pcfg))
        timings[f"policy ({args.algo.upper()})"] = time.perf_counter() - t

        t = time.perf_counter()
        prep = run_job(
            prepare_blind_eval(
                proj,
                policy.run_id,
                seed=0,
                settings=EvalSettings(
                    device=args.device, dtype=dtype, batch_size=64, temperature=args.eval_temperature
                ),
            )
        )
        timings["blind set"] = time.perf_counter() - t
        app = None
        if args.screenshots:  # the judging view while there is something to judge
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            from PySide6.QtWidgets import QApplication

            from desktop.pages.evaluate import render_judge_screen

            app = QApplication.instance() or QApplication([])
            try:
                from desktop.theme import apply_theme

                apply_theme(app)
            except Exception:  # noqa: BLE001 - the theme is optional for a screenshot
                pass
            render_judge_screen(args.screenshots, proj, prep.eval_run)
        judged = judge_blind(proj, prep.eval_run, C.expert_score, proj.tags())

        t = time.perf_counter()
        report = run_job(build_report(proj, prep.eval_run, device=args.device))
        timings["report"] = time.perf_counter() - t

        ev, rm = report["eval"], report["reward_model"]
        print(f"demo project: {demo.prompts} prompts ({demo.heldout} held out), {ranked} ranked by the expert")
        print(
            f"reward model run {reward.run_id}: held-out accuracy {rm['accuracy']['rate']:.3f} "
            f"on {rm['heldout_pairs']} pairs"
        )
        print(
            f"policy run {policy.run_id}: {policy.steps} {args.algo.upper()} steps; eval run {prep.eval_run}: "
            f"{judged} blind pairs judged, {prep.identical} identical"
        )
        wr = ev["win_rate"]
        print(
            f"win rate (ties as half) {wr['rate']:.3f}  95% CI [{wr['low']:.3f}, {wr['high']:.3f}]  "
            f"target >= 0.80: {'MET' if wr['rate'] >= 0.8 else 'NOT MET'}"
        )
        print("outcomes " + ", ".join(f"{k} {v}" for k, v in ev["outcomes"].items()))
        for line in summary_lines(report):
            print("  " + line)
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))

        if args.screenshots:
            from desktop.pages.evaluate import render_evaluate_screens

            out = Path(args.screenshots)
            paths = write_report(report, out, stem="evaluation_report")
            (out / "evaluation_report.json").unlink()
            (out / "evaluation_report.pdf").unlink()
            shots = render_evaluate_screens(
                out, proj, prep.eval_run, compare_runs=[policy.run_id], metric="reward/mean"
            )
            print("wrote " + ", ".join(str(p) for p in [paths["png"], *shots, out / "evaluate_judge.png"]))
    finally:
        proj.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
