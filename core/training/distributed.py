"""Data-parallel reward-model and DPO training: one process per GPU (NCCL), or gloo processes on a CPU.

    rlhf-studio train-reward PROJECT --base MODEL --gpus 2      (RewardConfig.gpus / PolicyConfig.gpus)

Only this (parent) process opens the encrypted project and holds its key. It reads and decrypts what
the run needs, tokenizes it, and starts `gpus` worker processes (multiprocessing "spawn"); each worker
gets its share of the job as the pickled arguments of its start, over the pipe that starts it: token
ids for the reward model, (prompt, chosen, rejected) texts for DPO, plus a checkpoint's bytes when
resuming. Nothing is written to disk for them: no temporary files, no shared-memory tensors (payloads are
plain Python lists and bytes). The workers read the base model's folder (already plaintext on disk, the
expert's own model), never the project.

Every step each rank trains on its slice of the same global batch; gradients are averaged with
`DistributedDataParallel` (the local loss is scaled so the average equals the single-process loss on
the whole batch, even when the slices are unequal), so all ranks hold identical weights. Rank 0 reports
metrics (summed over the ranks), checkpoints and the final weights back to the parent through a
`multiprocessing` queue (a pipe); the parent writes them into the encrypted project like a
single-process run, so `--resume` works with or without `--gpus`. The ranks talk to each other over
loopback only (127.0.0.1 rendezvous, `GLOO_SOCKET_IFNAME`/`NCCL_SOCKET_IFNAME=lo`): gradients and
control flags travel there, never text. See docs/security.md for the threat-model notes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import queue as queue_mod
import socket
import time
import traceback
from typing import Any, Iterator, Optional

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Cancelled, Progress

_POLL_S = 0.2


# ---------------------------------------------------------------------------------------------------
# process plumbing


def check_world(gpus: int, device: str) -> str:
    """The backend for `gpus` processes on `device` ("nccl" or "gloo"), or a UserError."""
    import torch

    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    if dev.type == "cuda":
        have = torch.cuda.device_count()
        if gpus > have:
            raise UserError(f"--gpus {gpus} asked for, but this machine has {have} CUDA GPU(s).")
        return "nccl"
    if dev.type != "cpu":
        raise UserError(f"data-parallel training runs on CUDA GPUs or CPU processes, not on {dev.type}.")
    if gpus > (os.cpu_count() or 1):
        raise UserError(f"--gpus {gpus} CPU processes asked for, but this machine has {os.cpu_count()} cores.")
    return "gloo"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_main(rank: int, world: int, port: int, backend: str, kind: str, payload: dict, out, stop) -> None:
    """Entry point of a spawned worker (module-level so spawn can import it)."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    from core.offline import enforce_offline_env

    enforce_offline_env()
    import torch
    import torch.distributed as dist

    torch.set_num_threads(max(1, int(payload.get("threads", 1))))
    try:
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        if backend == "nccl":
            torch.cuda.set_device(rank)
        device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
        target = {"reward": _reward_worker, "dpo": _dpo_worker}[kind]
        target(rank, world, device, payload, out, stop)
    except BaseException as exc:  # report, then exit non-zero; the parent marks the run failed
        out.put(("error", rank, type(exc).__name__, str(exc)[:2000], traceback.format_exc()[-4000:]))
        raise SystemExit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class _Workers:
    """Starts the ranks and yields rank 0's messages; stops them all on exit."""

    def __init__(self, kind: str, world: int, backend: str, payload: dict):
        ctx = mp.get_context("spawn")
        self.out = ctx.Queue()
        self.stop = ctx.Event()
        port = _free_port()
        self.procs = [
            ctx.Process(
                target=_worker_main, args=(r, world, port, backend, kind, payload, self.out, self.stop), daemon=True
            )
            for r in range(world)
        ]
        for p in self.procs:
            p.start()

    def messages(self, cancel: CancelToken) -> Iterator[tuple]:
        while True:
            if cancel.cancelled:
                self.stop.set()
            try:
                msg = self.out.get(timeout=_POLL_S)
            except queue_mod.Empty:
                dead = [p for p in self.procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a data-parallel worker exited with code {dead[0].exitcode}")
                if all(p.exitcode == 0 for p in self.procs):
                    return
                continue
            if msg[0] == "error":
                _, rank, name, text, tb = msg
                raise RuntimeError(f"data-parallel worker {rank} failed: {name}: {text}\n{tb}")
            yield msg
            if msg[0] in ("done", "cancelled"):
                return

    def close(self) -> None:
        self.stop.set()
        deadline = time.monotonic() + 30
        for p in self.procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(5)


class _Proxy:
    """Rank 0's stand-in for the project: artifacts go to the parent over the queue."""

    def __init__(self, out):
        self.out = out

    def save_artifact(self, run_id, name, files) -> None:
        self.out.put(("artifact", name, dict(files)))


def _flags(stop_local: float, early: float, device):
    """All ranks agree on (cancel, stop early): rank 0's decision, max over ranks."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([stop_local, early], dtype=torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t[0] > 0), bool(t[1] > 0)


def _ddp(DDP, module, device):
    """DDP without per-forward buffer broadcasts (weights are identical on every rank; buffers are
    rotary tables). torch 2.13 renames the flag and warns; the old one still means what we want."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return DDP(module, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)


def _shard(items: list, rank: int, world: int) -> list:
    return items[rank::world]


def _sum_stats(values: list[float], device) -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------------------------------------------
# reward model


def _reward_forward_module(model, pooling: str):
    import torch

    from core.training.reward import sequence_rewards

    class RewardForward(torch.nn.Module):
        """What DDP wraps: the reward model's sequence rewards (sequence_rewards, with the run's pooling)."""

        def __init__(self, inner, pooling):
            super().__init__()
            self.inner, self.pooling = inner, pooling

        def forward(self, input_ids, attention_mask, starts):
            return sequence_rewards(self.inner, input_ids, attention_mask, starts, self.pooling)

    return RewardForward(model, pooling)


def reward_dp_step(trainer, ddp, local: list, n_global: int, world: int, step: int) -> dict[str, float]:
    """One optimizer step on this rank's prompts of the global batch; the same update as
    `RewardTrainer.train_step` on the whole batch in one process. `local` may be empty (a short
    last batch): the rank then runs a zero-weight pass so every rank joins the gradient all-reduce."""
    import torch

    from core.training.reward import _correct, bradley_terry_loss, lr_at

    cfg = trainer.config
    trainer.model.train()
    lr = lr_at(step, trainer.total_steps, cfg)
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    weight = 1.0
    if not local:
        local, weight = [trainer._dp_dummy], 0.0
    size = cfg.prompts_per_micro_batch
    micro = [trainer.batch(local[i : i + size]) for i in range(0, len(local), size)]
    # DDP averages over ranks; × world / n_global makes that average the single-process mean.
    scale = weight * world / n_global
    loss_sum = correct = diff_sum = 0.0
    n_pairs = 0
    for i, b in enumerate(micro):
        ctx = ddp.no_sync() if i < len(micro) - 1 else contextlib.nullcontext()
        with ctx:
            with trainer._autocast():
                rewards = ddp(b.input_ids, b.attention_mask, b.starts)
            group_loss, _, diff = bradley_terry_loss(rewards, b.winners, b.losers, b.margins, b.groups, b.n_prompts)
            loss = group_loss.sum() * scale
            loss.backward()
        loss_sum += float(loss.detach()) / world
        correct += weight * float(_correct(diff.detach()).sum())
        diff_sum += weight * float(diff.detach().sum())
        n_pairs += int(weight) * b.n_pairs
    if cfg.max_grad_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(trainer.params, cfg.max_grad_norm)
    else:
        grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.params if p.grad is not None]))
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    tokens = sum(b.n_tokens for b in micro) if weight else 0
    loss_v, correct, diff_sum, n_pairs, tokens = _sum_stats(
        [loss_sum, correct, diff_sum, n_pairs, tokens], trainer.device
    )
    return {
        "loss/train": loss_v,
        "accuracy/train": correct / max(1, n_pairs),
        "margin/train": diff_sum / max(1, n_pairs),
        "grad/norm": float(grad_norm),
        "lr": lr,
        "_pairs": n_pairs,
        "_tokens": tokens,
    }


