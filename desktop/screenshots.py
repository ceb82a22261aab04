"""Render the real widgets offscreen at 1280×800 into PNGs: `python -m desktop.screenshots docs/screenshots`.

Builds a throwaway encrypted project in a temporary folder (support requests with four candidate
replies each, a few already judged), with its own QSettings file, so nothing of the user's is read or
touched. The Train, Evaluate and Models pages are shown before any run (their empty states); the
trained states come from `--training` (desktop.training_screens) and bench/eval_loop.py. Dialogs are drawn
over the window they belong to, as a user would see them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZE = (1280, 800)
PASSPHRASE = "screenshot passphrase"


def build_project(folder: Path, n: int = 60):
    """A project of support requests with 6 replies each (the default K); some ranked, one skipped, one flagged."""
    from core.demo.corpus import TOPICS, make_reply, make_request
    from core.project import Project

    rng = random.Random(7)
    proj = Project.create(folder / "support-replies", PASSPHRASE)
    styles = [
        ("polite", "helpful", "medium"),
        ("neutral", "vague", "short"),
        ("polite", "inaccurate", "medium"),
        ("rude", "helpful", "short"),
        ("neutral", "helpful", "long"),
        ("polite", "off_topic", "medium"),
    ]
    pids = []
    with proj.transaction():
        for i in range(n):
            topic, request, slots = make_request(rng, TOPICS[i % len(TOPICS)])
            pid = proj.add_prompt(request, split="heldout" if i % 5 == 4 else "train")
            for tone, kind, length in styles:
                proj.add_response(
                    pid,
                    make_reply(rng, topic, slots, tone, kind, length),
                    origin={"kind": "model", "model": "demo", "settings": {"temperature": 1.0}},
                )
            pids.append(pid)
        proj.set_setting(
            "guidelines",
            "Rank the replies best first. A good reply answers the actual request, "
            "states our policies correctly and stays polite.",
        )
    for pid in pids[:7]:
        r = [x.id for x in proj.responses(pid)]
        proj.record_ranking(pid, [[r[0]], [r[4]], [r[2], r[1]], [r[3]], [r[5]]], seconds=4.2)
    r = [x.id for x in proj.responses(pids[7])]
    proj.record_ranking(pids[7], [[r[0]], [r[4]], [r[1], r[2]], [r[3]], [r[5]]], flags=("toxic",), seconds=6.0)
    proj.record_skip(pids[8])
    return proj


def build_queue_project(folder: Path, n: int = 120, ranked: int = 48):
    """Support requests with 4 replies each, `ranked` of them ranked by a fixed style rule (helpful and
    polite first, rude last: how the replies were written, not a simulated expert), one ranked upside
    down (a slip for the review list), one reply looping. For the informative queue's screens."""
    from core.demo.corpus import TOPICS, make_reply, make_request
    from core.project import Project

    rng = random.Random(11)
    proj = Project.create(folder / "support-queue", PASSPHRASE)
    styles = [
        ("polite", "helpful", "medium"),
        ("neutral", "vague", "short"),
        ("polite", "inaccurate", "medium"),
        ("rude", "off_topic", "short"),
    ]
    pids = []
    with proj.transaction():
        for i in range(n):
            topic, request, slots = make_request(rng, TOPICS[i % len(TOPICS)])
            pid = proj.add_prompt(request, split="heldout" if i % 5 == 4 else "train")
            if proj.count_responses(pid):
                continue  # the same request drawn twice
            for tone, kind, length in styles:
                proj.add_response(
                    pid,
                    make_reply(rng, topic, slots, tone, kind, length),
                    origin={"kind": "model", "model": "demo", "settings": {"temperature": 1.0}},
                )
            pids.append(pid)
        proj.add_response(
            pids[-1],
            "Thank you for your patience. " * 9,
            origin={"kind": "model", "model": "demo", "settings": {"temperature": 1.6}},
        )
    train = [p for p in pids if proj.prompt(p).split == "train"]
    for k, pid in enumerate(train[:ranked]):
        r = [x.id for x in proj.responses(pid)]
        tiers = [[r[0]], [r[1]], [r[2]], [r[3]]] if k != 7 else [[r[3]], [r[2]], [r[1]], [r[0]]]
        proj.record_ranking(pid, tiers, seconds=5.0)
    return proj


def write_import_file(folder: Path) -> Path:
    """A small JSONL file of ranked candidates with two mistakes, for the import preview."""
    from core.demo.corpus import examples

    rows = []
    ex = list(examples(48, seed=11))
    for i in range(12):
        group = ex[i * 4 : (i + 1) * 4]
        rows.append(
            json.dumps(
                {
                    "prompt": group[0].request,
                    "responses": [g.reply for g in group],
                    "ranking": [[0], [2, 1], [3]] if i % 3 else [0, 1, 2, 3],
                }
            )
        )
    rows[5] = json.dumps({"prompt": ex[20].request, "responses": [ex[20].reply, ex[21].reply], "ranking": [0, 2]})
    rows[9] = '{"prompt": "Where is my order?", "responses": ["It ships today."], '  # cut-off line
    path = folder / "support-rankings.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _wait(app, seconds: float = 0.15, until=None, timeout: float = 20.0) -> None:
    """Run the event loop for a moment (or until `until()` is true) so jobs and paints land."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout
    t_end = time.monotonic() + seconds
    while True:
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()
        now = time.monotonic()
        if until is not None:
            if until() or now > deadline:
                return
        elif now >= t_end:
            return


def _with_dialog(window, dialog):
    """The window's picture with `dialog` drawn centred over it, the way it shows on screen."""
    from PySide6.QtGui import QColor, QPainter

    base = window.grab()
    top = dialog.grab()
    painter = QPainter(base)
    painter.fillRect(base.rect(), QColor(0, 0, 0, 60))  # modal dimming, so the dialog stands out
    x = (base.width() - top.width()) // 2
    y = (base.height() - top.height()) // 2
    painter.fillRect(x - 1, y - 1, top.width() + 2, top.height() + 2, QColor(80, 80, 80))
    painter.drawPixmap(x, y, top)
    painter.end()
    return base


