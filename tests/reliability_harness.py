"""The reliability battery's machinery, shared by tests/test_reliability.py (a small core in `make test`,
full strength under the `reliability` marker) and bench/reliability.py (prints every figure).

Everything runs on real projects: real SQLite, real encryption, real processes killed with SIGKILL.
Each function returns a dict of figures and raises AssertionError on the first broken promise.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.data import import_file  # noqa: E402
from core.errors import ImportFailed, UserError, WrongPassphrase  # noqa: E402
from core.jobs import run_job  # noqa: E402
from core.project import Project  # noqa: E402


def pw(k: int) -> str:
    return f"passphrase number {k}"


def integrity_ok(folder: Path) -> bool:
    con = sqlite3.connect(folder / "project.db")
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def row_counts(proj) -> dict[str, int]:
    conn = proj._conn()
    return {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("prompts", "responses", "judgments", "audit", "runs", "artifacts")
    }


# ---- SIGKILL at random moments ----------------------------------------------------------------------

IMPORT_ROWS = 40  # prompts per imported file in the kill battery

KILL_CHILD = (
    textwrap.dedent("""
    import hashlib, json, random, sys
    from pathlib import Path
    from core.project import Project

    op, folder, passphrase, seed, extra = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    rng = random.Random(seed)

    def ack(*parts):  # an acknowledgement is written only after the operation returned
        sys.stdout.write(" ".join(map(str, parts)) + "\\n")
        sys.stdout.flush()

    proj = Project.open(folder, passphrase)
    ack("opened")
    if op == "judge":
        prompts = proj.prompt_ids()
        ack("ready")
        while True:
            pid = rng.choice(prompts)
            order = [r.id for r in proj.responses(pid)]
            rng.shuffle(order)
            jid = proj.record_ranking(pid, [[r] for r in order], comment="c" * rng.randint(0, 2000))
            ack("judge", jid, pid, ",".join(map(str, order)))
    elif op == "import":
        from core.data import import_file
        from core.jobs import run_job
        i = 0
        ack("ready")
        while True:
            tag = f"{seed}-{i}"
            path = Path(extra) / f"import-{tag}.jsonl"
            path.write_text("".join(json.dumps({"prompt": f"imported {tag} #{j}",
                                                "responses": [f"first {tag} {j}", f"second {tag} {j}"],
                                                "ranking": [1, 0]}) + "\\n" for j in range(ROWS)))
            ack("start", tag)
            run_job(import_file(proj, path))
            ack("import", tag)
            i += 1
    elif op == "passwd":
        k = int(extra)
        ack("ready")
        while True:
            ack("start", k + 1)
            proj.change_passphrase(PW(k), PW(k + 1))
            k += 1
            ack("passwd", k)
    elif op == "backup":
        i = 0
        ack("ready")
        while True:
            target = Path(extra) / f"backup-{seed}-{i}"
            ack("start", target)
            out = proj.backup(target)
            ack("backup", out)
            i += 1
    elif op == "checkpoint":
        import torch
        torch.set_num_threads(1)
        from core.training.checkpoint import json_bytes, json_load, tensors_to_bytes, trainable_state
        run_id = int(extra)
        step = json_load(proj.load_artifact(run_id, "checkpoint")["state.json"])["step"]
        torch.manual_seed(seed)
        model = torch.nn.Linear(256, 256)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        ack("ready")
        while True:
            model(torch.randn(8, 256)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            step += 1
            weights = tensors_to_bytes(trainable_state(model))
            ack("start", step)
            proj.save_artifact(run_id, "checkpoint", {"model.safetensors": weights,
                                                     "state.json": json_bytes({"step": step})})
            ack("checkpoint", step, hashlib.sha256(weights).hexdigest())
""")
    .replace("ROWS", str(IMPORT_ROWS))
    .replace("PW(", "(lambda k: f'passphrase number {k}')(")
)

KILL_OPS = ("judge", "import", "passwd", "backup", "checkpoint")
# The kill lands uniformly in [0, delay] seconds after the child is ready: about a few operations' worth
# (a passphrase change is two Argon2id derivations), so kills fall before, inside and after operations.
KILL_DELAY = {"judge": 0.3, "import": 0.6, "passwd": 2.0, "backup": 0.5, "checkpoint": 0.6}


def kill_battery(workdir: Path, kills: int, seed: int = 0) -> dict:
    """`kills` SIGKILLs, round-robin over KILL_OPS, each at a random moment after the child opened the
    project. After every kill: integrity_check ok; after a kill during passwd the project opens with the
    old or the new passphrase. At the end every acknowledged write is present and in-flight imports were
    all-or-nothing."""
    from core.training.checkpoint import json_bytes

    workdir.mkdir(parents=True, exist_ok=True)
    folder = workdir / "k.rlhfproj"
    imports, backups = workdir / "imports", workdir / "backups"
    imports.mkdir(exist_ok=True)
    backups.mkdir(exist_ok=True)
    with Project.create(folder, pw(0)) as proj:
        for i in range(20):
            pid = proj.add_prompt(f"prompt {i}")
            for k in range(4):
                proj.add_response(pid, f"response {i}.{k}")
        run_id = proj.create_run("policy", {"what": "kill battery"})
        proj.save_artifact(run_id, "checkpoint", {"state.json": json_bytes({"step": 0})})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rng = random.Random(seed)
    k = 0  # index of the current passphrase
    judged: dict[int, tuple[int, list[int]]] = {}
    imported, import_started = set(), set()
    backed_up: list[tuple[str, int]] = []
    ckpt_acked: tuple[int, str] = (0, "")
    ckpt_started = 0
    fig = {
        "kills": 0,
        "kills_mid_operation": 0,
        "integrity_failures": 0,
        "passwd_kills": 0,
        "passwd_opened_old": 0,
        "passwd_opened_new": 0,
        "passwd_opened_neither": 0,
        "reopened_after_kill": 0,
        **{f"kills_{op}": 0 for op in KILL_OPS},
    }
    t0 = time.monotonic()
    for round_ in range(kills):
        op = KILL_OPS[round_ % len(KILL_OPS)]
        extra = {
            "judge": "",
            "import": str(imports),
            "passwd": str(k),
            "backup": str(backups),
            "checkpoint": str(run_id),
        }[op]
        child = subprocess.Popen(
            [sys.executable, "-c", KILL_CHILD, op, str(folder), pw(k), str(round_), extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        first = child.stdout.readline()  # the previous child was SIGKILLed holding the lock: this open recovers
        assert first == "opened\n", f"round {round_} ({op}): the child could not open: {child.stderr.read()}"
        fig["reopened_after_kill"] += round_ > 0
        ready = child.stdout.readline()
        assert ready == "ready\n", f"round {round_} ({op}): {ready!r} {child.stderr.read()}"
        early = []  # wait for the first acknowledged operation, so every round has one however slow the machine
        while not early or early[-1].startswith("start"):
            early.append(child.stdout.readline())
            assert early[-1], f"round {round_} ({op}): the child died: {child.stderr.read()}"
        time.sleep(rng.uniform(0.0, KILL_DELAY[op]))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        fig["kills"] += 1
        fig[f"kills_{op}"] += 1
        lines = [ln.split() for ln in early + child.stdout.read().splitlines(keepends=True) if ln.endswith("\n")]
        child.stdout.close()
        child.stderr.close()
        in_flight = bool(lines) and lines[-1][0] == "start"
        fig["kills_mid_operation"] += in_flight or op == "judge"
        round_backups = []
        for parts in lines:
            if parts[0] == "judge":
                judged[int(parts[1])] = (int(parts[2]), [int(r) for r in parts[3].split(",")])
            elif parts[0] == "import":
                imported.add(parts[1])
            elif parts[0] == "start" and op == "import":
                import_started.add(parts[1])
            elif parts[0] == "passwd":
                k = int(parts[1])
            elif parts[0] == "backup":
                round_backups.append((parts[1], k))
            elif parts[0] == "checkpoint":
                ckpt_acked = (int(parts[1]), parts[2])
            elif parts[0] == "start" and op == "checkpoint":
                ckpt_started = int(parts[1])
        backed_up += round_backups[-1:]  # the newest acknowledged backup of each round is opened and checked
        fig["backups_acknowledged"] = fig.get("backups_acknowledged", 0) + len(round_backups)
        if not integrity_ok(folder):
            fig["integrity_failures"] += 1
        if op == "passwd":
            fig["passwd_kills"] += 1
            try:
                Project.open(folder, pw(k)).close()
                fig["passwd_opened_old"] += 1
            except WrongPassphrase:
                if not in_flight:
                    fig["passwd_opened_neither"] += 1
                    raise AssertionError(f"round {round_}: the acknowledged passphrase no longer opens the project")
                try:
                    Project.open(folder, pw(k + 1)).close()
                except WrongPassphrase:
                    fig["passwd_opened_neither"] += 1
                    raise AssertionError(f"round {round_}: neither the old nor the new passphrase opens it") from None
                k += 1
                fig["passwd_opened_new"] += 1
    fig["seconds"] = round(time.monotonic() - t0, 1)
    assert fig["integrity_failures"] == 0
    # ---- everything acknowledged is there ----
    with Project.open(folder, pw(k)) as proj:
        for jid, (pid, order) in judged.items():
            j = proj.judgment(jid)
            assert j.prompt_id == pid and j.tiers == [[r] for r in order], f"judgment {jid} changed"
        partial = 0
        for tag in import_started | imported:
            present = sum(proj.find_prompt(f"imported {tag} #{j}") is not None for j in range(IMPORT_ROWS))
            if tag in imported:
                assert present == IMPORT_ROWS, f"acknowledged import {tag}: {present}/{IMPORT_ROWS} prompts"
            partial += 0 < present < IMPORT_ROWS
        from core.training.checkpoint import json_load

        files = proj.load_artifact(run_id, "checkpoint")
        step = json_load(files["state.json"])["step"]
        assert step in (ckpt_acked[0], ckpt_started), (step, ckpt_acked, ckpt_started)
        if step == ckpt_acked[0] and ckpt_acked[1]:
            assert hashlib.sha256(files["model.safetensors"]).hexdigest() == ckpt_acked[1]
        assert proj.verify_audit() == []
        leftovers = sorted(p.name for p in (folder / "artifacts").iterdir() if p.suffix == ".tmp")
    for path, kb in backed_up:
        assert integrity_ok(Path(path))
        with Project.open(path, pw(kb)) as copy:
            assert copy.verify_audit() == []
            assert copy.counts()["prompts"] >= 20
    assert integrity_ok(folder)
    fig.update(
        acknowledged_judgments=len(judged),
        acknowledged_imports=len(imported),
        imports_killed_midway=len(import_started - imported),
        partial_imports=partial,
        backups_verified=len(backed_up),
        checkpoint_step=step,
        passphrase_changes=k,
        leftover_tmp_artifact_files=len(leftovers),
    )
    assert partial == 0
    assert leftovers == [], leftovers  # killed artifact writes' .tmp files are removed at the next open
    return fig


# ---- generated malformed import files -----------------------------------------------------------

FILE_LEVEL = ("the file is empty", "no records found", "unknown format")
CORRUPT_LINES = [
    b'{"prompt": "truncated',
    b'{"prompt": 3}',
    b'{"prompt": ""}',
    b'{"responses": ["a"]}',
    b'{"prompt": "q", "responses": ["a", "b"], "ranking": [0, 5]}',
    b'{"prompt": "q", "responses": ["a", "b"], "ranking": [0, 0]}',
    b'{"prompt": "q", "responses": ["a", "b"], "ranking": [[], [0]]}',
    b'{"prompt": "q", "chosen": "x"}',
    b'{"prompt": "q", "chosen": "x", "rejected": "x"}',
    b'{"prompt": [{"role": "user"}]}',
    b'{"prompt": "q", "completions": [{"text": "a", "rating": "5"}]}',
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"prompt": "q", "split": "nope"}',
    b'{"prompt": "a\x00b"}',
    b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}",
]


def _strategies():
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-10, 10)
        | st.floats(allow_nan=True, allow_subnormal=False)
        | st.text(max_size=12)
    )
    values = st.recursive(
        scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=10
    )
    keys = st.sampled_from(
        [
            "prompt",
            "responses",
            "ranking",
            "chosen",
            "rejected",
            "completions",
            "split",
            "reference",
            "text",
            "rating",
            "role",
            "content",
        ]
    )
    field_values = values | st.lists(st.text(max_size=10), max_size=5) | st.lists(st.integers(-2, 6), max_size=6)
    record_like = st.dictionaries(keys, field_values, max_size=5)
    valid = st.builds(
        lambda p, rs: {"prompt": p, "responses": rs},
        st.text(min_size=1, max_size=30).filter(str.strip),
        st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4, unique=True),
    )
    line = st.one_of(
        record_like.map(json.dumps), values.map(json.dumps), valid.map(json.dumps), st.text(max_size=40)
    ).map(lambda s: s.encode("utf-8", "surrogatepass"))
    line = line | st.binary(max_size=40)
    return st, line


def fuzz_imports(workdir: Path, examples: int, derandomize: bool = False) -> dict:
    """`examples` generated malformed files (JSONL, JSON arrays, CSV), each with at least one broken
    record, imported into one project: no traceback, every message names the file (and the line, where the
    problem is in a line), nothing is written by a rejected import."""
    from hypothesis import HealthCheck, given, settings

    st, line = _strategies()
    workdir.mkdir(parents=True, exist_ok=True)
    proj = Project.create(workdir / "fuzz", pw(0))
    fig = {
        "files": 0,
        "rejected": 0,
        "accepted": 0,
        "tracebacks": 0,
        "partial_writes": 0,
        "messages_without_file_and_line": 0,
        "corrupt_line_not_named": 0,
    }
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one(data):
        fmt = data.draw(st.sampled_from(["jsonl", "jsonl", "json", "csv"]))
        n = fig["files"]
        path = workdir / f"f{n}.{fmt}"
        bad_line = None
        if fmt == "jsonl":
            lines = data.draw(st.lists(line, max_size=8))
            pos = data.draw(st.integers(0, len(lines)))
            lines.insert(pos, data.draw(st.sampled_from(CORRUPT_LINES)))
            sep = data.draw(st.sampled_from([b"\n", b"\r\n"]))
            lines = [ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]
            body = sep.join(lines)
            bad_line = pos + 1 if lines[pos].strip() else None
            if data.draw(st.booleans()):
                body = b"\xef\xbb\xbf" + body
            if body.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte-order mark: read as UTF-16, lines differ
                bad_line = None
        elif fmt == "json":
            items = data.draw(st.lists(line, max_size=6))
            body = b"[" + b",\n".join(items) + b"]"
            cut = data.draw(st.integers(0, len(body)))
            body = body[:cut] if data.draw(st.booleans()) else body
            if not data.draw(st.booleans()):
                body = b"[" + data.draw(st.sampled_from(CORRUPT_LINES)) + b"]"
        else:
            cols = data.draw(
                st.lists(
                    st.sampled_from(
                        [
                            "prompt",
                            "chosen",
                            "rejected",
                            "response_1",
                            "response_2",
                            "ranking",
                            "reference",
                            "split",
                            "x",
                        ]
                    ),
                    max_size=5,
                    unique=True,
                )
            )
            rows = data.draw(st.lists(st.lists(st.text(max_size=15), max_size=6), max_size=6))
            import csv
            import io

            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(cols)
            for r in rows:
                w.writerow(r)
            body = buf.getvalue().encode("utf-8", "surrogatepass")
            if data.draw(st.booleans()):  # an unterminated quote or a broken ranking cell
                body += data.draw(st.sampled_from([b'"never closed,a,b\n', b"q,a,b,[0,\n", b"\xff\n"]))
        path.write_bytes(body)
        fig["files"] += 1
        before = row_counts(proj)
        try:
            run_job(import_file(proj, path))
            fig["accepted"] += 1
            return
        except ImportFailed as exc:
            fig["rejected"] += 1
            messages = exc.errors
        except UserError as exc:
            fig["rejected"] += 1
            messages = [str(exc)]
        except Exception as exc:  # noqa: BLE001 - this is what the battery counts
            fig["tracebacks"] += 1
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}"[:300])
            messages = []
        if row_counts(proj) != before:
            fig["partial_writes"] += 1
            failures.append(f"{path.name}: a rejected import changed the project")
        for m in messages:
            if not (
                re.match(rf"{re.escape(path.name)}:\d+: ", m)
                or (m.startswith(f"{path.name}: ") and any(s in m for s in FILE_LEVEL))
            ):
                fig["messages_without_file_and_line"] += 1
                failures.append(f"{path.name}: message without file and line: {m[:200]}")
        if bad_line is not None and messages and not any(m.startswith(f"{path.name}:{bad_line}: ") for m in messages):
            fig["corrupt_line_not_named"] += 1
            failures.append(f"{path.name}: line {bad_line} is broken but not named: {messages[:3]}")

    try:
        one()
    finally:
        proj.close()
    fig["failures"] = failures[:10]
    assert not failures, failures[:10]
    return fig


# ---- edge inputs: size, nesting, encodings -----------------------------------------------------------


def _edge_file(kind: str, path: Path) -> Path:
    rec = lambda **o: (json.dumps(o) + "\n").encode()  # noqa: E731
    if kind == "line_50mb":
        data = b'{"prompt": "' + b"x" * (50 * 2**20) + b'"}\n' + rec(prompt="after the big line")
    elif kind == "deep_nesting":
        data = b'{"prompt": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}\n"
    elif kind == "deep_nesting_json":
        path = path.with_suffix(".json")
        data = b'[{"prompt": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}]"
    elif kind == "nul_raw":
        data = b'{"prompt": "a\x00b"}\n'
    elif kind == "nul_escaped":
        data = rec(prompt="a\u0000b", responses=["x\u0000", "y"])
    elif kind == "nul_csv":
        path = path.with_suffix(".csv")
        data = b"prompt,chosen,rejected\nq\x00,x,y\n"
    elif kind == "bom_utf8":
        data = b"\xef\xbb\xbf" + rec(prompt="with a BOM")
    elif kind == "utf16_le":
        data = ('{"prompt": "UTF-16 h\u00e9"}\r\n').encode("utf-16")  # BOM + little-endian
    elif kind == "utf16_be":
        data = b"\xfe\xff" + ('{"prompt": "UTF-16 big-endian"}\n').encode("utf-16-be")
    elif kind == "crlf_jsonl":
        data = rec(prompt="crlf one", responses=["a", "b"], ranking=[1, 0]).replace(b"\n", b"\r\n") * 1
    elif kind == "crlf_csv":
        path = path.with_suffix(".csv")
        data = b'prompt,response_1,response_2,ranking\r\ncrlf q,a,b,"[1, 0]"\r\n'
    elif kind == "ranking_out_of_range":
        data = rec(prompt="q", responses=["a", "b", "c"], ranking=[0, 3, 1])
    elif kind == "ranking_repeated":
        data = rec(prompt="q", responses=["a", "b", "c"], ranking=[[0, 1], [1], [2]])
    elif kind == "responses_10000":
        n = 10_000
        data = rec(
            prompt="one prompt, ten thousand responses",
            responses=[f"response number {i}" for i in range(n)],
            ranking=list(range(n - 1, -1, -1)),
        )
    else:
        raise ValueError(kind)
    if path.suffix != ".json" and path.suffix != ".csv":
        path = path.with_suffix(".jsonl")
    path.write_bytes(data)
    return path


EDGE_EXPECT = {  # kind -> (accepted?, text the message must contain)
    "line_50mb": (False, ":1: the line is 50.0 MB, over the 4 MB limit"),
    "deep_nesting": (False, ":1: the JSON is nested too deeply"),
    "deep_nesting_json": (False, ":1: the JSON is nested too deeply"),
    "nul_raw": (False, ":1: invalid JSON (Invalid control character"),
    "nul_escaped": (True, ""),
    "nul_csv": (True, ""),
    "bom_utf8": (True, ""),
    "utf16_le": (True, ""),
    "utf16_be": (True, ""),
    "crlf_jsonl": (True, ""),
    "crlf_csv": (True, ""),
    "ranking_out_of_range": (False, ":1: field 'ranking' index 3 is out of range for 3 responses"),
    "ranking_repeated": (False, ":1: field 'ranking' lists the same response twice"),
    "responses_10000": (True, ""),
}
SMALL_EDGES = [k for k in EDGE_EXPECT if k not in ("line_50mb", "deep_nesting", "deep_nesting_json", "responses_10000")]


def edge_case(kind: str, workdir: Path) -> dict:
    """Import one edge-case file into a fresh project; check the outcome and what was stored."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = _edge_file(kind, workdir / kind)
    accepted, text = EDGE_EXPECT[kind]
    with Project.create(workdir / f"{kind}-project", pw(0)) as proj:
        before = row_counts(proj)
        t0 = time.monotonic()
        try:
            report = run_job(import_file(proj, path))
            outcome, message = "accepted", ""
        except ImportFailed as exc:
            outcome, message = "rejected", "\n".join(exc.errors)
            assert row_counts(proj) == before, f"{kind}: a rejected import changed the project"
        seconds = time.monotonic() - t0
        assert (outcome == "accepted") == accepted, f"{kind}: {outcome} {message[:300]}"
        assert f"{path.name}{text}" in message or accepted, f"{kind}: {message[:300]}"
        if accepted:
            prompts = proj.prompts()
            assert len(prompts) == report.prompts_added == 1
            texts = [r.text for r in proj.responses(prompts[0].id)]
            assert not any("\r" in t for t in texts) and "\r" not in str(prompts[0].prompt)
            if kind == "responses_10000":
                assert len(texts) == 10_000
                j = proj.judgments(prompt_id=prompts[0].id)[0]
                assert len(j.tiers) == 10_000
            if kind.startswith("utf16"):
                assert str(prompts[0].prompt).startswith("UTF-16")
            if kind == "nul_escaped":
                assert prompts[0].prompt == "a\u0000b"
    return {
        "kind": kind,
        "outcome": outcome,
        "seconds": round(seconds, 2),
        "file_mb": round(path.stat().st_size / 2**20, 2),
    }


def edge_case_measured(kind: str, workdir: Path) -> dict:
    """edge_case in a fresh process, with that process's own peak memory (ru_maxrss) and wall time."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; "
        f"from tests.reliability_harness import edge_case, peak_rss_mb; "
        f"fig = edge_case({kind!r}, Path({str(workdir)!r})); "
        f"fig['peak_rss_mb'] = round(peak_rss_mb()); print(json.dumps(fig))"
    )
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, f"{kind}: {out.stderr.decode()[-2000:]}"
    fig = json.loads(out.stdout.decode().strip().splitlines()[-1])
    fig["wall_seconds"] = round(time.monotonic() - t0, 2)
    return fig


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: per address space, so it starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- disk full, read-only folder -------------------------------------------------------------------


def _mount_tmpfs(mnt: Path, size: str) -> str | None:
    """Mount a small tmpfs at `mnt`; the reason when that is not possible (not root, no mount)."""
    mnt.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root (run the battery as root or in a container)"
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if out.returncode != 0:
        return f"mount -t tmpfs is not permitted here: {out.stderr.strip() or out.returncode}"
    return None


def _umount(mnt: Path) -> None:
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path, leave: int = 0) -> int:
    """Write zeros to `path` until only `leave` bytes are free (or the file system is full); bytes written."""
    written = 0
    chunk = b"\0" * 65536
    st = os.statvfs(path.parent)
    budget = max(0, st.f_bavail * st.f_frsize - leave) if leave else None
    with open(path, "wb", buffering=0) as fh:
        while budget is None or written < budget:
            try:
                n = fh.write(chunk)
            except OSError:
                break
            written += n
            if not n:
                break
    return written


def disk_full_battery(workdir: Path, size: str = "24m") -> dict:
    """A project on a small tmpfs: an import that does not fit, then judgments once the disk is full:
    clear errors, nothing acknowledged lost, the project opens again once there is room."""
    mnt = workdir / "small-disk"
    reason = _mount_tmpfs(mnt, size)
    if reason:
        return {"skipped": reason}
    fig: dict = {"tmpfs": size}
    try:
        folder = mnt / "full.rlhfproj"
        acked: dict[int, list[list[int]]] = {}
        with Project.create(folder, pw(0)) as proj:
            for i in range(10):
                pid = proj.add_prompt(f"prompt {i}")
                rids = [proj.add_response(pid, f"response {i}.{k}") for k in range(3)]
                acked[proj.record_ranking(pid, [[r] for r in rids])] = [[r] for r in rids]
            big = workdir / "too-big.jsonl"  # written outside the small disk
            with open(big, "w") as fh:
                for i in range(60_000):
                    fh.write(
                        json.dumps(
                            {
                                "prompt": f"imported prompt {i} " + "p" * 100,
                                "responses": [f"answer {i}.{k} " + "r" * 100 for k in range(3)],
                            }
                        )
                        + "\n"
                    )
            # other files take most of the disk (as on a real, nearly full disk); what they hold can be freed
            filler = mnt / "filler.bin"
            fig["filler_bytes"] = _fill(filler, leave=6 << 20)
            before = row_counts(proj)
            try:
                run_job(import_file(proj, big))
                raise AssertionError(f"an import of {big.stat().st_size >> 20} MB fitted on a {size} disk")
            except UserError as exc:
                fig["import_error"] = str(exc).splitlines()[0][:160]
            assert "full" in fig["import_error"].lower(), fig["import_error"]
            assert row_counts(proj) == before, "the failed import left rows behind"
            # keep judging (64 KB comments) until the disk refuses
            refused, committed = None, 0
            pids = proj.prompt_ids()
            for n in range(5000):
                pid = pids[n % len(pids)]
                rids = [r.id for r in proj.responses(pid)][:: -1 if n % 2 else 1]
                tiers = [[r] for r in rids]
                try:
                    jid = proj.record_ranking(pid, tiers, comment="c" * 65536)
                except UserError as exc:
                    refused = str(exc)
                    break
                acked[jid] = tiers
                committed += 1
            assert refused is not None, "the full disk never refused a judgment"
            assert "full" in refused.lower(), refused
            fig.update(judgments_committed_on_full_disk=committed, judgment_error=refused.splitlines()[0][:160])
        # the app closed it cleanly; make room and open it again
        filler.unlink()
        assert integrity_ok(folder)
        with Project.open(folder, pw(0)) as proj:
            for jid, tiers in acked.items():
                assert proj.judgment(jid).tiers == tiers, f"acknowledged judgment {jid} lost"
            assert proj.verify_audit() == []
            proj.record_ranking(proj.prompt_ids()[0], acked[next(iter(acked))])
        fig["acknowledged_judgments_present"] = len(acked)
        fig["reopened"] = True
    finally:
        _umount(mnt)
    return fig


def read_only_battery(workdir: Path) -> dict:
    """A project on a file system mounted read-only: opening it gives a clear error, no traceback."""
    mnt = workdir / "ro-disk"
    reason = _mount_tmpfs(mnt, "16m")
    if reason:
        return {"skipped": reason}
    try:
        with Project.create(mnt / "ro", pw(0)) as proj:
            proj.add_prompt("a prompt")
        out = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True, text=True)
        if out.returncode != 0:
            return {"skipped": f"remounting read-only is not permitted: {out.stderr.strip()}"}
        try:
            Project.open(mnt / "ro.rlhfproj", pw(0)).close()
            raise AssertionError("a project on a read-only disk opened for writing")
        except UserError as exc:
            message = str(exc)
        assert "read-only" in message.lower() or "cannot be written" in message.lower(), message
        return {"read_only_error": message.splitlines()[0][:160]}
    finally:
        _umount(mnt)


# ---- the whole workflow: canary and socket guard ---------------------------------------------------

WORKFLOW_CHILD = textwrap.dedent("""
    import json, os, socket, sys
    attempts = []

    def refuse(*args, **kwargs):  # every way to open a connection or resolve a name is counted and fails
        attempts.append(repr(args[:2])[:80])
        raise OSError("network access is disabled in this run")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import core.cli
    from core.cli import policy_cmds
    from core.demo import corpus as C
    from core.demo.project import demo_model_dir
    from core.evaluation.blind import evaluation_queue, record_evaluation
    from core.jobs import Cancelled, CancelToken, run_job
    from core.project import Project
    from core.training.policy_job import train_policy

    work, canary, pw = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.environ["RLHF_STUDIO_PASSPHRASE"] = pw
    demo, proj_dir, exports = str(demo_model_dir()), work / "demo.rlhfproj", work / "exports"
    steps = []

    def cli(*args, ok=(0,)):
        rc = core.cli.main([str(a) for a in args])
        assert rc in ok, (args, rc)
        steps.append(str(args[0]))
        return rc

    cli("demo", proj_dir, "--prompts", "24", "-k", "4", "--seed", "1")
    with Project.open(proj_dir, pw) as p:
        for i in range(4):
            p.add_prompt(f"My order {i} for {canary} never arrived, what now?")
        p.add_prompt(f"Held-out question about {canary}", split="heldout")
        p.set_setting("guidelines", f"Be kind to {canary}")
    cli("generate", proj_dir, "--model", demo, "-k", "4", "--max-new-tokens", "24", "--device", "cpu")
    with Project.open(proj_dir, pw) as p:  # a simulated expert ranks, and comments with the canary
        for pid in p.prompt_ids(split="train"):
            prompt = p.prompt(pid).prompt
            scored = sorted(p.responses(pid), key=lambda r: -C.expert_score(str(prompt), r.text))
            p.record_ranking(pid, [[r.id] for r in scored], comment=f"note on {canary}", flags=["off-topic"])
    cli("train-reward", proj_dir, "--base", demo, "--preset", "quick", "--device", "cpu")
    with Project.open(proj_dir, pw) as p:
        reward_run = p.runs(kind="reward")[-1].id
    common = ["--policy", demo, "--steps", "2", "--batch-size", "4", "--max-new-tokens", "12", "--device", "cpu",
              "--preset", "quick"]
    runs = {}
    for algo in ("ppo", "rloo", "grpo", "dpo"):
        extra = ["--reward", reward_run] if algo != "dpo" else []
        extra += ["-k", "2"] if algo in ("rloo", "grpo") else []
        cli("train-policy", proj_dir, "--algo", algo, *common, *extra)
        with Project.open(proj_dir, pw) as p:
            runs[algo] = p.runs(kind="policy")[-1].id
    # an interrupted run (cancelled after its first step, as Ctrl-C or the Cancel button do), then resumed
    args = core.cli.build_parser().parse_args(["train-policy", str(proj_dir), "--algo", "ppo", *common,
                                               "--steps", "3", "--reward", str(reward_run)])
    token = CancelToken()
    with Project.open(proj_dir, pw) as p:
        try:
            run_job(train_policy(p, policy_cmds.config_from_args(args), cancel=token),
                    lambda ev: token.cancel() if ev.metrics and ev.step >= 1 else None)
            raise AssertionError("the run was not interrupted")
        except Cancelled:
            pass
        interrupted = p.runs(kind="policy")[-1].id
        assert p.run(interrupted).status == "cancelled", p.run(interrupted).status
    cli("train-policy", proj_dir, "--resume", interrupted)
    cli("evaluate", proj_dir, runs["ppo"], "--max-prompts", "4", "--max-new-tokens", "12", "--device", "cpu")
    with Project.open(proj_dir, pw) as p:
        eval_run = p.runs(kind="eval")[-1].id
        for item in evaluation_queue(p, eval_run):
            record_evaluation(p, item, "a", comment=f"eval note {canary}")
    cli("report", proj_dir, runs["ppo"], "--out", exports / "report", "--device", "cpu")
    cli("export-model", proj_dir, runs["ppo"], exports / "model", "--plaintext")
    cli("export", proj_dir, exports / "pairs.jsonl", "--plaintext")
    cli("backup", proj_dir, work / "backup")
    with Project.open(proj_dir, pw) as p:
        statuses = {r.id: (r.kind, r.status) for r in p.runs()}
    from tests.reliability_harness import peak_rss_mb
    print(json.dumps({"attempts": attempts, "steps": steps, "runs": runs, "interrupted": interrupted,
                      "statuses": statuses, "peak_rss_mb": round(peak_rss_mb())}))
""")


def _canary_hits(data: bytes, canary: str) -> list[str]:
    return [enc for enc in ("utf-8", "utf-16-le", "utf-16-be") if canary.encode(enc) in data]


def workflow_canary(workdir: Path) -> dict:
    """demo -> generate -> rank -> train-reward -> train-policy (ppo, rloo, grpo, dpo) -> an interrupted
    run and its resume -> evaluate -> report -> export-model -> export -> backup, in one process whose
    sockets all fail and count: 0 connection attempts, and the canary nowhere outside the explicit
    plaintext exports (project, backup, TMPDIR, HOME incl. ~/.cache and ~/.config, stdout/stderr)."""
    import secrets

    canary = "CANARY" + secrets.token_hex(8)
    work, tmp, home = workdir / "work", workdir / "tmp", workdir / "home"
    for d in (work, tmp, home):
        d.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "HF_HOME", "TORCH_HOME", "MPLCONFIG"))}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        TMPDIR=str(tmp),
        TEMP=str(tmp),
        TMP=str(tmp),
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        QT_QPA_PLATFORM="offscreen",
    )
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", WORKFLOW_CHILD, str(work), canary, pw(0)], env=env, capture_output=True, timeout=3600
    )
    out, err = proc.stdout, proc.stderr
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, err.decode(errors="replace")[-4000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    exports = work / "exports"
    scanned, leaks = 0, {}
    for root in (work, tmp, home):
        for p in root.rglob("*"):
            if p.is_file() and exports not in p.parents:
                scanned += 1
                hits = _canary_hits(p.read_bytes(), canary)
                if hits:
                    leaks[str(p.relative_to(workdir))] = hits
    for name, stream in (("stdout", out), ("stderr", err)):
        hits = _canary_hits(stream, canary)
        if hits:
            leaks[name] = hits
    in_exports = sorted(
        str(p.relative_to(exports)) for p in exports.rglob("*") if p.is_file() and _canary_hits(p.read_bytes(), canary)
    )
    fig = {
        "steps": result["steps"],
        "connection_attempts": len(result["attempts"]),
        "files_scanned": scanned,
        "canary_leaks": len(leaks),
        "canary_in_explicit_exports": in_exports,
        "policy_runs": result["runs"],
        "interrupted_run": result["interrupted"],
        "statuses": result["statuses"],
        "seconds": round(seconds),
        "peak_rss_mb": result["peak_rss_mb"],
    }
    assert result["attempts"] == [], result["attempts"]
    assert leaks == {}, leaks
    assert "pairs.jsonl" in in_exports  # the scan would have seen it: the canary did flow through
    assert {s for _, s in result["statuses"].values()} == {"done"}, result["statuses"]
    return fig