def _reward_worker(rank, world, device, payload, out, stop) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from core.training import checkpoint as ckpt
    from core.training.reward import (
        RewardConfig,
        RewardTrainer,
        _save_checkpoint,
        build_reward_model,
        step_examples,
        steps_per_epoch,
    )

    config = RewardConfig.from_dict(payload["config"])
    data = payload["data"]
    total = payload["total"]
    model, tokenizer = build_reward_model(config, device)
    trainer = RewardTrainer(model, tokenizer, config, total, device)
    trainer._dp_dummy = data.train[0]
    state = {"step": 0, "best_acc": -1.0, "best_step": 0, "bad_evals": 0, "stopped_early": False}
    best = None
    files = payload.get("resume")
    if files is not None:
        tensors = ckpt.bytes_to_tensors(files["model.safetensors"])
        ckpt.load_trainable_state(model, {k: v for k, v in tensors.items() if "::" not in k})
        best = {k[len("best::") :]: v for k, v in tensors.items() if k.startswith("best::")} or None
        if best is None and config.restore_best and payload["state"]["best_step"] == payload["state"]["step"] > 0:
            best = {k: v.detach().to("cpu", copy=True) for k, v in ckpt.trainable_state(model).items()}
        ckpt.set_rng_state(tensors)
        ckpt.optimizer_from_files(
            trainer.optimizer, trainer.names, files["optimizer.safetensors"], ckpt.json_load(files["optimizer.json"])
        )
        state = dict(payload["state"])
    ddp = _ddp(DDP, _reward_forward_module(model, config.pooling), device)
    proxy = _Proxy(out)
    step = state["step"]
    t0, pairs_seen, tokens_seen = time.monotonic(), 0, 0
    while step < total and not state["stopped_early"]:
        cancelled, _ = _flags(float(rank == 0 and stop.is_set()), 0.0, device)
        if cancelled:
            if rank == 0:
                _save_checkpoint(proxy, 0, trainer, state, payload["data_ids"], best)
                out.put(("cancelled", step))
            return
        chosen = [ex for mb in step_examples(payload["train"], step, config) for ex in mb]
        metrics = reward_dp_step(trainer, ddp, _shard(chosen, rank, world), len(chosen), world, step)
        step += 1
        pairs_seen += metrics.pop("_pairs")
        tokens_seen += metrics.pop("_tokens")
        elapsed = max(1e-9, time.monotonic() - t0)
        metrics["throughput/pairs_per_s"] = pairs_seen / elapsed
        metrics["throughput/tokens_per_s"] = tokens_seen / elapsed
        metrics["progress/epoch"] = step / steps_per_epoch(len(data.train), config)
        early = 0.0
        if rank == 0 and (step % config.eval_every == 0 or step == total):
            val = trainer.evaluate(data.val)
            metrics.update(val)
            if val["accuracy/val"] > state["best_acc"]:
                state.update(best_acc=val["accuracy/val"], best_step=step, bad_evals=0)
                if config.restore_best:
                    best = {k: v.detach().to("cpu", copy=True) for k, v in ckpt.trainable_state(model).items()}
            else:
                state["bad_evals"] += 1
                if (
                    config.early_stopping_patience
                    and state["bad_evals"] >= config.early_stopping_patience
                    and step >= config.early_stopping_after * total
                ):
                    early = 1.0
        _, stopped = _flags(0.0, early, device)
        state["stopped_early"] = stopped
        state["step"] = step
        if rank == 0:
            out.put(("progress", step, metrics))
            if config.checkpoint_every > 0 and step % config.checkpoint_every == 0 and step < total:
                _save_checkpoint(proxy, 0, trainer, state, payload["data_ids"], best)
    if rank != 0:
        return
    if config.restore_best and best is not None and state["best_step"] != step:
        ckpt.load_trainable_state(model, best)
    final = trainer.evaluate(data.val)
    if data.heldout:
        final.update(trainer.evaluate(data.heldout, prefix="heldout"))
    raw = trainer.raw_scores(data.train)
    offset = float(sum(raw) / len(raw))
    scale = float((sum((r - offset) ** 2 for r in raw) / max(1, len(raw) - 1)) ** 0.5) or 1.0
    out.put(
        (
            "done",
            step,
            state,
            final,
            offset,
            scale,
            tokenizer.pad_token_id,
            ckpt.tensors_to_bytes(ckpt.trainable_state(model)),
        )
    )


