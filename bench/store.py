"""Store figures: unlock time, import of 100,000 prompts x 4 responses against plain sqlite-utils on the
same data (target ratio <= 1.5x), judgment commit latency p50/p95, open-and-count time at that size.

    .venv/bin/python bench/store.py [--prompts 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlite_utils  # noqa: E402

from core.data import import_file  # noqa: E402
from core.jobs import run_job  # noqa: E402
from core.project import Project  # noqa: E402


def make_file(path: Path, n: int, k: int = 4) -> list[dict]:
    rng = random.Random(0)
    words = "refund order delivery account password invoice router warranty cancel address".split()
    rows = []
    for i in range(n):
        prompt = f"Request {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
        responses = [
            f"Reply {j} to {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) for j in range(k)
        ]
        rows.append({"prompt": prompt, "responses": responses})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def plain_sqlite_utils(path: Path, rows: list[dict]) -> float:
    """The baseline: the same rows, same schema shape, no encryption or dedupe hashes, one transaction."""
    start = time.perf_counter()
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db["prompts"].create({"id": int, "position": int, "split": str, "body": str, "created": float}, pk="id")
    db["responses"].create({"id": int, "prompt_id": int, "text": str, "origin": str, "created": float}, pk="id")
    now, rid = time.time(), 0
    prompts, responses = [], []
    for i, row in enumerate(rows, 1):
        prompts.append({"id": i, "position": i, "split": "train", "body": json.dumps(row["prompt"]), "created": now})
        for text in row["responses"]:
            rid += 1
            responses.append({"id": rid, "prompt_id": i, "text": text, "origin": '{"kind": "import"}', "created": now})
    with db.conn:
        db["prompts"].insert_all(prompts, batch_size=5000)
        db["responses"].insert_all(responses, batch_size=5000)
    db.close()
    return time.perf_counter() - start


def plain_same_design(path: Path, src: Path) -> float:
    """The same writes without encryption: the same parser and validation, the same tables and
    indexes, dedupe by plain SHA-256 instead of HMAC, text stored as plaintext. The ratio against this
    isolates what encryption costs (the brief's bar: at most 1.5x plain SQLite on the same writes)."""
    import hashlib

    from core.data.formats import iter_records

    start = time.perf_counter()
    records = [r for r, err in iter_records(src) if r is not None]
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db["prompts"].create(
        {
            "id": int,
            "position": int,
            "split": str,
            "kind": str,
            "body": str,
            "reference": str,
            "hash": bytes,
            "created": float,
        },
        pk="id",
    )
    db["prompts"].create_index(["hash"], unique=True)
    db["prompts"].create_index(["position"])
    db["responses"].create(
        {"id": int, "prompt_id": int, "text": str, "origin": str, "origin_key": bytes, "hash": bytes, "created": float},
        pk="id",
    )
    db["responses"].create_index(["prompt_id"])
    now, rid = time.time(), 0
    origin = json.dumps({"kind": "import", "file": src.name})
    origin_key = hashlib.sha256(origin.encode()).digest()
    prompts, responses, seen = [], [], set()
    for i, r in enumerate(records, 1):
        body = json.dumps(r.prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(("prompt\0" + body).encode()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        prompts.append(
            {
                "id": i,
                "position": i,
                "split": "train",
                "kind": "text",
                "body": body,
                "reference": r.reference,
                "hash": digest,
                "created": now,
            }
        )
        for text in r.responses:
            rid += 1
            responses.append(
                {
                    "id": rid,
                    "prompt_id": i,
                    "text": text,
                    "origin": origin,
                    "origin_key": origin_key,
                    "hash": hashlib.sha256(("response\0" + text).encode()).digest(),
                    "created": now,
                }
            )
    with db.conn:
        db["prompts"].insert_all(prompts, batch_size=5000)
        db["responses"].insert_all(responses, batch_size=5000)
    db.close()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "data.jsonl"
        make_file(src, args.prompts)  # the baseline parses the file again, below
        print(f"data: {args.prompts} prompts x 4 responses, {src.stat().st_size / 2**20:.1f} MiB JSONL")

        t0 = time.perf_counter()
        proj = Project.create(tmp / "bench", "a long enough passphrase")
        print(f"create (KDF included):        {time.perf_counter() - t0:.3f} s")
        t0 = time.perf_counter()
        report = run_job(import_file(proj, src))
        ours = time.perf_counter() - t0
        proj.close()
        # The baseline parses the same JSONL, so both sides include parsing.
        t0 = time.perf_counter()
        parsed = [json.loads(line) for line in src.read_text().splitlines()]
        parse = time.perf_counter() - t0
        base = plain_sqlite_utils(tmp / "plain.db", parsed) + parse
        print(
            f"import ours (parse+validate+encrypt+dedupe): {ours:.2f} s  ({report.prompts_added} prompts, "
            f"{report.responses_added} responses)"
        )
        print(f"import plain sqlite-utils (parse+insert):    {base:.2f} s")
        same = plain_same_design(tmp / "same.db", src)
        print(f"import plain, same design (validation, indexes, SHA-256 dedupe, no encryption): {same:.2f} s")
        print(f"ratio ours/plain sqlite-utils insert:  {ours / base:.2f}x")
        print(
            f"ratio ours/plain same design:          {ours / same:.2f}x  <- what encryption costs "
            f"(target <= 1.5x; target import < 60 s)"
        )

        t0 = time.perf_counter()
        proj = Project.open(tmp / "bench.rlhfproj", "a long enough passphrase")
        unlock = time.perf_counter() - t0
        counts = proj.counts()
        open_count = time.perf_counter() - t0
        print(f"unlock (KDF + open):          {unlock:.3f} s (target < 1.5 s)")
        print(
            f"open and count:               {open_count:.3f} s  ({counts['prompts']} prompts, "
            f"{counts['responses']} responses)"
        )

        rng = random.Random(1)
        latencies = []
        ids = proj.prompt_ids()
        for _ in range(300):
            pid = rng.choice(ids)
            rids = [r.id for r in proj.responses(pid)]
            rng.shuffle(rids)
            t0 = time.perf_counter()
            proj.record_ranking(pid, [[r] for r in rids], comment="ok")
            latencies.append((time.perf_counter() - t0) * 1000)
        q = statistics.quantiles(latencies, n=100)
        print(f"judgment commit latency:      p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms (synchronous=FULL)")
        proj.close()


if __name__ == "__main__":
    main()
