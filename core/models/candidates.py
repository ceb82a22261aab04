"""The generation job: K candidate responses per prompt from a local model, stored in the project.

    report = run_job(generate_candidates(proj, "/models/qwen", k=DEFAULT_K, cancel=token))

Idempotent and resumable: a prompt's candidates from a model are counted in the store (by model path),
so prompts that already have K are skipped, and a cancelled run picks up where it stopped. Each batch's
writes are one transaction: a cancel or crash leaves whole batches, never half of one. The store
dedupes identical texts per prompt, so a duplicate sample is retried (up to `max_rounds`) with a fresh seed.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from core.jobs import NEVER, CancelToken, Progress
from core.models import DEFAULT_K
from core.models.generation import SamplingSettings, eos_token_ids, sample
from core.models.loading import encode_batch, max_positions


@dataclass
class GenerationReport:
    prompts: int = 0
    """Prompts considered."""
    skipped: int = 0
    """Prompts that already had K candidates from this model."""
    added: int = 0
    """New responses stored."""
    duplicates: int = 0
    """Samples dropped because the prompt already had that exact text (or it was empty)."""
    short: list[int] = field(default_factory=list)
    """Prompt ids still below K after every retry round."""
    new_tokens: int = 0
    """Tokens generated, EOS included."""
    seconds: float = 0.0
    """Wall time of the generation itself (model loading excluded)."""
    backend: str = ""

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def model_origin(model_path: str | Path) -> str:
    """The identity responses are counted by: the model folder's absolute path."""
    return str(Path(model_path).expanduser().resolve())


def _count(project, pid: int, origin: dict) -> int:
    if hasattr(project, "count_responses"):
        return project.count_responses(pid, origin)
    return sum(
        1
        for r in project.responses(pid)
        if r.origin.get("kind") == origin["kind"] and r.origin.get("model") == origin["model"]
    )


def _batch_seed(seed: Optional[int], round_: int, rows: Sequence[tuple]) -> Optional[int]:
    """A seed that depends on what the batch holds, so a resumed run samples what it would have."""
    if seed is None:
        return None
    key = f"{seed}:{round_}:" + ",".join(f"{pid}.{idx}" for pid, _, idx in rows)
    return zlib.crc32(key.encode())


def generate_candidates(
    project,
    model_path: str | Path,
    *,
    k: int = DEFAULT_K,
    settings: Optional[SamplingSettings] = None,
    prompt_ids: Optional[Sequence[int]] = None,
    split: Optional[str] = None,
    batch_size: int = 64,
    device=None,
    model=None,
    tokenizer=None,
    max_rounds: int = 3,
    samples_per_event: int = 2,
    cancel: CancelToken = NEVER,
) -> Iterator[Progress]:
    """Job: fill every selected prompt up to `k` candidates from the model at `model_path`.

    `model`/`tokenizer` may be passed when already loaded (then `model_path` is only the identity).
    Returns a `GenerationReport`.
    """
    settings = settings or SamplingSettings()
    origin_model = model_origin(model_path)
    count_key = {"kind": "model", "model": origin_model}
    report = GenerationReport()

    prompts = project.prompts(split=split, ids=prompt_ids)
    report.prompts = len(prompts)
    need: dict[int, int] = {}
    for p in prompts:
        missing = k - _count(project, p.id, count_key)
        if missing > 0:
            need[p.id] = missing
    report.skipped = len(prompts) - len(need)
    total = sum(need.values())
    yield Progress(0, total, f"{len(need)} prompts need candidates; {report.skipped} already have {k}")
    if not need:
        return report

    cancel.raise_if_cancelled()
    if model is None or tokenizer is None:
        from core.models.loading import load_model

        yield Progress(0, total, "loading model")
        model, tokenizer = load_model(model_path, device=device)
    cancel.raise_if_cancelled()
    dev = next(model.parameters()).device
    eos_ids = set(eos_token_ids(model, tokenizer))
    limit = max_positions(model.config)
    max_prompt = None if limit is None else max(1, limit - settings.max_new_tokens)
    by_id = {p.id: p for p in prompts}

    done = 0
    t_start = time.monotonic()
    for round_ in range(max_rounds):
        # rows: (prompt id, prompt, candidate index); the index picks the temperature from the mix
        rows = []
        for pid, missing in need.items():
            have = k - missing
            rows.extend((pid, by_id[pid].prompt, have + j + round_ * k) for j in range(missing))
        if not rows:
            break
        if round_ > 0:
            total += len(rows)
        for start in range(0, len(rows), batch_size):
            cancel.raise_if_cancelled()
            chunk = rows[start : start + batch_size]
            batch = encode_batch(tokenizer, [r[1] for r in chunk], max_tokens=max_prompt, device=dev)
            temps = [settings.temperature_for(idx) for _, _, idx in chunk]
            seeded = replace(settings, seed=_batch_seed(settings.seed, round_, chunk))
            out = sample(model, tokenizer, batch["input_ids"], batch["attention_mask"], seeded, temperatures=temps)
            report.backend = out.backend
            report.new_tokens += int(out.response_mask.sum())
            # no EOS among a row's tokens: it stopped at max_new_tokens (core.quality flags it "cut off")
            lengths = out.response_mask.sum(-1).tolist()
            last = [int(out.response_ids[b, n - 1]) if n else -1 for b, n in enumerate(lengths)]
            shown: list[dict[str, Any]] = []
            with project.transaction():
                for b, ((pid, prompt, idx), text, temp) in enumerate(zip(chunk, out.texts, temps)):
                    before = need[pid]
                    if text.strip():
                        origin = {
                            "kind": "model",
                            "model": origin_model,
                            "settings": {**settings.to_dict(), "temperature": temp},
                        }
                        if eos_ids and last[b] not in eos_ids:
                            origin["truncated"] = True
                        project.add_response(pid, text, origin=origin)
                    need[pid] = k - _count(project, pid, count_key)
                    if need[pid] < before:
                        report.added += 1
                        if len(shown) < samples_per_event:
                            shown.append({"prompt": prompt, "response": text, "temperature": temp})
                    else:
                        report.duplicates += 1
            done += len(chunk)
            elapsed = time.monotonic() - t_start
            yield Progress(
                done,
                total,
                "generating",
                metrics={"gen/tokens_per_s": report.new_tokens / max(elapsed, 1e-9), "gen/added": float(report.added)},
                samples=shown,
            )
        need = {pid: n for pid, n in need.items() if n > 0}
    report.short = sorted(need)
    report.seconds = time.monotonic() - t_start
    return report
