"""Reading the ecosystem's data shapes into `ImportRecord`s, with errors numbered by line.

Shapes (BRIEF.md "Formats"), one object per JSONL line, per JSON array item, or per CSV row:
- {"prompt"[, "reference"]}                                   -> prompts
- {"prompt", "responses": [...]}                              -> responses (unranked)
- {"prompt", "responses", "ranking"}                          -> ranking (best-first indices, or tiers)
- {"prompt", "chosen", "rejected"}                            -> pairs (TRL; standard or conversational)
- {"chosen", "rejected"} sharing a dialogue prefix            -> pairs (implicit prompt, HH-RLHF style)
- {"prompt", "completions": [{"text"|"response", "rating"|"score"}]} -> rated
- {"instruction", "completions": [{"response", "overall_score", ...}]} (UltraFeedback raw) -> rated
- CSV: prompt,chosen,rejected  or  prompt,response_1..response_K[,ranking][,reference]
A prompt is a string or a list of chat messages; "split" ("train"/"heldout") is optional.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

MAX_RECORD_BYTES = 4 * 1024 * 1024  # one record; larger lines are rejected with a clear message
FORMATS = ("jsonl", "json", "csv")
SPLIT_ALIASES = {
    "train": "train",
    "heldout": "heldout",
    "held-out": "heldout",
    "held_out": "heldout",
    "test": "heldout",
    "eval": "heldout",
    "validation": "heldout",
}


@dataclass
class ImportRecord:
    line: int
    prompt: Any  # str | list[{"role","content"}]
    reference: Optional[str] = None
    responses: list[str] = field(default_factory=list)
    ranking: Optional[list[list[int]]] = None  # tiers of indices into responses, best first
    ratings: Optional[list[Optional[float]]] = None
    preference: Optional[tuple[int, int]] = None  # (chosen index, rejected index)
    split: Optional[str] = None

    @property
    def shape(self) -> str:
        if self.preference is not None:
            return "pairs"
        if self.ranking is not None:
            return "ranking"
        if self.ratings is not None:
            return "rated"
        return "responses" if self.responses else "prompts"


def _loads(text: str) -> Any:
    """json.loads, with nesting too deep for the parser reported as a ValueError (no traceback)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


class RecordError(ValueError):
    """A problem in one record; `field` names the offending field."""

    def __init__(self, field_name: Optional[str], message: str):
        self.field = field_name
        super().__init__(message)


def detect_format(path: str | Path, head: Optional[bytes] = None) -> str:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if head is None:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    return "csv"


# ---- one object -> record ------------------------------------------------------------------------


