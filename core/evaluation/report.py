"""Evaluation reports: the blind A/B results of a tuned policy, the reward model against the expert, and
the expert against themselves. Numbers and ids only: a report never holds prompt or response text.

    report = run_job(build_report(proj, eval_run_id, cancel=token))    # a dict (the JSON summary)
    paths = write_report(report, "out/", stem="eval-run-7")            # .json, .png, .pdf

Sections:
- `eval`: win / tie / loss from the tuned model's side, the win rate with a Wilson 95% interval (ties,
  "both bad" and identical responses count as half a win; the rate with ties excluded is given too),
  per-flag rates over the judged items, and, when a reward-model run exists, both models' reward-model
  scores (distribution, mean difference) and how often the reward model agrees with the expert's blind
  choices.
- `reward_model`: accuracy on the expert's held-out preference pairs, and calibration (accuracy by
  reward margin, in equal-count bins).
- `expert`: self-consistency from the blind re-checks (purpose="consistency") and ranking cycles
  (A>B, B>C, C>A within a prompt) among the pairs implied by all current judgments.

The files hold numbers, run/prompt/response ids and the project's flag names; writing them is an explicit
export and is written to the audit log. Charts are drawn by `draw_*` functions on any matplotlib Axes (the
Evaluate page uses the same ones on its canvases); files are rendered with the Agg backend, never pyplot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator, Optional

from core.errors import UserError
from core.evaluation import stats
from core.evaluation.blind import EVAL_KIND, current_choices, eval_run_of
from core.evaluation.change import barely_changed_message, identical_share
from core.jobs import NEVER, CancelToken, Progress

FORMAT = "rlhf-studio-evaluation-report/1"
TIES_RULE = "ties, both-bad and identical responses count as half a win"
COLORS = {
    "win": "#2e8b46",
    "tie": "#c9a227",
    "both_bad": "#8a55c9",
    "identical": "#a0a0a0",
    "loss": "#b23b3b",
    "tuned": "#2f6fce",
    "base": "#8c8c8c",
}
OUTCOME_LABELS = {
    "win": "tuned better",
    "tie": "tie",
    "both_bad": "both bad",
    "identical": "identical",
    "loss": "base better",
}


# ---- which runs ----------------------------------------------------------------------------------------


def finished_reward_runs(proj) -> list[int]:
    from core.training.reward import FINAL

    return [r.id for r in proj.runs(kind="reward") if proj.has_artifact(r.id, FINAL)]


def choose_reward_run(proj, preferred: Optional[int] = None, eval_run=None) -> Optional[int]:
    """The explicit run, else the one the policy was trained against, else the newest finished one."""
    available = finished_reward_runs(proj)
    if preferred is not None:
        if preferred not in available:
            raise UserError(f"Run {preferred} is not a finished reward-model run.")
        return preferred
    if eval_run is not None and eval_run.config.get("reward_run") in available:
        return eval_run.config["reward_run"]
    return available[-1] if available else None


def latest_eval_run(proj, policy_run: int) -> Optional[int]:
    runs = [r.id for r in proj.runs(kind=EVAL_KIND) if r.config.get("policy_run") == policy_run]
    return runs[-1] if runs else None


def resolve_report_run(proj, run_id: int) -> tuple[Optional[int], Optional[int]]:
    """A run named on the command line -> (eval run, reward run preference). A policy run means its
    newest evaluation; a reward run means the reward-model and expert sections alone."""
    run = proj.run(run_id)
    if run.kind == EVAL_KIND:
        return run_id, None
    if run.kind == "policy":
        ev = latest_eval_run(proj, run_id)
        if ev is None:
            raise UserError(f"Policy run {run_id} has not been evaluated yet; run `evaluate` first.")
        return ev, None
    if run.kind == "reward":
        return None, run_id
    raise UserError(f"Run {run_id} is a {run.kind} run; name an eval, policy or reward run.")


# ---- building the report ------------------------------------------------------------------------------


def eval_section(proj, eval_run_id: int) -> dict:
    """Counts from the judgments alone (fast: no model)."""
    run = eval_run_of(proj, eval_run_id)
    items = run.config["items"]
    judged = current_choices(proj, run)
    per_item, outcomes, flag_sets = [], [], []
    for i, it in enumerate(items):
        row = {"index": i, "prompt": it["prompt"], "tuned": it["tuned"], "outcome": None}
        if it.get("identical"):
            row["outcome"] = "identical"
        elif i in judged:
            j = judged[i]
            # The stored judgment names its A and B; map the choice to a response, then to a side.
            if j.choice in ("a", "b"):
                winner = j.a if j.choice == "a" else j.b
                tuned_rid = it["a"] if it["tuned"] == "a" else it["b"]
                row["outcome"] = "win" if winner == tuned_rid else "loss"
            else:
                row["outcome"] = j.choice
            flag_sets.append(j.flags)
        if row["outcome"] is not None:
            outcomes.append(row["outcome"])
        per_item.append(row)
    counts = stats.count_outcomes(outcomes)
    settings = run.config.get("settings", {})
    return {
        "run": eval_run_id,
        "policy_run": run.config.get("policy_run"),
        "algo": run.config.get("algo"),
        "created": run.created,
        "decoding": {k: settings.get(k) for k in ("temperature", "top_p", "max_new_tokens", "sampling_seed")},
        "items": len(items),
        "judged": len(judged),
        "pending": sum(1 for i, it in enumerate(items) if not it.get("identical") and i not in judged),
        "tuned_as_a": sum(1 for it in items if it["tuned"] == "a"),
        "outcomes": counts.to_dict(),
        "ties_rule": TIES_RULE,
        "win_rate": counts.win_rate().to_dict(),
        "win_rate_excluding_ties": counts.win_rate_excluding_ties().to_dict(),
        "flags": {f: r.to_dict() for f, r in stats.flag_rates(flag_sets, proj.tags()).items()},
        "per_item": per_item,
        "identical_share": identical_share(items),
        "barely_changed": barely_changed_message(
            {"items": len(items), "outcomes": counts.to_dict(), "decoding": settings}
        ),
    }


def expert_section(proj) -> dict:
    from core.annotation import consistency_checks

    checks = consistency_checks(proj)
    cons = stats.self_consistency([c.agreed for c in checks], [c.tau for c in checks])
    cons["by_kind"] = {}
    for kind in sorted({c.kind for c in checks}):
        sub = [c for c in checks if c.kind == kind]
        cons["by_kind"][kind] = stats.self_consistency([c.agreed for c in sub], [c.tau for c in sub])
    pairs = proj.preference_pairs()
    cycles = stats.cycles_by_prompt((p.prompt_id, p.chosen_id, p.rejected_id) for p in pairs)
    return {
        "consistency": cons,
        "cycles": {
            "prompts_checked": len({p.prompt_id for p in pairs}),
            "prompts_with_cycles": len(cycles),
            "cycles": [{"prompt": pid, "responses": c} for pid, cs in sorted(cycles.items()) for c in cs],
        },
    }


def _score_all(model, proj, wanted: dict[int, set[int]], cancel, step: int, total: int) -> Iterator[Progress]:
    """Returns {response_id: reward} for the responses wanted per prompt; yields after each prompt batch."""
    scores: dict[int, float] = {}
    pids = sorted(wanted)
    chunk = 32
    for i in range(0, len(pids), chunk):
        cancel.raise_if_cancelled()
        batch_items, batch_ids = [], []
        for pid in pids[i : i + chunk]:
            prompt = proj.prompt(pid).prompt
            for r in proj.responses(pid):
                if r.id in wanted[pid]:
                    batch_items.append((prompt, r.text))
                    batch_ids.append(r.id)
        for rid, value in zip(batch_ids, model.score(batch_items)):
            scores[rid] = float(value)
        yield Progress(step, total, f"scoring with the reward model ({min(i + chunk, len(pids))}/{len(pids)} prompts)")
    return scores


def build_report(
    proj,
    eval_run_id: Optional[int] = None,
    *,
    reward_run: Optional[int] = None,
    cancel: CancelToken = NEVER,
    device: Optional[str] = None,
    n_bins: int = 5,
) -> Iterator[Progress]:
    """A job; returns the report dict (see the module docstring). eval_run_id None: no `eval` section."""
    total = 4
    yield Progress(0, total, "counting judgments")
    report: dict = {"format": FORMAT, "generated": time.time(), "eval": None, "reward": None, "reward_model": None}
    ev_run = eval_run_of(proj, eval_run_id) if eval_run_id is not None else None
    if ev_run is not None:
        report["eval"] = eval_section(proj, eval_run_id)
    report["expert"] = expert_section(proj)
    cancel.raise_if_cancelled()
    rm_id = choose_reward_run(proj, reward_run, ev_run)
    if rm_id is None:
        yield Progress(total, total, "done (no reward model)")
        return report

    from core.training.reward import load_reward_model

    yield Progress(1, total, "loading the reward model")
    model = load_reward_model(proj, rm_id, device=device)
    cancel.raise_if_cancelled()

    wanted: dict[int, set[int]] = {}
    heldout = proj.preference_pairs(split="heldout")
    for p in heldout:
        wanted.setdefault(p.prompt_id, set()).update((p.chosen_id, p.rejected_id))
    items = ev_run.config["items"] if ev_run is not None else []
    for it in items:
        wanted.setdefault(it["prompt"], set()).update((it["a"], it["b"]))
    yield Progress(2, total, "scoring with the reward model")
    scores = yield from _score_all(model, proj, wanted, cancel, 2, total)
    del model

    diffs = [scores[p.chosen_id] - scores[p.rejected_id] for p in heldout]
    acc = stats.pairwise_accuracy(diffs)
    report["reward_model"] = {
        "run": rm_id,
        "heldout_pairs": len(diffs),
        "heldout_prompts": len({p.prompt_id for p in heldout}),
        "accuracy": acc.to_dict(),
        "calibration": [b.to_dict() for b in stats.calibration_bins(diffs, n_bins)],
        "ties_rule": "an exact reward tie counts as half right",
    }
    if ev_run is not None:
        base, tuned, agree = [], [], []
        for row, it in zip(report["eval"]["per_item"], items):
            t_rid, b_rid = (it["a"], it["b"]) if it["tuned"] == "a" else (it["b"], it["a"])
            row["reward_tuned"], row["reward_base"] = scores[t_rid], scores[b_rid]
            tuned.append(scores[t_rid])
            base.append(scores[b_rid])
            if row["outcome"] in ("win", "loss"):
                chosen, rejected = (t_rid, b_rid) if row["outcome"] == "win" else (b_rid, t_rid)
                agree.append(scores[chosen] - scores[rejected])
        diff = [t - b for t, b in zip(tuned, base)]
        report["reward"] = {
            "run": rm_id,
            "base": stats.distribution(base),
            "tuned": stats.distribution(tuned),
            "base_values": base,
            "tuned_values": tuned,
            "mean_difference": (sum(diff) / len(diff)) if diff else None,
            "tuned_higher": stats.rate(sum(stats.pair_correct(d, 0.0) for d in diff), len(diff)).to_dict(),
            "agreement_with_expert": stats.pairwise_accuracy(agree).to_dict(),
        }
    yield Progress(total, total, "done")
    return report


# ---- files ---------------------------------------------------------------------------------------------


def report_stem(report: dict) -> str:
    if report.get("eval"):
        return f"eval-run-{report['eval']['run']}"
    if report.get("reward_model"):
        return f"reward-run-{report['reward_model']['run']}"
    return "expert-report"


def write_report(report: dict, out_dir, stem: Optional[str] = None) -> dict[str, Path]:
    """Write `<stem>.json`, `<stem>.png` and `<stem>.pdf` into out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or report_stem(report)
    paths = {"json": out / f"{stem}.json", "png": out / f"{stem}.png", "pdf": out / f"{stem}.pdf"}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=True), "utf-8")
    fig = report_figure(report)
    fig.savefig(paths["png"], dpi=110)
    fig.savefig(paths["pdf"])
    return paths