def _load_tokenizer_for_reward(config):
    from transformers import AutoTokenizer

    from core.training.reward import _quiet_transformers, ensure_pad_token

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(config.base_model)
        ensure_pad_token(tokenizer)
    return tokenizer


def train_reward_model_dp(
    proj, config, *, cancel: CancelToken = NEVER, resume_run: Optional[int] = None
) -> Iterator[Progress]:
    """`train_reward_model` with `config.gpus` data-parallel processes; same run, metrics and artifacts."""
    from core.training import checkpoint as ckpt
    from core.training.reward import (
        CHECKPOINT,
        FINAL,
        RewardConfig,
        RewardData,
        RewardResult,
        collect_data,
        preflight,
        resolve_device,
        start_summary,
        tokenize,
        total_steps,
        with_off_topic_contrasts,
    )

    resume_files = resume_state = None
    if resume_run is not None:
        run = proj.run(resume_run)
        if run.kind != "reward":
            raise UserError(f"run {resume_run} is a {run.kind} run, not a reward-model run")
        if run.status == "done":
            raise UserError(f"run {resume_run} has already finished; start a new run instead")
        config = RewardConfig.from_saved(run.config)
        run_id = resume_run
        if proj.has_artifact(run_id, CHECKPOINT):
            resume_files = proj.load_artifact(run_id, CHECKPOINT)
            resume_state = ckpt.json_load(resume_files["state.json"])
            data = RewardData.from_ids(ckpt.json_load(resume_files["data.json"]))
        else:
            data = collect_data(proj, config)
        backend = check_world(config.gpus, config.device)
    else:
        if isinstance(config, dict):
            config = RewardConfig.from_dict(config)
        backend = check_world(config.gpus, config.device)
        device = resolve_device(config.device)
        data = collect_data(proj, config)
        pre = preflight(config, data, device)
        config = dataclasses.replace(
            config, quantization=pre["quantization"], gradient_checkpointing=pre["gradient_checkpointing"]
        )
        run_id = proj.create_run("reward", dataclasses.asdict(config))
        proj.update_run(run_id, status="running", summary=start_summary(data, pre, gpus=config.gpus))
    total = total_steps(len(data.train), config)
    start = resume_state["step"] if resume_state else 0
    summary = dict(proj.run(run_id).summary or {})
    summary.pop("error", None)
    workers = None
    try:
        proj.update_run(run_id, status="running", summary=summary)
        yield Progress(start, total, "tokenizing", metrics={"run/id": float(run_id)})
        tokenizer = _load_tokenizer_for_reward(config)
        tokenize(proj, tokenizer, data.train + data.val + data.heldout, config.max_length)
        proj.truncate_metrics(run_id, start)
        proj.audit("training resumed" if resume_state else "training started", run=run_id)
        import torch

        payload = {
            "config": dataclasses.asdict(config),
            "data": data,
            "train": with_off_topic_contrasts(proj, tokenizer, data.train, config),
            "data_ids": data,
            "total": total,
            "threads": max(1, torch.get_num_threads() // config.gpus),
            "resume": resume_files,
            "state": resume_state,
        }
        yield Progress(start, total, f"starting {config.gpus} data-parallel workers", metrics={"run/id": float(run_id)})
        workers = _Workers("reward", config.gpus, backend, payload)
        for msg in workers.messages(cancel):
            if msg[0] == "progress":
                _, step, metrics = msg
                proj.log_metrics(run_id, step, metrics)
                yield Progress(step, total, "training", metrics=metrics)
            elif msg[0] == "artifact":
                proj.save_artifact(run_id, msg[1], msg[2])
            elif msg[0] == "cancelled":
                raise Cancelled()
            elif msg[0] == "done":
                _, step, state, final, offset, scale, pad_id, weights = msg
                meta = {
                    "base_model": config.base_model,
                    "config": dataclasses.asdict(config),
                    "offset": offset,
                    "scale": scale,
                    "pad_token_id": pad_id,
                    "steps": step,
                    "best_step": state["best_step"],
                }
                proj.save_artifact(run_id, FINAL, {"model.safetensors": weights, "reward.json": ckpt.json_bytes(meta)})
                proj.log_metrics(run_id, step, {f"final/{k}": v for k, v in final.items()})
                summary.update({f"final/{k}": v for k, v in final.items()})
                summary.update(
                    {
                        "steps": step,
                        "total_steps": total,
                        "stopped_early": state["stopped_early"],
                        "best_step": state["best_step"],
                        "reward_offset": offset,
                        "reward_scale": scale,
                        "data_hash": data.snapshot_hash,
                    }
                )
                proj.update_run(run_id, status="done", summary=summary)
                proj.audit("trained", run=run_id)
                yield Progress(
                    total,
                    total,
                    "stopped early" if state["stopped_early"] else "done",
                    metrics={"final/steps": float(step), **{f"final/{k}": v for k, v in final.items()}},
                )
                return RewardResult(run_id, step, state["stopped_early"], offset, scale, final)
        raise RuntimeError("the data-parallel workers stopped without finishing")
    except Cancelled:
        proj.update_run(run_id, status="cancelled", summary=summary)
        raise
    except BaseException as exc:
        summary["error"] = type(exc).__name__
        with contextlib.suppress(Exception):
            proj.update_run(run_id, status="failed", summary=summary)
        raise
    finally:
        if workers is not None:
            workers.close()


# ---------------------------------------------------------------------------------------------------
# DPO


def _dpo_forward_module(model, tokenizer, cfg):
    import torch

    from core.training.dpo import sequence_logprobs

    class DPOForward(torch.nn.Module):
        """What DDP wraps: sequence log-probs of (prompt, response) rows."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids, mask, prompt_len: int):
            return sequence_logprobs(self.inner, ids, mask, prompt_len)

    return DPOForward(model)


def dpo_dp_step(trainer, ddp, world: int) -> dict[str, float]:
    """`DPOTrainer.step` (without the sampling evaluation) with this rank's slice of the batch."""
    import torch.distributed as dist

    from core.training.dpo import dpo_loss, encode_pairs
    from core.training.policy_common import batch_indices, clip_and_step, prompt_budget

    cfg = trainer.cfg
    rank = dist.get_rank()
    t0 = time.perf_counter()
    idx = batch_indices(len(trainer.pairs), cfg.batch_size, trainer.step_count, cfg.seed)
    local, weight = _shard(idx, rank, world), 1.0
    if not local:
        local, weight = idx[:1], 0.0
    n_global = len(idx)
    mbs = [local[i : i + cfg.minibatch_size] for i in range(0, len(local), cfg.minibatch_size)]
    loss_sum, chosen_sum, rejected_sum, margin_pos, n = 0.0, 0.0, 0.0, 0.0, 0.0
    for i, mb in enumerate(mbs):
        ctx = ddp.no_sync() if i < len(mbs) - 1 else contextlib.nullcontext()
        with ctx:
            ids, mask, P = encode_pairs(
                trainer.tokenizer,
                [trainer.pairs[j] for j in mb],
                prompt_budget(trainer.policy.model, cfg),
                cfg.max_new_tokens,
                trainer.device,
            )
            lp = ddp(ids, mask, P)
            k = len(mb)
            out = dpo_loss(
                lp[:k], lp[k:], trainer.ref_chosen[mb], trainer.ref_rejected[mb], cfg.dpo_beta, cfg.label_smoothing
            )
            loss = out["loss"] * k * weight * world / n_global  # DDP's average = the batch mean
            loss.backward()
        loss_sum += float(loss.detach()) / world
        chosen_sum += weight * float(out["chosen"].sum())
        rejected_sum += weight * float(out["rejected"].sum())
        margin_pos += weight * float((out["chosen"] > out["rejected"]).float().sum())
        n += weight * k
    grad_norm = clip_and_step(trainer.optimizer, trainer.params, cfg.max_grad_norm)
    trainer.step_count += 1
    train_s = time.perf_counter() - t0
    loss_v, chosen_sum, rejected_sum, margin_pos, n = _sum_stats(
        [loss_sum, chosen_sum, rejected_sum, margin_pos, n], trainer.device
    )
    return {
        "loss/policy": loss_v,
        "dpo/reward_chosen": chosen_sum / max(n, 1),
        "dpo/reward_rejected": rejected_sum / max(n, 1),
        "dpo/reward_margin": (chosen_sum - rejected_sum) / max(n, 1),
        "dpo/accuracy": margin_pos / max(n, 1),
        "policy/grad_norm": float(grad_norm),
        "kl/beta": cfg.dpo_beta,
        "perf/train_s": train_s,
        "perf/samples_per_s": n_global / max(train_s, 1e-9),
    }


def _dpo_worker(rank, world, device, payload, out, stop) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from core.training.dpo import DPOTrainer, PairText
    from core.training.policy_config import PolicyConfig
    from core.training.policy_job import build_policy, final_files

    cfg = PolicyConfig.from_dict(payload["config"])
    cfg.device = str(device)
    policy, tokenizer = build_policy(cfg)
    pairs = [PairText(*p) for p in payload["pairs"]]
    trainer = DPOTrainer(policy, tokenizer, cfg, pairs, reward_fn=None)
    if payload.get("resume") is not None:
        trainer.restore(payload["resume"])
    ddp = _ddp(DDP, _dpo_forward_module(policy.model, tokenizer, cfg), device)
    while trainer.step_count < cfg.total_steps:
        cancelled, _ = _flags(float(rank == 0 and stop.is_set()), 0.0, device)
        if cancelled:
            if rank == 0:
                out.put(("artifact", "checkpoint", trainer.checkpoint_files()))
                out.put(("cancelled", trainer.step_count))
            return
        metrics = dpo_dp_step(trainer, ddp, world)
        n = trainer.step_count
        samples = []
        if rank == 0:
            if cfg.dpo_eval_every and (n % cfg.dpo_eval_every == 0 or n == 1):
                exp = trainer.evaluate()  # sampling on rank 0 only; no collectives inside
                ev = trainer.experience_metrics(exp)
                ev.pop("reward/mean", None), ev.pop("reward/std", None)
                metrics.update(ev)
                metrics["kl/beta"] = cfg.dpo_beta
                if cfg.log_samples_every and (n % cfg.log_samples_every == 0 or n == 1):
                    samples = trainer.sample_rows(exp, cfg.samples_shown)
            out.put(("progress", n, metrics, samples))
            if cfg.checkpoint_every and n % cfg.checkpoint_every == 0 and n < cfg.total_steps:
                out.put(("artifact", "checkpoint", trainer.checkpoint_files()))
    if rank == 0:
        out.put(("artifact", "checkpoint", trainer.checkpoint_files()))
        out.put(("done", trainer.step_count, final_files(cfg, trainer)))


def train_dpo_dp(proj, config, *, cancel: CancelToken = NEVER, resume_run: Optional[int] = None) -> Iterator[Progress]:
    """DPO with `config.gpus` data-parallel processes; same run record and artifacts as `train_policy`."""
    import json

    import torch

    from core.training.policy_config import PolicyConfig
    from core.training.policy_job import (
        CHECKPOINT,
        DATA,
        FINAL,
        PolicyResult,
        _dpo_pairs,
        _hash,
        collect_ids,
        resolve_reply_length,
    )
    from core.training.quantization import resolve_policy_plan

    resume_files = None
    if resume_run is not None:
        run = proj.run(resume_run)
        cfg = PolicyConfig.from_dict(run.config["policy"])
        run_id = resume_run
        ids = json.loads(proj.load_artifact(run_id, DATA)["data.json"])
        if proj.has_artifact(run_id, CHECKPOINT):
            resume_files = proj.load_artifact(run_id, CHECKPOINT)
    else:
        cfg = (PolicyConfig.from_dict(config) if isinstance(config, dict) else config).validate()
        if not cfg.policy_path:
            raise UserError("Choose the policy's base model folder (policy_path).")
        cfg, plan = resolve_policy_plan(resolve_reply_length(proj, cfg), proj)
        ids = collect_ids(proj, cfg)
        provenance = {
            "data_hash": _hash(ids),
            "n_prompts": len(ids["prompt_ids"]),
            "n_pairs": len(ids.get("pairs", [])),
            "reward_run": None,
            "reward_function": None,
            "memory_plan": plan.describe() if plan else None,
            "gpus": cfg.gpus,
        }
        run_id = proj.create_run("policy", {"policy": cfg.to_dict(), "provenance": provenance})
        proj.save_artifact(run_id, DATA, {"data.json": json.dumps(ids).encode()})
    backend = check_world(cfg.gpus, cfg.device)
    summary = dict(proj.run(run_id).summary or {})
    workers = None
    try:
        proj.update_run(run_id, status="running", summary=summary)
        yield Progress(0, cfg.total_steps, "loading the pairs", metrics={"run/id": float(run_id)})
        pairs = [(p.prompt, p.chosen, p.rejected) for p in _dpo_pairs(proj, ids["pairs"])]
        payload = {
            "config": cfg.to_dict(),
            "pairs": pairs,
            "resume": resume_files,
            "threads": max(1, torch.get_num_threads() // cfg.gpus),
        }
        start = 0
        if resume_files is not None:
            start = int(json.loads(resume_files["state.json"])["step"]) if "state.json" in resume_files else 0
        proj.truncate_metrics(run_id, start)
        yield Progress(
            start, cfg.total_steps, f"starting {cfg.gpus} data-parallel workers", metrics={"run/id": float(run_id)}
        )
        workers = _Workers("dpo", cfg.gpus, backend, payload)
        metrics: dict = {}
        for msg in workers.messages(cancel):
            if msg[0] == "progress":
                _, n, metrics, samples = msg
                proj.log_metrics(run_id, n, metrics)
                if samples:
                    proj.log_samples(run_id, n, samples)
                yield Progress(n, cfg.total_steps, f"dpo step {n}", metrics=metrics, samples=samples)
            elif msg[0] == "artifact":
                proj.save_artifact(run_id, CHECKPOINT if msg[1] == "checkpoint" else msg[1], msg[2])
            elif msg[0] == "cancelled":
                raise Cancelled()
            elif msg[0] == "done":
                _, n, files = msg
                proj.save_artifact(run_id, FINAL, files)
                summary.update({"steps": n, "final": metrics})
                proj.update_run(run_id, status="done", summary=summary)
                proj.audit("trained", run=run_id, kind="policy", algo="dpo")
                return PolicyResult(run_id, n, metrics)
        raise RuntimeError("the data-parallel workers stopped without finishing")
    except Cancelled:
        proj.update_run(run_id, status="cancelled", summary=summary)
        raise
    except BaseException as exc:
        summary["error"] = type(exc).__name__
        with contextlib.suppress(Exception):
            proj.update_run(run_id, status="failed", summary=summary)
        raise
    finally:
        if workers is not None:
            workers.close()


def wants_data_parallel(config: Any, proj=None, resume_run: Optional[int] = None, key: Optional[str] = None) -> bool:
    """True when the run (new, or the one being resumed) asks for more than one process."""
    if resume_run is not None and proj is not None:
        values = proj.run(resume_run).config or {}
        values = values.get(key, values) if key else values
        return int(values.get("gpus", 1) or 1) > 1
    if isinstance(config, dict):
        return int(config.get("gpus", 1) or 1) > 1
    return int(getattr(config, "gpus", 1) or 1) > 1
