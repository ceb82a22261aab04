"""Acknowledged judgments survive SIGKILL at random moments; the database stays intact."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from core.project import Project

REPO = Path(__file__).resolve().parents[1]
KILLS = 20

CHILD = textwrap.dedent("""
    import random, sys
    from core.project import Project
    proj = Project.open(sys.argv[1], "pw")
    rng = random.Random(int(sys.argv[2]))
    prompts = proj.prompt_ids()
    responses = {p: [r.id for r in proj.responses(p)] for p in prompts}
    while True:
        pid = rng.choice(prompts)
        order = responses[pid][:]
        rng.shuffle(order)
        tiers = [[r] for r in order]
        jid = proj.record_ranking(pid, tiers, comment="c" * rng.randint(0, 2000))
        # Acknowledge only after record_ranking returned, i.e. after the commit.
        sys.stdout.write(f"{jid} {pid} {','.join(map(str, order))}\\n")
        sys.stdout.flush()
""")


def test_acknowledged_judgments_survive_sigkill(tmp_path):
    with Project.create(tmp_path / "d", "pw") as proj:
        for i in range(30):
            pid = proj.add_prompt(f"prompt {i}")
            for k in range(4):
                proj.add_response(pid, f"response {i}.{k}")
    folder = tmp_path / "d.rlhfproj"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(1234)
    acked: dict[int, tuple[int, list[int]]] = {}
    for round_ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(folder), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        first = child.stdout.readline()  # wait until it is writing
        assert first, child.stderr.read()
        lines = [first]
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        lines += child.stdout.read().splitlines(keepends=True)
        for line in lines:
            if not line.endswith("\n"):  # a partial line was never acknowledged
                continue
            jid, pid, order = line.split()
            acked[int(jid)] = (int(pid), [int(r) for r in order.split(",")])
    assert len(acked) >= KILLS
    con = sqlite3.connect(folder / "project.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Project.open(folder, "pw") as proj:
        for jid, (pid, order) in acked.items():
            j = proj.judgment(jid)
            assert j.prompt_id == pid and j.tiers == [[r] for r in order]
        assert proj.verify_audit() == []


CLOSE_RACE = textwrap.dedent("""
    import random, sys, threading, time
    from core.errors import UserError
    from core.project import Project
    folder, trials = sys.argv[1], int(sys.argv[2])
    rng = random.Random(0)
    for trial in range(trials):
        proj = Project.open(folder, "pw")
        pids = proj.prompt_ids()
        ends = []

        def read():
            try:
                while True:
                    proj.prompts()
                    for pid in pids:
                        proj.responses(pid)
            except UserError as exc:
                ends.append(str(exc))

        def write():
            try:
                while True:
                    with proj.transaction():  # a prompt and its two replies, or nothing
                        pid = proj.add_prompt(f"added {trial}")
                        proj.add_response(pid, "first")
                        proj.add_response(pid, "second")
            except UserError as exc:
                ends.append(str(exc))

        threads = [threading.Thread(target=f) for f in (read, read, write)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.01, 0.1))
        proj.close()  # while the three are inside queries and transactions
        for t in threads:
            t.join()
        assert len(ends) == 3 and all("closed" in e for e in ends), ends
    print("ok")
""")


def test_closing_while_other_threads_read_and_write(tmp_path):
    """A job on a worker thread may still be inside a query when the window closes or locks the project
    (the Annotate page's model check did, and the whole process died in the sqlite3 module). Closing is
    safe: each thread is told the project is closed, a write it had begun rolls back whole, and the
    project reopens intact."""
    folder = tmp_path / "p.rlhfproj"
    with Project.create(folder, "pw") as proj, proj.transaction():
        for i in range(30):
            pid = proj.add_prompt(f"request {i} " * 20)
            for r in range(4):
                proj.add_response(pid, f"reply {r} " * 40)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONFAULTHANDLER="1")
    child = subprocess.run(
        [sys.executable, "-c", CLOSE_RACE, str(folder), "20"], env=env, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0 and child.stdout.strip() == "ok", (child.returncode, child.stderr[-3000:])
    with Project.open(folder, "pw") as proj:
        assert proj.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for pid in proj.prompt_ids():
            n = len(proj.responses(pid))
            assert n == (4 if pid <= 30 else 2), (pid, n)  # every added prompt has both its replies
