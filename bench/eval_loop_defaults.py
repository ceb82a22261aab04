"""The whole loop with the product's defaults only, for several simulated experts.

    python bench/eval_loop.py --defaults                      # all experts in bench/experts.py, PPO and RLOO
    python bench/eval_loop.py --defaults --experts demo,concise --algos ppo
    python bench/eval_loop.py --defaults --experts demo --algos ppo --screenshots docs/screenshots

Every stage is the `rlhf-studio` command a user would type, with no option beyond what the command needs
(project, base folder, run ids): `demo`, then the expert ranks every prompt's candidates through the same
API the Annotate page uses, `train-reward`, `train-policy --algo A` (only the algorithm is named, to
compare them; PPO is the default), `evaluate`, then the expert judges the blind pairs through the
Evaluate page's queue, and the report's figures are read back. Prints per expert and algorithm: the
reward model's held-out pairwise accuracy, the blind win rate with its Wilson 95% interval, how many
held-out replies the tuning left identical, the best-candidate ceiling (`eval_loop.candidate_ceiling`: the
win rate of always writing the expert's favourite stored candidate), the reply length against the base,
and seconds per stage.
To try a change against the defaults, put extra `train-policy` flags in RLHF_BENCH_POLICY_FLAGS (e.g.
`RLHF_BENCH_POLICY_FLAGS="--kl-coef 0.2"`); the printed command line shows them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PASS = "bench"


def cli(*argv: str) -> None:
    """Run one `rlhf-studio` command in this process, its output shown as a user would see it."""
    from core.cli import main

    print(f"$ rlhf-studio {' '.join(map(str, argv))}", flush=True)
    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"rlhf-studio {' '.join(map(str, argv))} failed ({rc})")


def latest_run(folder: Path, kind: str) -> int:
    from core.project import Project

    with contextlib.closing(Project.open(folder, PASS)) as proj:
        return max(r.id for r in proj.runs() if r.kind == kind and r.status == "done")


def _qt_app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    return app


def one_loop(
    base: Path, work: Path, expert_name: str, algos: list[str], model: str, screenshots: Path | None = None
) -> list[dict]:
    """Rank with one expert, train the reward model once, then each algorithm; one row per algorithm.
    With `screenshots`, the first algorithm's Evaluate pages (judging, results, comparison) and report
    are rendered there: the README's Evaluate screens come from a defaults run."""
    import experts as E
    from eval_loop import candidate_ceiling, judge_blind, rank_like_the_expert

    from core.evaluation.report import build_report
    from core.jobs import run_job
    from core.project import Project

    expert = E.EXPERTS[expert_name]
    folder = work / f"{expert_name}.rlhfproj"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, folder)
    times: dict[str, float] = {}
    with contextlib.closing(Project.open(folder, PASS)) as proj:
        ranked = rank_like_the_expert(proj, expert)
    t = time.perf_counter()
    cli("train-reward", folder, "--base", model)
    times["reward"] = time.perf_counter() - t
    reward_run = latest_run(folder, "reward")
    rows = []
    for algo in algos:
        stage = dict(times)
        t = time.perf_counter()
        extra = os.environ.get("RLHF_BENCH_POLICY_FLAGS", "").split()  # trying a change against the defaults
        cli("train-policy", folder, "--policy", model, "--reward", reward_run, "--algo", algo, *extra)
        stage["policy"] = time.perf_counter() - t
        policy_run = latest_run(folder, "policy")
        t = time.perf_counter()
        cli("evaluate", folder, policy_run, "--seed", "0")
        stage["evaluate"] = time.perf_counter() - t
        with contextlib.closing(Project.open(folder, PASS)) as proj:
            eval_run = max(r.id for r in proj.runs() if r.kind == "eval")
            shoot = screenshots is not None and algo == algos[0]
            if shoot:
                from desktop.pages.evaluate import render_judge_screen

                app = _qt_app()  # noqa: F841 - widgets need the application alive
                render_judge_screen(screenshots, proj, eval_run)
            judged = judge_blind(proj, eval_run, expert, proj.tags())
            ceiling = candidate_ceiling(proj, eval_run, expert)
            t = time.perf_counter()
            report = run_job(build_report(proj, eval_run, reward_run=reward_run))
            stage["report"] = time.perf_counter() - t
            summary = proj.run(policy_run).summary or {}
            if shoot:
                from core.evaluation.report import write_report
                from desktop.pages.evaluate import render_evaluate_screens

                paths = write_report(report, screenshots, stem="evaluation_report")
                for extra_file in ("json", "pdf"):
                    Path(paths[extra_file]).unlink(missing_ok=True)
                shots = render_evaluate_screens(
                    screenshots, proj, eval_run, compare_runs=[policy_run], metric="reward/mean"
                )
                print("wrote " + ", ".join(str(p) for p in [paths["png"], *shots]), flush=True)
        ev, rm = report["eval"], report["reward_model"]
        rows.append(
            {
                "expert": expert_name,
                "algo": algo,
                "ranked": ranked,
                "judged": judged,
                "rm_accuracy": rm["accuracy"]["rate"],
                "rm_pairs": rm["heldout_pairs"],
                "win": ev["win_rate"]["rate"],
                "low": ev["win_rate"]["low"],
                "high": ev["win_rate"]["high"],
                "outcomes": ev["outcomes"],
                "ceiling": ceiling,
                "length_ratio": (summary.get("monitors") or {}).get("length_ratio"),
                "seconds": stage,
            }
        )
    return rows