def render_all(out_dir: str | Path) -> list[Path]:
    from PySide6.QtCore import QSettings

    from desktop.app import make_app
    from desktop.context import AppContext
    from desktop.main_window import MainWindow
    from desktop.pages.annotate import render_annotate_screens

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = make_app()
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-shots-"))
    written: list[Path] = []

    def save(pixmap, name: str) -> None:
        path = out / name
        pixmap.save(str(path))
        written.append(path)

    proj = build_project(tmp)
    project_path = proj.path
    import_path = write_import_file(tmp)

    # annotate + pairwise: the annotate page's own renderer, on this project
    written += render_annotate_screens(out, proj, size=SIZE)
    proj.close()
    from desktop.pages.annotate_assist import render_queue_screens

    queue_proj = build_queue_project(tmp)
    written += render_queue_screens(out, queue_proj, size=SIZE)
    queue_proj.close()

    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    ctx = AppContext(settings)
    ctx.add_recent(tmp / "case-notes.rlhfproj")  # a project that was moved away: shown as missing
    ctx.add_recent(project_path)
    window = MainWindow(ctx)
    window.resize(*SIZE)
    window.show()
    _wait(app, until=lambda: not ctx.runner.active)
    _wait(app, 0.3)  # let the status bar lay out the device name
    save(window.grab(), "start.png")

    wizard = window.new_project()
    wizard.resize(620, 430)
    wizard.name_page.name.setText("case-review")
    wizard.name_page.folder.setText(str(Path.home() / "Documents"))
    wizard.next()
    wizard.pass_page.first.setText("tidal-quartz-lantern-meadow")
    wizard.pass_page.second.setText("tidal-quartz-lantern-meadow")
    _wait(app)
    save(_with_dialog(window, wizard), "new_project.png")
    wizard.reject()

    dialog = window.open_path(project_path)
    _wait(app, until=lambda: dialog.isVisible())
    dialog.passphrase.setText("wrong guess")
    dialog.unlock()
    _wait(app, until=lambda: dialog.error.isVisible())
    _wait(app)
    save(_with_dialog(window, dialog), "unlock.png")
    dialog.passphrase.setText(PASSPHRASE)
    dialog.unlock()
    _wait(app, until=lambda: ctx.project is not None)

    data = window.page("Data")
    window.show_page("Data")
    _wait(app, until=lambda: data.model.rowCount() > 0)
    data.select_prompt(ctx.project.prompt_ids()[2])
    _wait(app, until=lambda: not ctx.runner.active)  # other pages' loading jobs, shown in the status bar
    _wait(app)
    save(window.grab(), "data.png")

    imp = data.open_import_dialog(str(import_path))
    _wait(app, until=lambda: imp.preview_result is not None or imp.errors.count() > 0)
    _wait(app)
    save(_with_dialog(window, imp), "import_preview.png")
    imp.reject()

    window.show_page("Activity")
    act = window.page("Activity")
    _wait(app, until=lambda: bool(act.entries) and not ctx.runner.active)
    _wait(app)
    save(window.grab(), "activity.png")

    # before any run: every table and chart says what will appear there and how to start (issue 15)
    from core.demo.project import demo_model_dir
    from desktop.pages.models import register_model

    register_model(ctx.project, str(demo_model_dir()))
    ctx.notify_changed("models")
    for title, name in (
        ("Train", "train_empty.png"),
        ("Evaluate", "evaluate_empty.png"),
        ("Models", "models_empty.png"),
    ):
        window.show_page(title)
        _wait(app, until=lambda: not ctx.runner.active, timeout=120)
        _wait(app, 0.6)  # the charts' throttled redraw
        save(window.grab(), name)

    window.close()
    return written


def render_other_screens(out_dir: str | Path) -> list[Path]:
    """The other pages' own renderers (training trains for real: minutes on a CPU)."""
    written: list[Path] = []
    try:
        from desktop.training_screens import render_training_screens
    except ImportError:
        return written
    written += render_training_screens(out_dir)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render the app's screens offscreen at 1280x800 into PNGs.")
    ap.add_argument("out", nargs="?", default="docs/screenshots")
    ap.add_argument(
        "--training",
        action="store_true",
        help="also the Train/Models pages' screens (desktop.training_screens: they train for real, "
        "many minutes on a busy CPU)",
    )
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    for path in render_all(args.out):
        print(path)
    if args.training:
        for path in render_other_screens(args.out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
