"""Security properties of the project store, on real files."""

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import IntegrityError, ProjectLocked, UserError, WrongPassphrase
from core.project import Project

REPO = Path(__file__).resolve().parents[1]


def _tree_digest(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _find(data: bytes, canary: str) -> list[str]:
    hits = []
    for enc in ("utf-8", "utf-16-le", "utf-16-be"):
        if canary.encode(enc) in data:
            hits.append(enc)
    return hits


CANARY_WORKLOAD = textwrap.dedent("""
    import os, sys, json
    from pathlib import Path
    from core.project import Project
    canary, folder = sys.argv[1], Path(sys.argv[2])
    proj = Project.create(folder / "c", "correct horse")
    pid = proj.add_prompt("Question " + canary, reference="Gold " + canary)
    chat = proj.add_prompt([{"role": "user", "content": "chat " + canary}])
    rids = [proj.add_response(pid, f"answer {i} {canary}", origin={"kind": "model", "model": "/models/" + canary})
            for i in range(3)]
    proj.set_setting("tags", ["harmful", "tag-" + canary])
    proj.set_setting("guidelines", "Guideline " + canary)
    proj.record_ranking(pid, [[rids[0]], [rids[1], rids[2]]], flags=("tag-" + canary,), comment="comment " + canary)
    proj.record_pairwise(pid, rids[0], rids[1], "a", comment="why " + canary)
    run = proj.create_run("reward", {"base_model": "/models/" + canary})
    proj.update_run(run, status="failed", summary={"error": "error text " + canary})
    proj.log_samples(run, 1, [{"prompt": canary, "response": canary}])
    proj.save_artifact(run, "checkpoint", {"model.safetensors": ("weights " + canary).encode() * 100})
    proj.audit("trained", run=run)
    # While open, the WAL and shared-memory files exist: scan them now too.
    found = {}
    for p in folder.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for enc in ("utf-8", "utf-16-le", "utf-16-be"):
                if canary.encode(enc) in data:
                    found[str(p)] = enc
    assert (folder / "c.rlhfproj" / "project.db-wal").exists()
    # Reading back decrypts fine.
    assert canary in proj.prompt(pid).prompt and canary in proj.get_setting("guidelines")
    assert proj.judgments(prompt_id=pid)[0].comment.endswith(canary)
    proj.close()
    print(json.dumps(found))
""")


def test_canary_never_on_disk(tmp_path):
    canary = "CANARY" + secrets.token_hex(8)
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", CANARY_WORKLOAD, canary, str(work)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}, "canary found while the project was open"
    files = [p for root in (work, tmp) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "project.db" for p in files) and any(p.suffix == ".bin" for p in files)
    leaks = {str(p): _find(p.read_bytes(), canary) for p in files}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_wrong_passphrase_is_fast_and_changes_nothing(tmp_path, monkeypatch):
    """Bounded time, measured as work rather than seconds: a wrong passphrase costs exactly one key
    derivation and nothing else (the seconds that takes are printed by bench/reliability.py)."""
    from core.project import crypto

    proj = Project.create(tmp_path / "p", "right")
    proj.add_prompt("hello")
    proj.close()
    folder = tmp_path / "p.rlhfproj"
    before = _tree_digest(folder)
    derivations = []
    real = crypto.derive_kek
    monkeypatch.setattr(crypto, "derive_kek", lambda *a, **k: derivations.append(1) or real(*a, **k))
    start = time.monotonic()
    with pytest.raises(WrongPassphrase, match="Wrong passphrase"):
        Project.open(folder, "wrong")
    assert time.monotonic() - start < 120  # only catches a hang; the cost is the derivation count
    assert len(derivations) == 1
    assert _tree_digest(folder) == before


def _raw(folder: Path) -> sqlite3.Connection:
    return sqlite3.connect(folder / "project.db", isolation_level=None)


def test_flipped_byte_is_detected(tmp_path):
    with Project.create(tmp_path / "p", "pw") as proj:
        pid = proj.add_prompt("some prompt")
    folder = tmp_path / "p.rlhfproj"
    con = _raw(folder)
    blob = bytearray(con.execute("SELECT body FROM prompts WHERE id=?", (pid,)).fetchone()[0])
    blob[20] ^= 0x01
    con.execute("UPDATE prompts SET body=? WHERE id=?", (bytes(blob), pid))
    con.close()
    with Project.open(folder, "pw") as proj:
        with pytest.raises(IntegrityError, match=r"prompts\.body \(row 1\)"):
            proj.prompt(pid)


def test_ciphertext_swapped_between_rows_is_detected(tmp_path):
    with Project.create(tmp_path / "p", "pw") as proj:
        pid = proj.add_prompt("prompt")
        r1, r2 = proj.add_response(pid, "first"), proj.add_response(pid, "second")
    folder = tmp_path / "p.rlhfproj"
    con = _raw(folder)
    t1 = con.execute("SELECT text FROM responses WHERE id=?", (r1,)).fetchone()[0]
    t2 = con.execute("SELECT text FROM responses WHERE id=?", (r2,)).fetchone()[0]
    con.execute("UPDATE responses SET text=? WHERE id=?", (t2, r1))
    con.execute("UPDATE responses SET text=? WHERE id=?", (t1, r2))
    con.close()
    with Project.open(folder, "pw") as proj:
        with pytest.raises(IntegrityError, match="responses.text"):
            proj.responses(pid)


def test_ciphertext_moved_to_another_column_is_detected(tmp_path):
    with Project.create(tmp_path / "p", "pw") as proj:
        pid = proj.add_prompt("prompt", reference="gold")
    folder = tmp_path / "p.rlhfproj"
    con = _raw(folder)
    con.execute("UPDATE prompts SET reference=body WHERE id=?", (pid,))
    con.close()
    with Project.open(folder, "pw") as proj, pytest.raises(IntegrityError, match="prompts.reference"):
        proj.prompt(pid)


def test_truncated_and_reordered_artifacts_are_detected(tmp_path):
    with Project.create(tmp_path / "p", "pw") as proj:
        run = proj.create_run("reward", {})
        payload = {"weights": secrets.token_bytes(3 * 1024 * 1024 + 17)}
        proj.save_artifact(run, "ck", payload)
        assert proj.load_artifact(run, "ck") == payload
        (path,) = (tmp_path / "p.rlhfproj" / "artifacts").glob("*.bin")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(IntegrityError, match="truncated"):
            proj.load_artifact(run, "ck")
        path.write_bytes(data[:-1])
        with pytest.raises(IntegrityError):
            proj.load_artifact(run, "ck")
        # Cobblestone chunks are 16 KiB + tag; swapping two chunks must fail too.
        chunk = 16 * 1024 + 16
        head = 8 + 32  # our magic and the scheme's header region
        a, b = data[head : head + chunk], data[head + chunk : head + 2 * chunk]
        path.write_bytes(data[:head] + b + a + data[head + 2 * chunk :])
        with pytest.raises(IntegrityError):
            proj.load_artifact(run, "ck")
        path.write_bytes(data)
        assert proj.load_artifact(run, "ck") == payload


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("memory_kib", 1024, "below the minimum"),
        ("iterations", 1, "below the minimum"),
        ("iterations", 4, "Wrong passphrase|altered"),
        ("salt", "00" * 16, "Wrong passphrase|altered"),
    ],
)
def test_tampered_kdf_header_is_rejected(tmp_path, field, value, match):
    Project.create(tmp_path / "p", "pw").close()
    key = tmp_path / "p.rlhfproj" / "key.json"
    header = json.loads(key.read_text())
    header["kdf"][field] = value
    key.write_text(json.dumps(header))
    with pytest.raises(UserError, match=match):
        Project.open(tmp_path / "p.rlhfproj", "pw")


