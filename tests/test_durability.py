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
