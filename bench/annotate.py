"""Annotation latency: time from submit to the next item shown, through the real Annotate page
(offscreen), on a 100,000-prompt project.

    QT_QPA_PLATFORM=offscreen python bench/annotate.py                  # 100,000 prompts x 4 responses
    QT_QPA_PLATFORM=offscreen python bench/annotate.py --prompts 20000  # quicker

Builds the project with the store API in one transaction (a share of the prompts already ranked, so
the judgments table is realistic), opens the page at 1280x800, then for each item places the
candidates with number keys (not timed) and times Enter -> the session records and commits the
judgment -> the next item is loaded, decrypted and put in the widgets -> the page is repainted.
Pairwise (one key) and rating (Enter after 1-7 keys) are timed the same way. Prints p50/p95/max in ms
for each mode, and the share of that spent in the committed write. Target: p95 < 30 ms.
`--order informative` times the same with the informative queue: the page's background refresh
(core.active.refresh_queue on a worker) computes the first order as the page opens and again every
10 submits, competing for the CPU while the submits are timed. Before each item's keys the bench
waits `--read-ms` (500 ms by default there) with the event loop running, as a person reads, and
`--key-gap-ms` (60) between an item's keys, as a fast typist: the refresh steps aside from the first key
until the keys pause (core.jobs.UserActivity) and works in the reading time.
GPU: not used (a GUI bench); `--device` is accepted for symmetry with the other benches and ignored.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QObject, Qt  # noqa: E402
from PySide6.QtGui import QKeyEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.project import Project  # noqa: E402

PASSPHRASE = "bench passphrase"
WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
    "tau upsilon phi chi psi omega"
).split()


def text(i: int, n_words: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n_words)) + f" #{i}"


def build_project(folder: Path, n: int, k: int, ranked_share: float) -> Path:
    t0 = time.perf_counter()
    proj = Project.create(folder / "bench", PASSPHRASE)
    try:
        n_ranked = int(n * ranked_share)
        with proj.transaction():
            for i in range(n):
                pid = proj.add_prompt(f"## Prompt {i}\n\n{text(i, 40)}\n\n```python\nprint({i})\n```")
                rids = [
                    proj.add_response(
                        pid,
                        f"Response {r}: {text(i * k + r, 60 + 40 * r)}",
                        origin={"kind": "model", "model": f"/models/m{r % 2}"},
                    )
                    for r in range(k)
                ]
                # rank some items spread over the project, so the queue skips over judged ones
                if n_ranked and i % max(1, round(1 / ranked_share)) == 1:
                    proj.record_ranking(pid, [[r] for r in rids])
        print(f"built {n:,} prompts x {k} responses in {time.perf_counter() - t0:.1f} s")
        return proj.path
    finally:
        proj.close()


def key(page, qt_key, text: str = "", mods=Qt.KeyboardModifier.NoModifier) -> None:
    # through the application, as a real key press travels (its event filters see it too)
    QApplication.sendEvent(page, QKeyEvent(QEvent.Type.KeyPress, qt_key, mods, text))


def read(app, seconds: float) -> None:
    """The expert reading the next item: the event loop runs (background jobs get their turn)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=4, help="responses per prompt")
    ap.add_argument("--submits", type=int, default=200, help="timed submits per mode")
    ap.add_argument("--ranked-share", type=float, default=0.2, help="share of prompts ranked beforehand")
    ap.add_argument("--folder", type=Path, default=None, help="reuse/keep the project here")
    ap.add_argument(
        "--analyze",
        action="store_true",
        help="run SQLite ANALYZE on the project first: with planner statistics the store's "
        "judgment lookups use the (prompt_id, status) index instead of scanning",
    )
    ap.add_argument(
        "--order",
        choices=("project", "informative"),
        default="project",
        help="queue order; informative: the page's background refresh (core.active.refresh_queue) "
        "runs as in the app, at opening and every 10 submits, while the submits are timed",
    )
    ap.add_argument(
        "--read-ms",
        type=float,
        default=None,
        help="pause before each item's keys, as the expert reads it (default: 500 with --order informative, "
        "so the background refresh runs between submits, as it does while a person reads; 0 otherwise)",
    )
    ap.add_argument(
        "--key-gap-ms",
        type=float,
        default=None,
        help="pause between an item's keys, the event loop running (default: 60 with --order informative, a "
        "fast typist; 0 otherwise)",
    )
    ap.add_argument("--device", default="cpu", help="ignored (GUI bench)")
    args = ap.parse_args()

    app = QApplication.instance() or QApplication([])
    from desktop.pages.annotate import AnnotatePage
    from desktop.theme import apply_theme

    apply_theme(app)
    tmp = tempfile.TemporaryDirectory()
    folder = args.folder or Path(tmp.name)
    path = folder / "bench.rlhfproj"
    if not path.exists():
        build_project(folder, args.prompts, args.k, args.ranked_share)

    t0 = time.perf_counter()
    proj = Project.open(path, PASSPHRASE)
    t_open = time.perf_counter() - t0
    if args.analyze:
        proj.db.execute("ANALYZE")
    from core.annotation import ORDER_SETTING

    proj.set_setting(ORDER_SETTING, args.order)
    page = AnnotatePage()
    page.resize(1280, 800)
    page.show()
    t0 = time.perf_counter()
    page.set_project(proj)
    app.processEvents()
    t_first = time.perf_counter() - t0
    print(f"project open (KDF included) {t_open * 1000:.0f} ms; page set_project -> first item {t_first * 1000:.0f} ms")
    print(f"progress: {page.progress_label.text()}")
    refreshes: list = []
    if args.order == "informative":  # the first order, computed in the background as the page opened
        t0 = time.perf_counter()
        while page.assist.handle("refresh") is None or page.assist.handle("refresh").running:
            app.processEvents()
            time.sleep(0.005)
        order = page.assist.handle("refresh").result
        print(
            f"first informative order in the background: {time.perf_counter() - t0:.1f} s after the first item "
            f"was shown ({order.text() if order else 'failed'})"
        )
        assert page.session.informative, "the informative order did not arrive"

    # time the committed write inside each submit, to show where the time goes
    write_times: list[float] = []
    for name in ("record_ranking", "record_pairwise", "record_ratings"):
        orig = getattr(proj, name)

        def timed(*a, _orig=orig, **kw):
            t = time.perf_counter()
            try:
                return _orig(*a, **kw)
            finally:
                write_times.append(time.perf_counter() - t)

        setattr(proj, name, timed)

    # count paints of the prompt view: the new item is "shown" once it has been painted
    class PaintCounter(QObject):
        count = 0

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                PaintCounter.count += 1
            return False

    painted = PaintCounter()
    page.prompt_view.viewport().installEventFilter(painted)

    informative = args.order == "informative"
    read_s = (args.read_ms if args.read_ms is not None else (500.0 if informative else 0.0)) / 1000
    gap_s = (args.key_gap_ms if args.key_gap_ms is not None else (60.0 if informative else 0.0)) / 1000
    results = {}
    seen_handles = set()
    for mode in ("ranking", "pairwise", "rating"):
        page.set_mode(mode)
        app.processEvents()
        times, writes, cpus = [], [], []
        for i in range(args.submits + 5):
            before = page.item.prompt_id
            read(app, read_s)
            if mode == "ranking":  # place all but the last, Enter places it
                for d in range(args.k - 1):
                    key(page, Qt.Key.Key_1 + d, str(d + 1))
                    read(app, gap_s)
            elif mode == "rating":
                for d in range(args.k):
                    key(page, Qt.Key.Key_1 + (d % 7), str(d % 7 + 1))
                    read(app, gap_s)
            app.processEvents()
            n_writes = len(write_times)
            n_paints = painted.count
            t, c = time.perf_counter(), time.thread_time()
            if mode == "pairwise":
                key(page, Qt.Key.Key_A, "a")
            else:
                key(page, Qt.Key.Key_Return, "\r")
            app.processEvents()  # layout and paint, as the event loop would before the screen shows it
            elapsed, cpu = time.perf_counter() - t, time.thread_time() - c
            assert painted.count > n_paints, "the next item was not painted"
            assert len(write_times) == n_writes + 1, "the submit did not record a judgment"
            assert page.item is not None and (page.item.prompt_id != before or page.item.purpose == "consistency")
            h = page.assist.handle("refresh")
            if args.order == "informative" and h is not None and id(h) not in seen_handles:
                seen_handles.add(id(h))
                refreshes.append(h)
            if i >= 5:  # warm-up
                times.append(elapsed * 1000)
                writes.append(write_times[-1] * 1000)
                cpus.append(cpu * 1000)
        results[mode] = (times, writes, cpus)

    total = page.session.progress.total
    print(
        f"\nsubmit -> next item shown, {total:,} prompts, {args.submits} submits per mode, queue order "
        f"{args.order}, page 1280x800 offscreen (ms; wall clock, and the GUI thread's CPU time):"
    )
    if args.order == "informative":
        done = [h for h in refreshes if not h.running and h.result is not None]
        print(
            f"background refreshes started during the timed submits: {len(refreshes)} "
            f"({len(done)} finished; mean {statistics.mean(h.result.seconds for h in done) if done else 0:.1f} s "
            f"each, pool {done[-1].result.pool if done else 0:,} prompts); the session stayed in informative "
            f"order: {page.session.informative}"
        )
    print(
        f"{'mode':10s} {'p50':>7s} {'p95':>7s} {'max':>7s}   {'write p50':>9s} {'write p95':>9s}"
        f"   {'CPU p50':>7s} {'CPU p95':>7s}"
    )
    worst = 0.0
    for mode, (times, writes, cpus) in results.items():
        p95 = pct(times, 0.95)
        worst = max(worst, p95)
        print(
            f"{mode:10s} {statistics.median(times):7.1f} {p95:7.1f} {max(times):7.1f}   "
            f"{statistics.median(writes):9.1f} {pct(writes, 0.95):9.1f}   "
            f"{statistics.median(cpus):7.1f} {pct(cpus, 0.95):7.1f}"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\ntarget p95 < 30 ms: {'met' if worst < 30 else 'NOT met'} (worst p95 {worst:.1f} ms; "
        f"{os.cpu_count()} CPUs, load average {load:.1f} during the run; 'write' is the committed, "
        f"fsynced record_* call)"
    )
    print(f"progress after: {page.progress_label.text()}")
    page.set_project(None)
    if page.assist._own_runner is not None:  # a cancelled refresh stops at its next step
        page.assist._own_runner.wait(60_000)
    page.close()
    proj.close()
    # The Data page's figures on the same project (its own process: a fresh QApplication and caches).
    print("\nData page on the same project (bench/data_page.py):", flush=True)
    import subprocess

    subprocess.run([sys.executable, str(Path(__file__).with_name("data_page.py")), "--project", str(path)], check=False)
    tmp.cleanup()


if __name__ == "__main__":
    main()