def test_format_version_downgrade_is_rejected(tmp_path):
    Project.create(tmp_path / "p", "pw").close()
    key = tmp_path / "p.rlhfproj" / "key.json"
    header = json.loads(key.read_text())
    header["format_version"] = 0
    key.write_text(json.dumps(header))
    with pytest.raises(IntegrityError, match="format version"):
        Project.open(tmp_path / "p.rlhfproj", "pw")


def _audited(tmp_path) -> Path:
    with Project.create(tmp_path / "p", "pw") as proj:
        for i in range(5):
            proj.audit("imported", records=i)
        assert proj.verify_audit() == []
    return tmp_path / "p.rlhfproj"


def test_audit_detects_deleted_entry(tmp_path):
    folder = _audited(tmp_path)
    _raw(folder).execute("DELETE FROM audit WHERE id=3")
    with Project.open(folder, "pw") as proj:
        assert any("entry 3 is missing" in p for p in proj.verify_audit())


def test_audit_detects_edited_entry(tmp_path):
    folder = _audited(tmp_path)
    _raw(folder).execute("UPDATE audit SET event='exported' WHERE id=2")
    with Project.open(folder, "pw") as proj:
        assert any("entry 2" in p and "altered" in p for p in proj.verify_audit())


def test_audit_detects_removed_tail(tmp_path):
    folder = _audited(tmp_path)
    con = _raw(folder)
    last = con.execute("SELECT max(id) FROM audit").fetchone()[0]
    con.execute("DELETE FROM audit WHERE id=?", (last,))
    con.close()
    # Opening appends an entry chained to the (shortened) log, so check the head before that:
    with Project.open(folder, "pw") as proj:
        problems = proj.verify_audit()
    assert problems, "removing the newest entry must be detected"


