"""The CLI over a real project, as a user runs it (a subprocess, passphrase from the environment)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli(*args, passphrase="pw", cwd=None, extra_env=None):
    env = {**os.environ, "RLHF_STUDIO_PASSPHRASE": passphrase, "PYTHONPATH": str(REPO), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_init_import_info_export_passwd_backup_audit(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"prompt": "q1", "responses": ["a", "b", "c"], "ranking": [[1], [0, 2]]},
                {"prompt": "q2", "chosen": "yes", "rejected": "no"},
                {"prompt": "q3"},
            ]
        )
    )
    proj = tmp_path / "demo.rlhfproj"
    assert cli("init", proj).returncode == 0
    out = cli("import", proj, data)
    assert out.returncode == 0 and "3 new prompts" in out.stdout, out.stderr
    info = cli("info", proj).stdout
    assert "prompts          3" in info and "ranked prompts   1" in info and "pairs            3" in info
    refused = cli("export", proj, tmp_path / "pairs.jsonl")
    assert refused.returncode == 2 and "--plaintext" in refused.stderr
    assert not (tmp_path / "pairs.jsonl").exists()
    assert cli("export", proj, tmp_path / "pairs.jsonl", "--plaintext").returncode == 0
    assert len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 3
    pw_file = tmp_path / "new.txt"
    pw_file.write_text("second passphrase\n")
    assert cli("passwd", proj, "--new-passphrase-file", pw_file).returncode == 0
    wrong = cli("info", proj)
    assert wrong.returncode == 2 and "Wrong passphrase" in wrong.stderr
    assert cli("backup", proj, tmp_path / "copy", passphrase="second passphrase").returncode == 0
    audit = cli("audit", tmp_path / "copy.rlhfproj", passphrase="second passphrase")
    assert audit.returncode == 0 and "passphrase_changed" in audit.stdout and "intact" in audit.stdout


def test_bad_import_reports_line_and_changes_nothing(tmp_path):
    proj = tmp_path / "p.rlhfproj"
    cli("init", proj)
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,chosen\nq,a\n")
    out = cli("import", proj, bad)
    assert out.returncode == 2 and "bad.csv:1: missing column 'rejected'" in out.stderr
    assert "prompts          0" in cli("info", proj).stdout
