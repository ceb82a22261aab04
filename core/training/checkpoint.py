"""Checkpoints as project artifacts: tensors in safetensors, everything else in JSON. Never pickle.

A checkpoint is a dict of files `{"model.safetensors": bytes, "optimizer.safetensors": bytes,
"state.json": bytes, ...}` handed to `project.save_artifact(run_id, name, files)`, which encrypts it.
Loading goes back through bytes (`safetensors.torch.load`), never a temp file or `torch.load`.
Shared by every trainer (reward model, PPO, RLOO/GRPO, DPO).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = [
    "tensors_to_bytes",
    "bytes_to_tensors",
    "json_bytes",
    "json_load",
    "trainable_state",
    "load_trainable_state",
    "optimizer_to_files",
    "optimizer_from_files",
    "rng_state",
    "set_rng_state",
]


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """safetensors bytes; copies to CPU and breaks shared storage (safetensors refuses aliases)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen or not t.is_contiguous():
            t = t.clone().contiguous()
        elif ptr != -1:
            seen.add(ptr)
        out[name] = t
    return st_save(out)


def bytes_to_tensors(data: bytes) -> dict[str, torch.Tensor]:
    return st_load(bytes(data))


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def json_load(data: bytes) -> Any:
    return json.loads(bytes(data).decode("utf-8"))


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that training changes (LoRA adapters, unfrozen layers, the head), by name."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy saved trainable parameters back in; every saved name must exist in the model."""
    params = dict(model.named_parameters())
    unknown = [n for n in tensors if n not in params]
    if unknown:
        raise ValueError(f"checkpoint does not match the model: {len(unknown)} unknown tensors, e.g. {unknown[0]}")
    with torch.no_grad():
        for name, t in tensors.items():
            p = params[name]
            if p.shape != t.shape:
                raise ValueError(f"checkpoint tensor {name} has shape {tuple(t.shape)}, model has {tuple(p.shape)}")
            p.copy_(t.to(p.device, p.dtype))


def optimizer_to_files(optimizer: torch.optim.Optimizer, names: Iterable[str]) -> tuple[bytes, dict]:
    """(safetensors bytes of per-parameter state, JSON-able param_groups); names follow parameter order."""
    names = list(names)
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        pname = names[idx]
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pname}::{key}"] = value
            else:
                scalars.setdefault(pname, {})[key] = value
    groups = []
    for g in sd["param_groups"]:
        g = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        g["params"] = [names[i] for i in g["params"]]
        groups.append(g)
    return tensors_to_bytes(tensors), {"param_groups": groups, "scalars": scalars}


def optimizer_from_files(optimizer: torch.optim.Optimizer, names: Iterable[str], data: bytes, meta: dict) -> None:
    names = list(names)
    index = {n: i for i, n in enumerate(names)}
    tensors = bytes_to_tensors(data)
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pname, _, field = key.rpartition("::")
        state.setdefault(index[pname], {})[field] = t
    for pname, values in meta.get("scalars", {}).items():
        state.setdefault(index[pname], {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        g["params"] = [index[n] for n in g["params"]]
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> dict[str, torch.Tensor]:
    out = {"rng::cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng::cuda{i}"] = s
    return out


def set_rng_state(tensors: Mapping[str, torch.Tensor]) -> None:
    if "rng::cpu" in tensors:
        torch.set_rng_state(tensors["rng::cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng::cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