def print_row(r: dict) -> None:
    o = r["outcomes"]
    lr = r["length_ratio"]
    print(
        f"{r['expert']:<10} {r['algo'].upper():<5} reward model {r['rm_accuracy']:.3f} ({r['rm_pairs']} pairs)  "
        f"win {r['win']:.3f} [{r['low']:.3f}, {r['high']:.3f}] {'MET' if r['win'] >= 0.8 else 'not met'}  "
        f"({o.get('win', 0)} won, {o.get('identical', 0)} identical, {o.get('tie', 0) + o.get('both_bad', 0)} tied, "
        f"{o.get('loss', 0)} lost)  best-candidate ceiling {r['ceiling']:.3f}  "
        f"length x{lr if lr is None else round(lr, 2)}  "
        + "s: "
        + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()),
        flush=True,
    )


def main(
    experts: list[str], algos: list[str], keep: Path | None = None, threads: int = 0, screenshots: Path | None = None
) -> int:
    import torch

    import experts as E
    from core.demo.project import demo_model_dir

    unknown = [e for e in experts if e not in E.EXPERTS]
    if unknown:
        raise SystemExit(f"unknown expert(s) {', '.join(unknown)}; choose from {', '.join(E.EXPERTS)}")
    if threads:
        torch.set_num_threads(threads)
    os.environ["RLHF_STUDIO_PASSPHRASE"] = PASS
    work = keep or Path(tempfile.mkdtemp(prefix="eval_defaults_"))
    work.mkdir(parents=True, exist_ok=True)
    model = str(demo_model_dir())
    base = work / "base.rlhfproj"
    t = time.perf_counter()
    if not base.exists():
        cli("demo", base)
    demo_s = time.perf_counter() - t
    print(f"demo project: {demo_s:.0f} s ({work})", flush=True)
    rows = []
    for name in experts:
        shots = screenshots if name == experts[0] else None
        for r in one_loop(base, work, name, algos, model, shots):
            r["seconds"] = {"demo": demo_s, **r["seconds"]}
            print_row(r)
            rows.append(r)
    print("\nsummary (quality bars: reward model >= 0.90, win >= 0.80, PPO within 0.05 of the best algorithm)")
    for r in rows:
        print_row(r)
    for name in experts:
        mine = {r["algo"]: r["win"] for r in rows if r["expert"] == name}
        if "ppo" in mine and len(mine) > 1:
            best = max(mine.values())
            print(
                f"{name}: PPO {mine['ppo']:.3f} vs best {best:.3f}: "
                f"{'within 0.05' if best - mine['ppo'] <= 0.05 + 1e-9 else 'NOT within 0.05'}"
            )
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0
