"""The expert's time: held-out reward-model accuracy after N rankings, project order vs informative order.

    python bench/active.py                                   # queue model, 2 experts, 3 seeds (minutes)
    python bench/active.py --experts demo concise plain --seeds 0 1 2 --prompts 720
    python bench/active.py --learner reward --checkpoints 40 80 120 160 200   # the Train page's model (slow)

For each seed a demo project is made (core.demo: support requests, 6 candidates each from the embedded
model; 20% held out) and cached. For each simulated expert (bench/experts.py: consistent judges with
different priorities; they read the demo's phrase banks, which the product never sees) and each queue
order, a fresh copy of it is annotated through the real `AnnotationSession` of the train split: the
expert ranks whatever the queue shows next (ties where its scores are equal; a ranking that is all one
tier still costs a ranking). With the informative order the page's background job (`refresh_queue`)
is re-run every `--refresh-every` rankings and its result applied, as the Annotate page does. The
held-out prompts are ranked by the same expert once, for measuring only; nothing trains on them.

The learning curve is the held-out pairwise accuracy (pairs the expert distinguishes) after N
rankings, averaged over seeds, of
- `--learner queue` (default): the queue's own reward model (core.queue_model, fit on the N rankings,
  as the queue fits it), cheap enough for every checkpoint;
- `--learner reward`: the reward model the Train page trains (core.training.reward, preset `--preset`,
  chosen by `config_for_project` exactly as the app and CLI do), at the `--checkpoints` given.
It prints the rankings each order needs to reach each `--targets` accuracy (linear interpolation between
checkpoints; "—" when not reached within the last checkpoint) and the saving, plus the saving at the
accuracy the project order reaches with all its rankings (a target both orders can reach). Quality bar:
the informative order reaches the same accuracy with >= 30% fewer rankings.

What was tried (an in-memory replay of this loop, same data, demo and concise experts, 3 seeds; the
differences below were within the seeds' spread unless said): bootstrap ensembles scored by BALD
(ensemble disagreement), by the plain margin uncertainty and by both; expected gradient length;
a diagonal-Laplace variance-reduction (Fisher) criterion with greedy batch selection; a committee of
feature views (kept: the most consistent, a little ahead after ~80 rankings); topic diversity (MMR) on
and off; half informative, half project order; starting the informative order after 8 or 40 judged
prompts (40 kept: at 8 it was behind over the first 60 rankings). An oracle that knows the expert's
answers and picks the prompts the model gets wrong reached the project order's 200-ranking accuracy
after ~112 rankings (about 44% fewer): selection can save that much here, uncertainty alone does not
find those prompts yet.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASS = "bench"
FAST_KDF = None  # the demo project uses the product's KDF; it is opened a few times per run only


def load_experts():
    try:
        from experts import EXPERTS  # bench/experts.py: several simulated experts

        return dict(EXPERTS)
    except ImportError:
        from core.demo.corpus import expert_score

        return {"demo": expert_score}


def demo_project(cache: Path, n_prompts: int, seed: int) -> Path:
    """The demo project for `seed` (made once; later runs reuse it)."""
    from core.demo.project import create_demo_project
    from core.jobs import run_job

    path = cache / f"active-{n_prompts}-{seed}.rlhfproj"
    if not (path / "project.db").exists():
        shutil.rmtree(path, ignore_errors=True)
        t = time.perf_counter()
        run_job(create_demo_project(path, PASS, n_prompts=n_prompts, seed=seed))
        print(f"  demo project seed {seed}: {n_prompts} prompts in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def expert_tiers_of(item, expert, tie_within: float) -> list[list[int]]:
    from eval_loop import expert_tiers

    prompt = item.prompt.prompt
    return expert_tiers([(expert(prompt, c.text), i) for i, c in enumerate(item.candidates)], tie_within)


def rank_heldout(proj, expert, tie_within: float) -> int:
    from eval_loop import expert_tiers

    n = 0
    for p in proj.prompts(split="heldout"):
        tiers = expert_tiers([(expert(p.prompt, r.text), r.id) for r in proj.responses(p.id)], tie_within)
        if len(tiers) > 1:
            proj.record_ranking(p.id, tiers)
            n += 1
    return n


class QueueLearner:
    """Held-out accuracy of the queue model fit on the train split's current rankings."""

    def __init__(self, proj):
        from core.active import _judged_rows, _load_table
        from core.jobs import NEVER, run_job
        from core.queue_model import Featurizer

        self.proj = proj
        self.featurizer = Featurizer()
        self.table = run_job(_load_table(proj, proj.prompt_ids(), self.featurizer, NEVER))
        self.X = self.table.matrix()
        self.heldout = {pid: p for pid, p in _judged_rows(proj, "heldout", limit=10**9).items() if p}

    def accuracy(self) -> float:
        from core.active import _groups, _judged_rows
        from core.queue_model import fit

        train = {pid: p for pid, p in _judged_rows(self.proj, "train", limit=10**9).items() if p}
        w = fit(self.X, _groups(self.table, train))
        s = self.X.scores(w)
        correct = total = 0.0
        for g in _groups(self.table, self.heldout):
            for a, b in g.pairs:
                correct += 1.0 if s[a] > s[b] else 0.5 if s[a] == s[b] else 0.0
                total += 1
        return correct / total