def test_second_process_cannot_open(tmp_path):
    with Project.create(tmp_path / "p", "pw"):
        code = (
            "from core.project import Project\n"
            "from core.errors import ProjectLocked\n"
            "try:\n    Project.open(r'%s', 'pw')\nexcept ProjectLocked as e:\n    print('LOCKED', e)\n"
            % (tmp_path / "p.rlhfproj")
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert out.stdout.startswith("LOCKED") and "already open" in out.stdout, out.stderr
        with pytest.raises(ProjectLocked):
            Project.open(tmp_path / "p.rlhfproj", "pw")
    Project.open(tmp_path / "p.rlhfproj", "pw").close()  # released on close


def test_passphrase_change_and_backup(tmp_path):
    with Project.create(tmp_path / "p", "old") as proj:
        pid = proj.add_prompt("keep me")
        run = proj.create_run("reward", {})
        proj.save_artifact(run, "ck", {"w": b"123"})
        proj.change_passphrase("old", "new")
        with pytest.raises(WrongPassphrase):
            proj.change_passphrase("old", "newer")
        backup = proj.backup(tmp_path / "bk")
    with pytest.raises(WrongPassphrase):
        Project.open(tmp_path / "p.rlhfproj", "old")
    with Project.open(tmp_path / "p.rlhfproj", "new") as proj:
        assert proj.prompt(pid).prompt == "keep me"
    with Project.open(backup, "new") as copy:
        assert copy.prompt(pid).prompt == "keep me"
        assert copy.load_artifact(run, "ck") == {"w": b"123"}
        assert copy.verify_audit() == []
        events = [e["event"] for e in copy.audit_log()]
        assert "passphrase_changed" in events


def test_judgment_history_is_kept(tmp_path):
    with Project.create(tmp_path / "p", "pw") as proj:
        pid = proj.add_prompt("p")
        r = [proj.add_response(pid, t) for t in "abc"]
        j1 = proj.record_ranking(pid, [[r[0]], [r[1]], [r[2]]])
        j2 = proj.record_ranking(pid, [[r[2]], [r[0], r[1]]])
        assert [j.id for j in proj.judgments(prompt_id=pid)] == [j2]
        history = proj.judgments(prompt_id=pid, include_history=True)
        assert [(j.id, j.status) for j in history] == [(j1, "superseded"), (j2, "current")]
        proj.undo_judgment(j2)
        assert [j.id for j in proj.judgments(prompt_id=pid)] == [j1]
        with pytest.raises(UserError, match="do not belong"):
            proj.record_ranking(pid, [[9999]])
