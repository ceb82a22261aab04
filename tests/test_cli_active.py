"""`rlhf-studio queue / review / quality` over a real project (a subprocess, as a user runs them)."""

from __future__ import annotations

from core.project import Project
from tests.test_active import add_uncertain, build
from tests.test_cli import cli


def test_queue_review_quality_commands(tmp_path):
    import tests.test_active as A

    proj, judged, open_ = build(tmp_path, n_open=5)
    uncertain, _ = add_uncertain(proj)
    slip_pid, rids = judged[2]
    slip = proj.record_ranking(slip_pid, [[rids[0]], [rids[1]], [rids[2]], [rids[3]]])
    dup = proj.add_response(open_[0][0], proj.response(open_[0][1][1]).text.upper())
    path = proj.path
    proj.close()
    pw = A.PASSPHRASE

    out = cli("queue", path, passphrase=pw)
    assert out.returncode == 0 and "queue order: project" in out.stdout, out.stderr
    out = cli("queue", path, "--order", "informative", "--show", "3", passphrase=pw)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "queue order: informative" in lines[0] and f"  {uncertain}:" in out.stdout
    assert lines[lines.index("next prompts (id: bits a judgment would teach):") + 1].startswith(f"  {uncertain}:")
    assert "Customer question" not in out.stdout + out.stderr  # ids and numbers only
    bad = cli("queue", path, "--order", "random", passphrase=pw)
    assert bad.returncode == 2

    out = cli("review", path, "--limit", "3", passphrase=pw)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[1].split()
    assert int(first[0]) == slip and int(first[1]) == slip_pid
    assert "This reply" not in out.stdout

    out = cli("quality", path, passphrase=pw)
    assert out.returncode == 0 and "1 duplicate" in out.stdout, out.stdout + out.stderr
    with Project.open(path, pw) as again:
        assert again.get_setting("annotation.queue_order") == "informative" and dup
