"""Data page on a large project, through the real widgets offscreen.

    python bench/data_page.py                 # 100,000 prompts x 4 candidates
    python bench/data_page.py --prompts 20000
    python bench/data_page.py --prompts 20000 --varied   # candidates of different lengths

Prints: project build time (not a GUI figure), data page open time (set_project -> every row in the
model, the status query running on the worker), scroll-to-end time (scrollToBottom + a synchronous
repaint, decrypting only the visible rows), the background quality scan that follows the open (duplicates
and degenerate replies over every candidate), random jumps, a status filter on the GUI thread, and a
search over decrypted text (cold, then warm cache) on the worker. --device is accepted for symmetry
with the other benches; nothing here uses a GPU.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASSPHRASE = "bench passphrase"


def build(folder: Path, n: int, k: int, ranked_share: float, varied: bool = False):
    from core.project import Project

    proj = Project.create(folder / "big", PASSPHRASE)
    batch = 10_000
    for start in range(0, n, batch):
        items = [
            (
                f"Customer request {i}: my order {i * 7919 % 100000} has not arrived, what now?",
                None,
                "heldout" if i % 10 == 9 else "train",
                [
                    f"Reply {r} to request {i}: " + "it ships within 3 business days. " * ((r + 1) if varied else 1)
                    for r in range(k)
                ],
            )
            for i in range(start, min(n, start + batch))
        ]
        proj.add_many(items)
    ids = proj.prompt_ids()
    rng = random.Random(0)
    for pid in rng.sample(ids, int(len(ids) * ranked_share)):
        rids = [r.id for r in proj.responses(pid)]
        proj.record_ranking(pid, [[r] for r in rids])
    return proj


def wait(app, until, timeout=600.0) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("bench step did not finish")
        loop = QEventLoop()
        QTimer.singleShot(1, loop.quit)
        loop.exec()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--ranked-share", type=float, default=0.01)
    ap.add_argument(
        "--varied", action="store_true", help="candidates of different lengths (1-4 sentences), not near-copies"
    )
    ap.add_argument("--project", help="reuse a project this bench built before (passphrase as in the bench)")
    ap.add_argument("--device", default="cpu", help="unused (no GPU work here)")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QSettings

    from desktop.app import make_app
    from desktop.context import AppContext
    from desktop.pages.data import DataPage

    app = make_app()
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-bench-data-"))
    t = time.perf_counter()
    if args.project:
        from core.project import Project

        proj = Project.open(args.project, PASSPHRASE)
        args.prompts = len(proj.prompt_ids())
        print(f"opened project: {args.prompts:,} prompts in {time.perf_counter() - t:.1f} s (key derivation included)")
    else:
        proj = build(tmp, args.prompts, args.k, args.ranked_share, args.varied)
        print(f"built project: {args.prompts:,} prompts x {args.k} candidates in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    rows = proj.prompt_status()
    print(
        f"status rows alone (Project.prompt_status): {1000 * (time.perf_counter() - t):.0f} ms for {len(rows):,} rows"
    )

    ctx = AppContext(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    page = DataPage(ctx)
    page.resize(1280, 800)
    page.show()
    wait(app, lambda: True)

    t = time.perf_counter()
    page.set_project(proj)
    wait(app, lambda: page.model.rowCount() == args.prompts)
    page.table.viewport().repaint()
    open_ms = 1000 * (time.perf_counter() - t)
    print(f"data page open: {open_ms:.0f} ms (set_project -> {args.prompts:,} rows, first screen painted)")

    scan = page._quality_handle  # started once the rows arrived: the quality scan, on a worker
    t = time.perf_counter()
    wait(app, lambda: scan is None or not scan.running, timeout=3600.0)
    print(f"quality scan (background, after open): {time.perf_counter() - t:.1f} s -> {page.quality_label.text()}")

    decrypted = page.model.decrypted
    t = time.perf_counter()
    page.table.scrollToBottom()
    page.table.viewport().repaint()
    end_ms = 1000 * (time.perf_counter() - t)
    print(f"scroll to end: {end_ms:.1f} ms ({page.model.decrypted - decrypted} prompts decrypted for the screen)")

    rng = random.Random(1)
    jumps = []
    for _ in range(30):
        row = rng.randrange(args.prompts)
        t = time.perf_counter()
        page.table.scrollTo(page.model.index(row, 0))
        page.table.viewport().repaint()
        jumps.append(1000 * (time.perf_counter() - t))
    jumps.sort()
    print(
        f"random jump + repaint: p50 {statistics.median(jumps):.1f} ms, p95 {jumps[int(0.95 * len(jumps)) - 1]:.1f} ms"
    )

    t = time.perf_counter()
    page.status_filter.setCurrentText("ranked")
    page.table.viewport().repaint()
    ms = 1000 * (time.perf_counter() - t)
    print(f"status filter 'ranked' (GUI thread): {ms:.1f} ms -> {page.model.rowCount():,} rows")
    page.status_filter.setCurrentText("All statuses")

    for label in ("cold", "warm"):
        page.search.setText("order 4242")
        t = time.perf_counter()
        page.run_search()
        handle = page._search_handle
        wait(app, lambda: not handle.running)
        print(
            f"search ({label} cache, on the worker): {time.perf_counter() - t:.2f} s -> {page.model.rowCount():,} rows"
        )

    page.set_project(None)
    proj.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
