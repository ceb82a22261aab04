"""vLLM as an optional rollout engine (PolicyConfig.rollout_engine="vllm"), used only when installed.

The default rollout path is the project's static-KV-cache sampler (core/models/generation.py); vLLM is
an opt-in for large GPU runs. The engine is built once per base-model folder, in this process, on the
policy's GPU, and before every rollout batch the policy's current weights (LoRA merged in, without
touching the trained adapters) are copied into it, so samples always come from the policy being trained.
Only token ids leave vLLM: the log-probs PPO/RLOO need are recomputed by the trainer's own forward
pass, so the algorithm is the same whichever engine sampled.

Honest status: vLLM needs a CUDA GPU and is not installed in CI; this path is import-guarded and is
exercised by bench/gpu_run.sh only where vLLM is present. Its sampler is not bit-identical to ours, so
a run resumed with another engine samples differently (still correct, not reproducible).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from core.errors import UserError

_ENGINES: dict[str, Any] = {}


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _engine(path: str, dtype: str, memory_fraction: float):
    if not vllm_available():
        raise UserError(
            "rollout_engine=vllm needs the vllm package (pip install vllm); use rollout_engine=static (the default)."
        )
    if path not in _ENGINES:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # same process: weights can be loaded
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")  # offline, no telemetry
        from vllm import LLM

        _ENGINES[path] = LLM(
            model=path, dtype=dtype, gpu_memory_utilization=memory_fraction, enforce_eager=False, seed=0
        )
    return _ENGINES[path]


def merged_state_dict(model) -> dict:
    """The policy's current weights as a plain causal LM state dict (LoRA merged, then unmerged)."""
    if hasattr(model, "merge_adapter"):
        model.merge_adapter()
        try:
            inner = model.get_base_model()
            sd = {
                k.replace(".base_layer", ""): v.detach().clone()
                for k, v in inner.state_dict().items()
                if "lora_" not in k
            }
        finally:
            model.unmerge_adapter()
        return sd
    return {k: v.detach() for k, v in model.state_dict().items()}


def sync_weights(llm, model) -> None:
    weights = list(merged_state_dict(model).items())
    if hasattr(llm, "apply_model"):  # recent vLLM
        llm.apply_model(lambda m: m.load_weights(weights))
        return
    try:  # the in-process V0 engine
        llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights(weights)
    except AttributeError as exc:
        raise UserError(
            "this vLLM version offers no way to load updated weights in-process; use rollout_engine=static"
        ) from exc


def sample_with_vllm(model, tokenizer, input_ids, attention_mask, settings, memory_fraction: float = 0.3):
    """Like generation.sample for rollouts: (B, P) left-padded prompts -> SampleOutput (no log-probs)."""
    import torch

    from core.models.generation import _finish, eos_token_ids

    from vllm import SamplingParams

    path = getattr(model, "name_or_path", None) or model.config._name_or_path
    dtype = "bfloat16" if next(model.parameters()).dtype == torch.bfloat16 else "float32"
    llm = _engine(path, dtype, memory_fraction)
    sync_weights(llm, model)
    prompts = [{"prompt_token_ids": row[m.bool()].tolist()} for row, m in zip(input_ids, attention_mask)]
    params = SamplingParams(
        temperature=settings.temperature,
        top_p=settings.top_p or 1.0,
        top_k=settings.top_k or -1,
        max_tokens=settings.max_new_tokens,
        seed=settings.seed,
    )
    outs = llm.generate(prompts, params, use_tqdm=False)
    pad = tokenizer.pad_token_id
    width = max(1, max(len(o.outputs[0].token_ids) for o in outs))
    tokens = torch.full((len(outs), width), pad, dtype=torch.long)
    for i, o in enumerate(outs):
        ids = list(o.outputs[0].token_ids)
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return _finish(
        tokenizer, input_ids, tokens.to(input_ids.device), eos_token_ids(model, tokenizer), pad, None, "vllm"
    )