def _check_messages(value: Any, field_name: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RecordError(field_name, "must be a non-empty list of chat messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise RecordError(field_name, f"message {i + 1} must be an object with string 'role' and 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _prompt(value: Any, field_name: str = "prompt") -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise RecordError(field_name, "is empty")
        return value
    if isinstance(value, list):
        return _check_messages(value, field_name)
    raise RecordError(field_name, f"must be a string or a list of chat messages, not {_type(value)}")


def _text(value: Any, field_name: str) -> str:
    """A completion: a string, or conversational form (a list of messages, usually one assistant turn)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        msgs = _check_messages(value, field_name)
        return "\n\n".join(m["content"] for m in msgs)
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise RecordError(field_name, f"must be a string or chat messages, not {_type(value)}")


def _type(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _ranking(value: Any, n: int) -> list[list[int]]:
    if not isinstance(value, list) or not value:
        raise RecordError("ranking", "must be a non-empty list of indices or of tiers (lists of indices)")
    tiers: list[list[int]] = []
    for item in value:
        tier = item if isinstance(item, list) else [item]
        for idx in tier:
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise RecordError("ranking", f"entries must be integer indices, found {_type(idx)}")
            if not 0 <= idx < n:
                raise RecordError("ranking", f"index {idx} is out of range for {n} responses (0-based)")
        if not tier:
            raise RecordError("ranking", "contains an empty tier")
        tiers.append(list(tier))
    flat = [i for t in tiers for i in t]
    if len(flat) != len(set(flat)):
        raise RecordError("ranking", "lists the same response twice")
    return tiers


def _split(obj: dict) -> Optional[str]:
    if "split" not in obj or obj["split"] is None:
        return None
    value = obj["split"]
    if not isinstance(value, str) or value.lower() not in SPLIT_ALIASES:
        raise RecordError("split", f"must be 'train' or 'heldout', not {value!r}")
    return SPLIT_ALIASES[value.lower()]


def _reference(obj: dict) -> Optional[str]:
    ref = obj.get("reference")
    if ref is None:
        return None
    if not isinstance(ref, str):
        raise RecordError("reference", f"must be a string, not {_type(ref)}")
    return ref


def _implicit_prompt(chosen: Any, rejected: Any) -> tuple[Any, str, str]:
    """HH-RLHF style: chosen and rejected share the dialogue up to the final assistant turn."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        c, r = _check_messages(chosen, "chosen"), _check_messages(rejected, "rejected")
        k = 0
        while k < min(len(c), len(r)) - 1 and c[k] == r[k]:
            k += 1
        if k == 0:
            raise RecordError("chosen", "has no prompt and shares no dialogue prefix with 'rejected'")
        return c[:k], "\n\n".join(m["content"] for m in c[k:]), "\n\n".join(m["content"] for m in r[k:])
    if isinstance(chosen, str) and isinstance(rejected, str):
        marker = "\n\nAssistant:"
        cut = chosen.rfind(marker)
        if cut < 0 or not rejected.startswith(chosen[: cut + len(marker)]):
            raise RecordError(
                "chosen",
                "has no prompt, and 'chosen'/'rejected' do not share a '\\n\\nHuman: ... \\n\\nAssistant:' prefix",
            )
        prefix = chosen[: cut + len(marker)]
        return prefix, chosen[len(prefix) :].strip(), rejected[len(prefix) :].strip()
    raise RecordError("chosen", "and 'rejected' must both be strings or both be message lists")


def record_from_object(obj: Any, line: int) -> ImportRecord:
    if not isinstance(obj, dict):
        raise RecordError(None, f"expected an object, found {_type(obj)}")
    split, reference = _split(obj), _reference(obj)
    if "chosen" in obj or "rejected" in obj:
        for key in ("chosen", "rejected"):
            if key not in obj:
                raise RecordError(key, "is missing (a preference pair needs both 'chosen' and 'rejected')")
        if "prompt" in obj:
            prompt = _prompt(obj["prompt"])
            chosen, rejected = _text(obj["chosen"], "chosen"), _text(obj["rejected"], "rejected")
        else:
            prompt, chosen, rejected = _implicit_prompt(obj["chosen"], obj["rejected"])
        if chosen == rejected:
            raise RecordError("rejected", "is identical to 'chosen'")
        return ImportRecord(line, prompt, reference, [chosen, rejected], preference=(0, 1), split=split)
    if "prompt" not in obj and "instruction" in obj and "completions" in obj:
        # UltraFeedback's raw shape: "instruction" is the prompt, each completion has "response" and
        # "overall_score" (its per-aspect "annotations" and "critique" are not imported).
        obj = {**obj, "prompt": obj["instruction"]}
    if "prompt" not in obj:
        raise RecordError("prompt", "is missing")
    prompt = _prompt(obj["prompt"])
    if "completions" in obj:
        comps = obj["completions"]
        if not isinstance(comps, list) or not comps:
            raise RecordError("completions", "must be a non-empty list of objects")
        texts, ratings = [], []
        for i, c in enumerate(comps):
            where = f"completions[{i}]"
            if not isinstance(c, dict):
                raise RecordError(where, f"must be an object, not {_type(c)}")
            text = c.get("text", c.get("response"))
            if not isinstance(text, str):
                raise RecordError(where, "needs a string 'text' or 'response'")
            key = next((k for k in ("rating", "score", "overall_score") if k in c), "rating")
            score = c.get(key)
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
                raise RecordError(f"{where}.{key}", f"must be a number, not {_type(score)}")
            if score is not None and not math.isfinite(score):
                raise RecordError(f"{where}.{key}", f"must be a finite number, not {score}")
            texts.append(text)
            ratings.append(None if score is None else float(score))
        if len(set(texts)) != len(texts):
            raise RecordError("completions", "contains the same text twice")
        return ImportRecord(line, prompt, reference, texts, ratings=ratings, split=split)
    responses = obj.get("responses")
    if responses is None:
        if "ranking" in obj:
            raise RecordError("responses", "is missing (a ranking needs responses)")
        return ImportRecord(line, prompt, reference, split=split)
    if not isinstance(responses, list) or not responses:
        raise RecordError("responses", "must be a non-empty list")
    texts = [_text(r, f"responses[{i}]") for i, r in enumerate(responses)]
    if len(set(texts)) != len(texts):
        raise RecordError("responses", "contains the same text twice")
    ranking = _ranking(obj["ranking"], len(texts)) if obj.get("ranking") is not None else None
    return ImportRecord(line, prompt, reference, texts, ranking=ranking, split=split)


# ---- files -> records ----------------------------------------------------------------------------


def _error(name: str, line: int, exc: Exception) -> str:
    where = f"{name}:{line}"
    if isinstance(exc, RecordError) and exc.field:
        return f"{where}: field '{exc.field}' {exc}"
    return f"{where}: {exc}"


def _decode_line(raw: bytes, name: str, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None


def iter_records(path: str | Path, fmt: Optional[str] = None) -> Iterator[tuple[Optional[ImportRecord], Optional[str]]]:
    """Yield (record, None) or (None, error message naming file and line), in file order."""
    path = Path(path)
    name = path.name
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark (Windows tools)
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].decode("utf-16", errors="replace").count("\n") + 1
            yield None, f"{name}:{line}: not valid UTF-16 (byte {exc.start + 1} of the file)"
            return
    if not data.strip():
        yield None, f"{name}: the file is empty"
        return
    fmt = fmt or detect_format(path, data[:4096])
    if fmt not in FORMATS:
        yield None, f"{name}: unknown format {fmt!r} (use one of {', '.join(FORMATS)})"
        return
    if fmt == "jsonl":
        yield from _jsonl(data, name)
    elif fmt == "json":
        yield from _json_array(data, name)
    else:
        yield from _csv(data, name)


def _jsonl(data: bytes, name: str):
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            if len(raw) > MAX_RECORD_BYTES:
                raise ValueError(
                    f"the line is {len(raw) / 2**20:.1f} MB, over the "
                    f"{MAX_RECORD_BYTES // 2**20} MB limit for one record"
                )
            text = _decode_line(raw, name, i)
            try:
                obj = _loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            yield record_from_object(obj, i), None
        except ValueError as exc:
            yield None, _error(name, i, exc)


def _json_array(data: bytes, name: str):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield None, f"{name}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        return
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        yield None, f"{name}:1: expected a JSON array of objects"
        return
    pos += 1
    line_of = lambda p: text.count("\n", 0, p) + 1  # noqa: E731
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            yield None, f"{name}:{line_of(pos)}: the JSON array is not closed (truncated file?)"
            return
        if text[pos] == "]":
            return
        start = pos
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield None, f"{name}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
            return
        except RecursionError:
            yield None, f"{name}:{line_of(start)}: the JSON is nested too deeply"
            return
        line = line_of(start)
        try:
            if pos - start > MAX_RECORD_BYTES:
                raise ValueError(f"the item is over the {MAX_RECORD_BYTES // 2**20} MB limit for one record")
            yield record_from_object(obj, line), None
        except ValueError as exc:
            yield None, _error(name, line, exc)


def _csv_prompt(cell: str) -> Any:
    stripped = cell.strip()
    if stripped.startswith("[{"):
        try:
            value = _loads(stripped)
            return _check_messages(value, "prompt")
        except ValueError:  # not chat messages after all (RecordError and JSONDecodeError are ValueErrors)
            pass
    return cell


def _csv(data: bytes, name: str):
    lines = data.split(b"\n")
    decoded = []
    for i, raw in enumerate(lines, start=1):
        if len(raw) > MAX_RECORD_BYTES:
            yield (
                None,
                (
                    f"{name}:{i}: the line is {len(raw) / 2**20:.1f} MB, over the "
                    f"{MAX_RECORD_BYTES // 2**20} MB limit for one record"
                ),
            )
            return
        try:
            decoded.append(_decode_line(raw, name, i))
        except ValueError as exc:
            yield None, _error(name, i, exc)
            return
    if csv.field_size_limit() < MAX_RECORD_BYTES:  # one field may be as long as one record
        csv.field_size_limit(MAX_RECORD_BYTES)
    reader = csv.DictReader(io.StringIO("\n".join(decoded), newline=""))
    try:
        yield from _csv_rows(reader, name)
    except csv.Error as exc:  # e.g. a quoted field running past the limit: stop at that line
        yield None, f"{name}:{reader.line_num}: the CSV is malformed ({exc})"


def _csv_rows(reader: csv.DictReader, name: str):
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    if "prompt" not in header:
        yield None, f"{name}:1: missing column 'prompt' (the header has: {', '.join(header) or 'nothing'})"
        return
    response_cols = sorted(
        (h for h in header if h.startswith("response_")),
        key=lambda h: int(h.split("_")[1]) if h.split("_")[1].isdigit() else 10**9,
    )
    pair = "chosen" in header or "rejected" in header
    if pair and not ("chosen" in header and "rejected" in header):
        missing = "rejected" if "chosen" in header else "chosen"
        yield None, f"{name}:1: missing column '{missing}' (the header has: {', '.join(header)})"
        return
    for row in reader:
        line = reader.line_num
        try:
            if None in row:
                raise RecordError(None, f"has {len(header) + len(row[None])} fields but the header has {len(header)}")
            missing = [h for h in header if row.get(h) is None]
            if missing:
                raise RecordError(missing[0], "is missing in this row (too few fields)")
            if not any((v or "").strip() for v in row.values()):
                continue
            obj: dict[str, Any] = {"prompt": _csv_prompt(row["prompt"])}
            if row.get("reference"):
                obj["reference"] = row["reference"]
            if row.get("split"):
                obj["split"] = row["split"]
            if pair:
                obj["chosen"], obj["rejected"] = row["chosen"], row["rejected"]
            elif response_cols:
                texts = [row[c] for c in response_cols if row[c] != ""]
                if texts:
                    obj["responses"] = texts
                if row.get("ranking"):
                    try:
                        obj["ranking"] = _loads(row["ranking"])
                    except ValueError:
                        raise RecordError("ranking", "must be a JSON list like [2, 0, 1] or [[2], [0, 1]]") from None
            yield record_from_object(obj, line), None
        except ValueError as exc:
            yield None, _error(name, line, exc)