class RewardLearner:
    """Held-out accuracy of the Train page's reward model (the preset the app would pick)."""

    def __init__(self, proj, preset: str, device: str):
        self.proj, self.preset, self.device = proj, preset, device

    def accuracy(self) -> float:
        from core.demo.project import demo_model_dir
        from core.jobs import run_job
        from core.training.presets import config_for_project
        from core.training.reward import train_reward_model

        cfg = config_for_project(self.proj, str(demo_model_dir()), self.preset, device=self.device)
        result = run_job(train_reward_model(self.proj, cfg))
        return float(result.metrics["accuracy/heldout"])


def run_order(base: Path, work: Path, order: str, expert, args, seed: int) -> dict[int, float]:
    """Annotate a copy of `base` in `order`; {rankings: held-out accuracy} at each checkpoint."""
    from core.active import ModelCache, refresh_queue
    from core.annotation import AnnotationSession
    from core.jobs import run_job
    from core.project import Project

    dest = work / f"{order}.rlhfproj"
    shutil.rmtree(dest, ignore_errors=True)
    src = Project.open(base, PASS)
    try:
        src.backup(dest)
    finally:
        src.close()
    proj = Project.open(dest, PASS)
    try:
        rank_heldout(proj, expert, args.tie_within)
        learner = QueueLearner(proj) if args.learner == "queue" else RewardLearner(proj, args.preset, args.device)
        session = AnnotationSession(proj, split="train", consistency_share=0.0, order=order, seed=f"bench{seed}")
        cache = ModelCache()
        curve: dict[int, float] = {}
        item = session.start()
        ranked = 0
        checkpoints = sorted(set(args.checkpoints))
        refresh_s = 0.0
        while item is not None and ranked < checkpoints[-1]:
            item = session.submit_ranking(expert_tiers_of(item, expert, args.tie_within))
            ranked += 1
            if order == "informative" and ranked % args.refresh_every == 0:
                t = time.perf_counter()
                session.apply_order(
                    run_job(
                        refresh_queue(
                            proj,
                            split="train",
                            seed=seed,
                            cache=cache,
                            use_reward_run=args.learner == "reward",
                            **({"min_judged": args.start_after} if args.start_after else {}),
                        )
                    )
                )
                refresh_s += time.perf_counter() - t
            if ranked in checkpoints:
                curve[ranked] = learner.accuracy()
        if order == "informative":
            n = max(1, ranked // args.refresh_every)
            print(f"    informative: {n} refreshes, {refresh_s / n:.1f} s each on average", flush=True)
        return curve
    finally:
        proj.close()
        shutil.rmtree(dest, ignore_errors=True)


def needed(curve: list[tuple[int, float]], target: float):
    """Rankings to reach `target` on a mean curve (interpolated), or None."""
    prev = (0, 0.5)
    for n, acc in curve:
        if acc >= target:
            n0, a0 = prev
            if acc == a0:
                return float(n)
            return n0 + (target - a0) * (n - n0) / (acc - a0)
        prev = (n, acc)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--prompts", type=int, default=720, help="demo prompts per seed (20%% held out)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--experts", nargs="+", default=["demo", "concise"], help="simulated experts from bench/experts.py")
    ap.add_argument("--learner", choices=("queue", "reward"), default="queue")
    ap.add_argument("--preset", default="quick", help="reward-model preset with --learner reward")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[10, 20, 30, 40, 60, 80, 100, 125, 150, 175, 200])
    ap.add_argument("--refresh-every", type=int, default=10, help="rankings between queue refreshes")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.75, 0.8, 0.85, 0.9])
    ap.add_argument("--tie-within", type=float, default=0.0)
    ap.add_argument(
        "--start-after",
        type=int,
        default=None,
        help="judged prompts before the informative order starts (default: the product's START_INFORMATIVE)",
    )
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "rlhf-studio-bench")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    experts = load_experts()
    missing = [e for e in args.experts if e not in experts]
    if missing:
        ap.error(f"unknown experts {missing}; have {sorted(experts)}")
    args.cache.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    print(
        f"bench/active.py: {args.prompts} demo prompts per seed, seeds {args.seeds}, experts {args.experts}, "
        f"learner {args.learner}, refresh every {args.refresh_every} rankings, {os.cpu_count()} CPUs",
        flush=True,
    )
    results: dict[str, dict[str, list[dict[int, float]]]] = {
        e: {"project": [], "informative": []} for e in args.experts
    }
    for seed in args.seeds:
        base = demo_project(args.cache, args.prompts, seed)
        for name in args.experts:
            for order in ("project", "informative"):
                t = time.perf_counter()
                with tempfile.TemporaryDirectory() as work:
                    curve = run_order(base, Path(work), order, experts[name], args, seed)
                results[name][order].append(curve)
                shown = " ".join(f"{n}:{a:.3f}" for n, a in curve.items())
                print(f"  seed {seed} {name:10s} {order:11s} {time.perf_counter() - t:5.0f} s  {shown}", flush=True)

    print(
        f"\nheld-out pairwise accuracy after N rankings (mean over seeds {args.seeds}; ± sd), learner {args.learner}:"
    )
    savings = []
    for name in args.experts:
        curves = {}
        print(f"\nexpert {name}")
        print(f"{'N':>5s}  {'project order':>15s}  {'informative':>15s}")
        for n in sorted(set(args.checkpoints)):
            row = []
            for order in ("project", "informative"):
                vals = [c[n] for c in results[name][order] if n in c]
                curves.setdefault(order, []).append((n, statistics.mean(vals)) if vals else (n, float("nan")))
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                row.append(f"{statistics.mean(vals):.3f} ± {sd:.3f}" if vals else "—")
            print(f"{n:5d}  {row[0]:>15s}  {row[1]:>15s}")
        final = curves["project"][-1][1]
        for target, label in [(t, f"{t:.2f}") for t in args.targets] + [
            (final, f"{final:.3f} (project order at {curves['project'][-1][0]})")
        ]:
            n_p, n_i = needed(curves["project"], target), needed(curves["informative"], target)
            fmt = lambda v: f"{v:.0f}" if v is not None else f"— (>{args.checkpoints[-1]})"  # noqa: E731
            if n_p is not None and n_i is not None:
                saving = 1 - n_i / n_p
                text = f"saving {saving:.0%}"
                savings.append((name, label, saving))
            elif n_i is not None:
                text = f"saving > {1 - n_i / args.checkpoints[-1]:.0%} (project order does not reach it)"
            else:
                text = "not reached by the informative order"
            print(f"  target {label}: project order {fmt(n_p)} rankings, informative {fmt(n_i)}; {text}")
    if savings:
        matched = [s for name, label, s in savings if "project order at" in label]
        print(
            "\nsaving at the accuracy the project order reaches with all its rankings: "
            + ", ".join(f"{n} {s:.0%}" for (n, label, s) in savings if "project order at" in label)
            + f"; goal >= 30%: {'MET' if matched and min(matched) >= 0.3 else 'NOT MET'}"
        )
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
