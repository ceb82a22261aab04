"""The reliability battery at full strength, printing every figure recorded in docs/security.md
("Reliability battery"): SIGKILLs across every kind of write, generated malformed imports, edge inputs
with their peak memory and time, disk full and read-only disks, the whole workflow under a canary and a
socket guard, and the wrong-passphrase time.

    .venv/bin/python bench/reliability.py [--kills 200] [--files 1000] [--skip-workflow]

Exit status 1 when any check fails (the figure that failed is printed). `make reliability` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import reliability_harness as H  # noqa: E402


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def show(fig: dict, skip=("failures",)) -> None:
    for k, v in fig.items():
        if k not in skip:
            print(f"  {k}: {v}", flush=True)


def wrong_passphrase_seconds(work: Path, repeats: int = 5) -> dict:
    from core.errors import WrongPassphrase
    from core.project import Project

    Project.create(work / "wp", "right").close()
    wrong, right = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        try:
            Project.open(work / "wp.rlhfproj", "wrong")
        except WrongPassphrase:
            pass
        wrong.append(time.perf_counter() - t)
        t = time.perf_counter()
        Project.open(work / "wp.rlhfproj", "right").close()
        right.append(time.perf_counter() - t)
    return {"wrong_passphrase_s_max": round(max(wrong), 3), "right_passphrase_open_s_max": round(max(right), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--skip-workflow", action="store_true", help="leave out the whole-workflow canary run")
    args = ap.parse_args()
    figures, failed = {}, []
    with tempfile.TemporaryDirectory(prefix="rlhf-reliability-") as tmp:
        work = Path(tmp)
        steps = [
            ("sigkill", lambda: H.kill_battery(work / "kills", kills=args.kills, seed=int(time.time()) % 10_000)),
            ("malformed_imports", lambda: H.fuzz_imports(work / "fuzz", examples=args.files)),
            *[(f"edge_{k}", (lambda k=k: H.edge_case_measured(k, work / "edges"))) for k in H.EDGE_EXPECT],
            ("disk_full", lambda: H.disk_full_battery(work / "disk")),
            ("read_only", lambda: H.read_only_battery(work / "ro")),
            ("wrong_passphrase", lambda: wrong_passphrase_seconds(work)),
        ]
        if not args.skip_workflow:
            steps.append(("workflow_canary_and_socket_guard", lambda: H.workflow_canary(work / "workflow")))
        for name, step in steps:
            section(name)
            t = time.monotonic()
            try:
                fig = step()
            except Exception as exc:  # noqa: BLE001 - a failed check is reported, then the rest still run
                failed.append(name)
                fig = {"FAILED": f"{type(exc).__name__}: {exc}"[:2000]}
                traceback.print_exc()
            fig.setdefault("seconds", round(time.monotonic() - t, 1))
            figures[name] = fig
            show(fig)
    section("summary")
    edges = {k[5:]: v for k, v in figures.items() if k.startswith("edge_")}
    kills = figures.get("sigkill", {})
    fuzz = figures.get("malformed_imports", {})
    print(
        f"  SIGKILLs: {kills.get('kills')} (judge/import/passwd/backup/checkpoint "
        f"{'/'.join(str(kills.get('kills_' + op)) for op in H.KILL_OPS)}); integrity failures "
        f"{kills.get('integrity_failures')}; partial imports {kills.get('partial_imports')}; passwd kills opened "
        f"with old {kills.get('passwd_opened_old')}, new {kills.get('passwd_opened_new')}, neither "
        f"{kills.get('passwd_opened_neither')}; acknowledged judgments checked {kills.get('acknowledged_judgments')}"
    )
    print(
        f"  malformed files: {fuzz.get('files')}, tracebacks {fuzz.get('tracebacks')}, partial writes "
        f"{fuzz.get('partial_writes')}, messages without file:line {fuzz.get('messages_without_file_and_line')}"
    )
    for k, v in edges.items():
        print(
            f"  {k}: {v.get('outcome')}, {v.get('file_mb')} MB, import {v.get('seconds')} s, process "
            f"{v.get('wall_seconds')} s, peak RSS {v.get('peak_rss_mb')} MB"
        )
    print(json.dumps({"failed": failed, "figures": figures}, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