def export_report(
    proj,
    run_id: int,
    out_dir,
    *,
    reward_run: Optional[int] = None,
    cancel: CancelToken = NEVER,
    device: Optional[str] = None,
) -> Iterator[Progress]:
    """A job: build the report for an eval, policy or reward run and write its files; returns the paths."""
    eval_id, rm_pref = resolve_report_run(proj, run_id)
    report = yield from build_report(proj, eval_id, reward_run=reward_run or rm_pref, cancel=cancel, device=device)
    paths = write_report(report, out_dir)
    proj.audit("exported", what="report", run=run_id)
    return paths


# ---- charts ----------------------------------------------------------------------------------------------


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _empty(ax, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#888888", wrap=True)


def draw_outcomes(ax, report: dict) -> None:
    """Counts of each outcome (tuned model's side) as horizontal bars."""
    ev = report.get("eval")
    ax.set_title("Blind comparisons", fontsize=10)
    if not ev or not (ev["judged"] + ev["outcomes"]["identical"]):
        _empty(
            ax,
            "No blind pairs judged yet"
            if ev
            else "Prepare a blind set, then judge its pairs:\nthe outcomes appear here",
        )
        return
    names = [k for k in stats.OUTCOMES if k != "identical" or ev["outcomes"]["identical"]]
    values = [ev["outcomes"][k] for k in names]
    y = list(range(len(names)))[::-1]
    ax.barh(y, values, color=[COLORS[k] for k in names], height=0.6)
    ax.set_yticks(y, [OUTCOME_LABELS[k] for k in names], fontsize=9)
    top = max(values) or 1
    for yi, v in zip(y, values):
        ax.text(v + top * 0.02, yi, str(v), va="center", fontsize=9)
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel("pairs", fontsize=9)


def draw_win_rate(ax, report: dict) -> None:
    """Win rate with its Wilson 95% interval (ties as half), and the rate with ties excluded."""
    ev = report.get("eval")
    ax.set_title("Tuned model's win rate (95% interval)", fontsize=10)
    if not ev or not ev["win_rate"]["n"]:
        _empty(ax, "No blind pairs judged yet")
        return
    rows = [("ties as ½", ev["win_rate"]), ("ties excluded", ev["win_rate_excluding_ties"])]
    for y, (label, r) in zip((1, 0), rows):
        if r["rate"] is None:
            ax.text(0.5, y, "no wins or losses yet", ha="center", va="center", fontsize=8.5, color="#888888")
            continue
        ax.errorbar(
            [r["rate"]],
            [y],
            xerr=[[r["rate"] - r["low"]], [r["high"] - r["rate"]]],
            fmt="o",
            color=COLORS["tuned"],
            ecolor=COLORS["tuned"],
            capsize=5,
            markersize=7,
            linewidth=2,
        )
        ax.text(
            r["rate"],
            y + 0.22,
            f"{_pct(r['rate'])}  [{_pct(r['low'])}, {_pct(r['high'])}]  n={r['n']}",
            ha="center",
            fontsize=8.5,
        )
    ax.axvline(0.5, color="#888888", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, 1.7)
    ax.set_yticks([1, 0], [r[0] for r in rows], fontsize=9)
    ax.set_xlabel("share of comparisons won", fontsize=9)


def draw_rewards(ax, report: dict) -> None:
    """Both models' reward-model scores on the held-out prompts, as overlaid histograms."""
    rw = report.get("reward")
    ax.set_title("Reward-model scores" + (f" (reward run {rw['run']})" if rw else ""), fontsize=10)
    if not rw or not rw["base_values"]:
        _empty(
            ax,
            "Both models' reward-model scores appear here\nonce a blind set is prepared"
            if not report.get("eval")
            else "No reward-model scores yet:\nthey need a trained reward model",
        )
        return
    values = rw["base_values"] + rw["tuned_values"]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = [lo + (hi - lo) * i / 12 for i in range(13)]
    for side in ("base", "tuned"):
        vals = rw[f"{side}_values"]
        ax.hist(vals, bins=bins, alpha=0.55, color=COLORS[side], label=f"{side}  mean {rw[side]['mean']:+.2f}")
        ax.axvline(rw[side]["mean"], color=COLORS[side], linewidth=2)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    ax.set_xlabel("reward (centred)", fontsize=9)
    ax.set_ylabel("prompts", fontsize=9)


def draw_calibration(ax, report: dict) -> None:
    """Reward model's accuracy against the expert's held-out pairs, by reward margin."""
    rm = report.get("reward_model")
    ax.set_title("Reward model vs expert: accuracy by margin", fontsize=10)
    if not rm or not rm["calibration"]:
        if rm:
            text = (
                "How often the reward model agrees with you, by margin, appears here.\nRank a few "
                "held-out prompts (Annotate ▸ Guidelines ▸ Queue: held-out) to see it"
            )
        else:
            text = (
                "How often the reward model agrees with you appears here.\nIt needs a trained reward "
                "model and a few held-out prompts you ranked"
            )
        _empty(ax, text)
        return
    bins = rm["calibration"]
    x = list(range(len(bins)))
    acc = [b["accuracy"] for b in bins]
    err = [[a - b["ci_low"] for a, b in zip(acc, bins)], [b["ci_high"] - a for a, b in zip(acc, bins)]]
    ax.bar(x, acc, color=COLORS["tuned"], alpha=0.75, width=0.65)
    ax.errorbar(x, acc, yerr=err, fmt="none", ecolor="#444444", capsize=3, linewidth=1)
    ax.axhline(0.5, color="#888888", linestyle="--", linewidth=1)
    overall = rm["accuracy"]["rate"]
    if overall is not None:
        ax.axhline(
            overall, color=COLORS["win"], linewidth=1.2, label=f"overall {_pct(overall)} (n={rm['heldout_pairs']})"
        )
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_xticks(x, [f"{b['low']:.2f}–{b['high']:.2f}\nn={b['n']}" for b in bins], fontsize=7.5)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("|reward margin| (equal-count bins)", fontsize=9)
    ax.set_ylabel("accuracy", fontsize=9)


def draw_flags(ax, report: dict) -> None:
    ev = report.get("eval")
    ax.set_title("Flags on judged pairs (95% interval)", fontsize=10)
    flags = (ev or {}).get("flags") or {}
    if not ev or not ev["judged"] or not any(f.get("successes") for f in flags.values()):
        _empty(
            ax,
            "No judged pairs yet: press Judge blind pairs"
            if not ev or not ev["judged"]
            else "No pair flagged (F1–F4 while judging)",
        )
        return
    names = list(flags)
    y = list(range(len(names)))[::-1]
    rates = [flags[n]["rate"] or 0.0 for n in names]
    ax.barh(y, rates, color=COLORS["loss"], alpha=0.7, height=0.55)
    ax.errorbar(
        rates,
        y,
        xerr=[
            [r - flags[n]["low"] for r, n in zip(rates, names)],
            [flags[n]["high"] - r for r, n in zip(rates, names)],
        ],
        fmt="none",
        ecolor="#444444",
        capsize=3,
        linewidth=1,
    )
    ax.set_yticks(y, [f"{n} ({int(flags[n]['successes'])})" for n in names], fontsize=8.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judged pairs", fontsize=9)


def summary_lines(report: dict) -> list[str]:
    """The report's headline figures as short lines (numbers only)."""
    lines = []
    ev = report.get("eval")
    if ev:
        wr = ev["win_rate"]
        o = ev["outcomes"]
        lines.append(
            f"Eval run {ev['run']}: policy run {ev['policy_run']} ({(ev['algo'] or '?').upper()}) "
            f"vs its base, {ev['items']} held-out prompts, {ev['judged']} judged, {ev['pending']} pending."
        )
        lines.append(
            f"Win rate {_pct(wr['rate'])} [{_pct(wr['low'])}, {_pct(wr['high'])}] "
            f"({o['win']} won, {o['tie'] + o['both_bad'] + o['identical']} tied, {o['loss']} lost; "
            f"ties as half)."
        )
        dec = ev["decoding"]
        mode = "greedy" if not dec.get("temperature") else f"temperature {dec['temperature']}"
        lines.append(
            f"Decoding: {mode}, up to {dec.get('max_new_tokens')} tokens; "
            f"tuned shown as A in {ev['tuned_as_a']} of {ev['items']}."
        )
    rw = report.get("reward")
    if rw and rw["base"]["n"]:
        lines.append(
            f"Reward (run {rw['run']}): base mean {rw['base']['mean']:+.3f}, tuned mean "
            f"{rw['tuned']['mean']:+.3f}; tuned higher on {_pct(rw['tuned_higher']['rate'])}."
        )
        ag = rw["agreement_with_expert"]
        if ag["n"]:
            lines.append(f"Reward model agrees with the blind choices on {_pct(ag['rate'])} (n={ag['n']}).")
    rm = report.get("reward_model")
    if rm and not rm["heldout_pairs"]:
        lines.append(
            f"Reward model run {rm['run']}: held-out accuracy unknown, no held-out prompt ranked yet "
            "(rank a few: Annotate ▸ Guidelines ▸ Queue: held-out)."
        )
    elif rm:
        a = rm["accuracy"]
        lines.append(
            f"Reward model run {rm['run']}: held-out accuracy {_pct(a['rate'])} "
            f"[{_pct(a['low'])}, {_pct(a['high'])}] on {rm['heldout_pairs']} expert pairs."
        )
    ex = report.get("expert") or {}
    c = ex.get("consistency") or {}
    if c.get("checks"):
        tau = f", mean Kendall tau {c['mean_tau']:.2f}" if c.get("mean_tau") is not None else ""
        lines.append(
            f"Expert self-consistency: {_pct(c['agreement'])} [{_pct(c['low'])}, {_pct(c['high'])}] "
            f"of {c['checks']} blind re-checks{tau}."
        )
    else:
        lines.append("Expert self-consistency: no blind re-checks yet.")
    cy = ex.get("cycles") or {}
    if cy:
        lines.append(f"Ranking cycles: {cy['prompts_with_cycles']} of {cy['prompts_checked']} judged prompts.")
    return lines


def notices(report: dict) -> list[str]:
    """Plain-words warnings about the results (e.g. the run barely changed the model), with advice."""
    ev = report.get("eval") or {}
    return [ev["barely_changed"]] if ev.get("barely_changed") else []


def report_figure(report: dict):
    """One landscape page: headline, outcomes, win rate, rewards, calibration, flags."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.69, 8.27), layout="constrained")
    grid = fig.add_gridspec(3, 3, height_ratios=[0.9, 2, 2])
    head = fig.add_subplot(grid[0, :])
    head.axis("off")
    title = "RLHF Studio — evaluation report"
    if report.get("eval"):
        title += f": eval run {report['eval']['run']}"
    head.text(0, 1.0, title, fontsize=15, fontweight="bold", va="top", transform=head.transAxes)
    generated = time.strftime("%Y-%m-%d %H:%M", time.localtime(report.get("generated", time.time())))
    head.text(1.0, 1.0, generated, fontsize=9, ha="right", va="top", color="#666666", transform=head.transAxes)
    lines = summary_lines(report)
    half = (len(lines) + 1) // 2
    notes = notices(report)
    top = 0.72
    if notes:
        import textwrap

        wrapped = [line for n in notes for line in textwrap.wrap(n, 150)]
        head.text(
            0,
            0.86,
            "\n".join(wrapped),
            fontsize=8.6,
            va="top",
            color=COLORS["loss"],
            fontweight="bold",
            transform=head.transAxes,
            in_layout=False,
        )
        top = 0.86 - 0.15 * len(wrapped) - 0.04
    for col, chunk in enumerate((lines[:half], lines[half:])):
        head.text(
            0.5 * col,
            top,
            "\n".join(chunk),
            fontsize=8.6,
            va="top",
            linespacing=1.5,
            transform=head.transAxes,
            wrap=True,
        )
    draw_outcomes(fig.add_subplot(grid[1, 0]), report)
    draw_win_rate(fig.add_subplot(grid[1, 1]), report)
    draw_rewards(fig.add_subplot(grid[1, 2]), report)
    draw_calibration(fig.add_subplot(grid[2, 0:2]), report)
    draw_flags(fig.add_subplot(grid[2, 2]), report)
    return fig
