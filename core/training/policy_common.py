"""Shared infrastructure for policy optimisation (PPO, RLOO/GRPO, DPO).

Batch layout used everywhere in this package (one row per sample):

    input_ids      (B, P + R)   [left-padded prompt | response, right-padded after its EOS]
    attention_mask (B, P + R)   1 on real prompt tokens and on response tokens up to and including EOS
    response_mask  (B, R)       the response part of attention_mask

P is the padded prompt width, so the response always starts at column P. The log-prob of response token
t comes from the logits at column P + t - 1. Position ids are cumsum(mask) - 1 so that a left-padded
prompt gets the same positions as the same prompt alone; without that, batching changes the numbers.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from core.errors import UserError

# --------------------------------------------------------------------------------------------------
# Masked statistics
# --------------------------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n > 1:  # Bessel's correction, as in the reference PPO implementations
            var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise to unit variance over the masked entries (and zero mean unless shift_mean=False)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Log-probs, entropy and values of response tokens
# --------------------------------------------------------------------------------------------------


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T): 0, 1, 2... counted over real tokens only; pads get 1 (never attended to)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, R, V), (B, R) -> (B, R): log softmax picked at the labels, in float32 for accuracy."""
    logits = logits.float()
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, R, V) -> (B, R)."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class ValueHead(nn.Module):
    """A scalar per position from the policy's final hidden states (a critic sharing the backbone)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        # Small init keeps the first value predictions near 0, so the first value loss is sane.
        nn.init.normal_(self.summary.weight, std=1.0 / np.sqrt(hidden_size + 1))
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


class ValueModel(nn.Module):
    """A separate critic: a transformer backbone and a linear head, read at every position.

    Built from a reward model (AutoModelForSequenceClassification) so the critic starts from the reward
    model's knowledge, as in InstructGPT; `backbone` is the reward model's base model, `head` its score.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    @classmethod
    def from_reward_model(cls, reward_model: nn.Module) -> "ValueModel":
        rm = copy.deepcopy(reward_model)
        if hasattr(rm, "merge_and_unload"):  # a peft reward model: the critic trains fully
            rm = rm.merge_and_unload()
        backbone = getattr(rm, rm.base_model_prefix)
        head = rm.score if hasattr(rm, "score") else rm.get_output_embeddings()
        model = cls(backbone, head)
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def forward(self, input_ids, attention_mask, position_ids):  # -> (B, T)
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        )
        hidden = out.last_hidden_state
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()


@contextlib.contextmanager
def _capture_lm_head_input(model: nn.Module) -> Iterator[list]:
    """Collects the input of the LM head: the final (normed) hidden states, whatever the architecture."""
    captured: list[torch.Tensor] = []
    handle = model.get_output_embeddings().register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        yield captured
    finally:
        handle.remove()


@dataclass
class ForwardOut:
    logprobs: torch.Tensor  # (B, R) float32
    entropy: Optional[torch.Tensor] = None  # (B, R)
    values: Optional[torch.Tensor] = None  # (B, R)
    logits: Optional[torch.Tensor] = None  # (B, R, V), temperature-scaled


def forward_response(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_len: int,
    temperature: float = 1.0,
    *,
    value_head: Optional[ValueHead] = None,
    with_entropy: bool = False,
    keep_logits: bool = False,
) -> ForwardOut:
    """Log-probs (and optionally entropy and head values) of the response tokens.

    The logits are divided by the sampling temperature before the softmax: the ratio and the KL must be
    computed under the distribution the tokens were sampled from, or PPO's first ratio is not 1.
    """
    R = input_ids.shape[1] - prompt_len
    position_ids = position_ids_from_mask(attention_mask)
    with contextlib.ExitStack() as stack:
        captured = stack.enter_context(_capture_lm_head_input(model)) if value_head is not None else None
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=R + 1,
        )
    logits = out.logits[:, :-1] / temperature  # (B, R, V): column j predicts response token j
    labels = input_ids[:, prompt_len:]
    result = ForwardOut(logprobs=logprobs_from_logits(logits, labels))
    if with_entropy:
        result.entropy = entropy_from_logits(logits)
    if value_head is not None:
        hidden = captured[-1]  # (B, R + 1, H) because of logits_to_keep
        result.values = value_head(hidden[:, :-1]).float()
    if keep_logits:
        result.logits = logits
    return result


def value_model_values(value_model: ValueModel, input_ids, attention_mask, prompt_len: int) -> torch.Tensor:
    """(B, R) values of the states before each response token, from a separate critic."""
    values = value_model(input_ids, attention_mask, position_ids_from_mask(attention_mask))
    return values[:, prompt_len - 1 : -1]


@torch.no_grad()
def batched_forward(fn: Callable[[slice], Any], n: int, batch_size: int) -> list:
    """Run `fn` on slices of the batch so big rollouts don't need one huge forward pass."""
    return [fn(slice(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]


# --------------------------------------------------------------------------------------------------
# Prompts and rollouts
# --------------------------------------------------------------------------------------------------


def render_prompt(tokenizer, prompt) -> str:
    """The text the model sees for a prompt (chat template rules live in core.models.loading)."""
    from core.models.loading import format_prompt

    return format_prompt(tokenizer, prompt)


def encode_prompts(tokenizer, prompts: Sequence, max_prompt_tokens: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, P) ids and mask; long prompts keep their end (where the question usually is)."""
    from core.models.loading import encode_batch

    batch = encode_batch(tokenizer, list(prompts), max_tokens=max_prompt_tokens or None, device=device)
    return batch["input_ids"], batch["attention_mask"]


def prompt_budget(model, cfg) -> int:
    """Prompt tokens kept: cfg.max_prompt_tokens, cut so prompt + response fits the model's positions."""
    from core.models.loading import max_positions

    limit = max_positions(model.config)
    if limit is None:
        return cfg.max_prompt_tokens
    if limit - cfg.max_new_tokens < 8:
        raise UserError(
            f"max_new_tokens ({cfg.max_new_tokens}) leaves no room for the prompt in this model's "
            f"{limit}-token context; lower it."
        )
    return min(cfg.max_prompt_tokens, limit - cfg.max_new_tokens)


def response_mask_after_eos(response_ids: torch.Tensor, eos: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, R) -> mask of tokens up to and including the first EOS, and whether each row has an EOS.

    Computed from the first EOS rather than `ids != pad` because the pad id can be a real sampled token.
    """
    is_eos = torch.isin(response_ids, torch.tensor(list(eos), device=response_ids.device))
    seen_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~seen_before).long(), is_eos.any(-1)


@dataclass
class Rollout:
    sequences: torch.Tensor  # (B, P + R)
    attention_mask: torch.Tensor  # (B, P + R)
    response_ids: torch.Tensor  # (B, R), pad after EOS
    response_mask: torch.Tensor  # (B, R)
    has_eos: torch.Tensor  # (B,) bool
    texts: list[str]
    prompt_len: int


@torch.no_grad()
def generate_rollout(
    model,
    tokenizer,
    input_ids,
    attention_mask,
    *,
    temperature: float,
    max_new_tokens: int,
    seed: Optional[int] = None,
    engine: str = "static",
) -> Rollout:
    """Sample one response per row of (left-padded) prompts, pure sampling (top-k 0, top-p 1).

    Uses the project's batched static-KV-cache sampler; `seed` makes a step's samples reproducible,
    which is what lets a resumed run continue exactly.
    """
    from core.models.generation import SamplingSettings, eos_token_ids, sample

    settings = SamplingSettings(temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens, seed=seed)
    if engine == "vllm":  # optional engine (core/models/vllm_engine.py); weights synced before sampling
        from core.models.vllm_engine import sample_with_vllm

        out = sample_with_vllm(model, tokenizer, input_ids, attention_mask, settings)
    else:  # "static" (CUDA graph on a GPU) or "compiled" (torch.compile of the decode step)
        out = sample(model, tokenizer, input_ids, attention_mask, settings, compile=engine == "compiled")
    response_ids = out.response_ids
    if response_ids.shape[1] == 0:  # nothing generated at all; keep one column so shapes stay sane
        response_ids = torch.full((input_ids.shape[0], 1), tokenizer.eos_token_id, device=input_ids.device)
    resp_mask, has_eos = response_mask_after_eos(response_ids, eos_token_ids(model, tokenizer))
    return Rollout(
        sequences=torch.cat([input_ids, response_ids], 1),
        attention_mask=torch.cat([attention_mask, resp_mask], 1),
        response_ids=response_ids,
        response_mask=resp_mask,
        has_eos=has_eos,
        texts=out.texts,
        prompt_len=input_ids.shape[1],
    )


# --------------------------------------------------------------------------------------------------
# Models: loading, LoRA / freezing / full, the reference
# --------------------------------------------------------------------------------------------------


def load_policy_model(path: str, device: Optional[str] = None, dtype: Optional[str] = None, quantization: str = "none"):
    """A local causal LM and its tokenizer (left padding, pad distinct from EOS), with no network."""
    from core.models.loading import load_model, pick_device, pick_dtype

    dev = pick_device(None if device in (None, "auto") else device)
    if dtype in (None, "auto"):
        dt = pick_dtype(dev)
    else:
        dt = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
        }[dtype]
    # Our own pre-flight (below) knows the training mode and batch; skip the loader's generic check.
    model, tokenizer = load_model(
        path, device=dev, dtype=dt, training=False, check_memory=False, quantization=quantization
    )
    disable_dropout(model)
    return model, tokenizer


def disable_dropout(model: nn.Module) -> None:
    """RL needs the same function when sampling and when training: dropout would break ratio == 1."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    model.eval()


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks, found by shape rather than by architecture name."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise UserError("Cannot find this model's layers to freeze; use LoRA or full fine-tuning.")


def freeze_bottom_layers(model: nn.Module, n_frozen: int) -> None:
    """Freeze the embeddings and the first n_frozen blocks; the rest trains."""
    blocks = transformer_blocks(model)
    for p in model.parameters():
        p.requires_grad_(True)
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for block in list(blocks)[:n_frozen]:
        for p in block.parameters():
            p.requires_grad_(False)
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        # Tied embeddings: freezing the input side freezes the output too; that is intended.
        pass


def apply_lora(model: nn.Module, r: int, alpha: int, dropout: float = 0.0, target_modules="all-linear"):
    from peft import LoraConfig

    from core.models.loading import lora_fan_in_fan_out, wrap_with_lora

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        bias="none",
        task_type="CAUSAL_LM",
        fan_in_fan_out=lora_fan_in_fan_out(model),
    )
    peft_model = wrap_with_lora(model, config)
    peft_model.eval()
    return peft_model


class PolicyWithReference:
    """The policy and a way to evaluate the frozen reference.

    With LoRA the reference is the same network with its adapters switched off (no second copy in
    memory); otherwise it is a frozen copy made before training starts.
    """

    def __init__(self, model: nn.Module, mode: str, *, lora_r: int = 16, lora_alpha: int = 32, freeze_layers: int = 0):
        self.mode = mode
        if mode == "lora":
            self.model = apply_lora(model, lora_r, lora_alpha)
            self.ref_model = None
        elif mode in ("full", "freeze"):
            self.ref_model = copy.deepcopy(model).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
            self.model = model
            if mode == "freeze":
                freeze_bottom_layers(model, freeze_layers)
            else:
                for p in model.parameters():
                    p.requires_grad_(True)
        else:
            raise UserError(f"Unknown training mode {mode!r}: use lora, freeze or full.")
        disable_dropout(self.model)

    @contextlib.contextmanager
    def reference(self) -> Iterator[nn.Module]:
        if self.ref_model is None:
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.ref_model

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]


# --------------------------------------------------------------------------------------------------
# Memory pre-flight and out-of-memory handling
# --------------------------------------------------------------------------------------------------


def estimate_training_bytes(
    n_params: int,
    bytes_per_param: int,
    mode: str,
    *,
    n_trainable: int,
    batch_tokens: int,
    hidden: int,
    layers: int,
    vocab: int,
) -> int:
    """A rough upper estimate: weights, reference copy, grads + Adam state, activations, logits."""
    weights = n_params * bytes_per_param
    reference = 0 if mode == "lora" else weights
    optim = n_trainable * (4 + 4 + 4 + bytes_per_param)  # fp32 exp_avg, exp_avg_sq, master-ish grad
    activations = batch_tokens * hidden * layers * 16 * bytes_per_param
    logits = batch_tokens * vocab * 4 * 3  # float32 logits, softmax and grad
    return int(weights + reference + optim + activations + logits)


def preflight_memory(
    model: nn.Module,
    device: torch.device,
    mode: str,
    *,
    batch_size: int,
    seq_len: int,
    n_trainable: Optional[int] = None,
) -> dict:
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    n_train = n_params if n_trainable is None else n_trainable
    bpp = next(model.parameters()).element_size()
    need = estimate_training_bytes(
        n_params,
        bpp,
        mode,
        n_trainable=n_train,
        batch_tokens=batch_size * seq_len,
        hidden=getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0),
        layers=getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0),
        vocab=getattr(cfg, "vocab_size", 0),
    )
    from core.models.loading import available_memory

    have = available_memory(device)
    if need > have:
        hint = "switch the training mode to LoRA, " if mode != "lora" else ""
        raise UserError(
            f"Not enough memory on {device.type}: this run needs about {need / 2**30:.1f} GiB and "
            f"{have / 2**30:.1f} GiB is free. Try: {hint}a smaller batch size, or shorter responses."
        )
    return {"need_bytes": need, "free_bytes": have}


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


OOM_ADVICE = (
    "Out of memory during training. The run stopped and can be resumed from its last checkpoint "
    "with smaller settings: use LoRA, halve the batch or minibatch size, or shorten the "
    "maximum response length."
)


# --------------------------------------------------------------------------------------------------
# Optimisation helpers
# --------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings of a phase are that phase's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clip_and_step(
    optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], max_grad_norm: float
) -> torch.Tensor:
    """Clip, step, zero; returns the pre-clip norm as a tensor (no host sync inside the loop)."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm.detach()


def stats_to_floats(stats: list[dict]) -> list[dict]:
    """Per-minibatch tensors -> floats, with one host sync at the end of the update."""
    if not stats:
        return stats
    keys = list(stats[0])
    flat = torch.stack([torch.stack([s[k].float().reshape(()) for k in keys]) for s in stats]).cpu().tolist()
    return [dict(zip(keys, row)) for row in flat]


def padding_slices(attention_mask: torch.Tensor, prompt_len: int) -> tuple[slice, slice, int]:
    """(B, P + R) -> (columns, response columns, prompt length) of a minibatch without the leading prompt
    columns that are padding in every row and the response columns past its longest reply. Dropping them
    changes no real token's output (positions come from the mask; attention is causal and masked)."""
    lead = prompt_len - int(attention_mask[:, :prompt_len].sum(1).max())
    width = max(1, int(attention_mask[:, prompt_len:].sum(1).max()))
    return slice(lead, prompt_len + width), slice(0, width), prompt_len - lead


def minibatches(n: int, minibatch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, minibatch_size):
        yield perm[i : i + minibatch_size]


# --------------------------------------------------------------------------------------------------
# Checkpoints: safetensors bytes for tensors, JSON for the rest (never pickle)
# --------------------------------------------------------------------------------------------------


def _st_save(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})


def _st_load(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)


def optimizer_to_bytes(optimizer: torch.optim.Optimizer) -> tuple[bytes, bytes]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    meta = {"param_groups": state["param_groups"], "scalars": scalars}
    return _st_save(tensors) if tensors else b"", json.dumps(meta).encode()


def optimizer_from_bytes(optimizer: torch.optim.Optimizer, tensor_bytes: bytes, meta_bytes: bytes) -> None:
    meta = json.loads(meta_bytes)
    tensors = _st_load(tensor_bytes) if tensor_bytes else {}
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    return meta, tensors


def set_rng_state(meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    missing = [k for k in tensors if k not in params]
    if missing:
        raise UserError(f"Checkpoint does not match this model ({len(missing)} unknown weights).")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def pack_checkpoint(
    *,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    value: Optional[nn.Module] = None,
    generator: Optional[torch.Generator] = None,
) -> dict[str, bytes]:
    """Everything a resume needs, as named byte blobs for `proj.save_artifact`."""
    opt_tensors, opt_meta = optimizer_to_bytes(optimizer)
    rng_meta, rng_tensors = rng_state()
    if generator is not None:
        rng_tensors["minibatch"] = generator.get_state()
    files = {
        "policy.safetensors": _st_save(trainable_state(policy)),
        "optimizer.safetensors": opt_tensors,
        "optimizer.json": opt_meta,
        "rng.safetensors": _st_save(rng_tensors),
        "state.json": json.dumps({**state, "rng": rng_meta}).encode(),
    }
    if value is not None:
        files["value.safetensors"] = _st_save(trainable_state(value))
    return files


def unpack_checkpoint(
    files: dict[str, bytes],
    *,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    value: Optional[nn.Module] = None,
    generator: Optional[torch.Generator] = None,
) -> dict:
    """Restore weights, optimizer and RNGs in place; returns the JSON state (step, KL coef...)."""
    load_trainable_state(policy, _st_load(files["policy.safetensors"]))
    if value is not None and "value.safetensors" in files:
        load_trainable_state(value, _st_load(files["value.safetensors"]))
    optimizer_from_bytes(optimizer, files["optimizer.safetensors"], files["optimizer.json"])
    state = json.loads(files["state.json"])
    rng_tensors = _st_load(files["rng.safetensors"])
    set_rng_state(state.pop("rng"), rng_tensors)
    if generator is not None and "minibatch" in rng_tensors:
        generator.set_state(rng_tensors["minibatch"])
    return state


# --------------------------------------------------------------------------------------------------
# Experience: rollouts scored by the reward and by the reference (shared by PPO, RLOO and GRPO)
# --------------------------------------------------------------------------------------------------


@dataclass
class Experience:
    rollout: Rollout
    scores: torch.Tensor  # (B,) reward after the missing-EOS penalty
    parts: dict[str, torch.Tensor]  # reward components, (B,) each
    logprobs: torch.Tensor  # (B, R) under the sampling policy
    ref_logprobs: torch.Tensor  # (B, R) under the reference
    prompts: list
    references: list
    values: Optional[torch.Tensor] = None  # (B, R), PPO only
    timings: dict[str, float] = None

    @property
    def mask(self) -> torch.Tensor:
        return self.rollout.response_mask

    @property
    def kl(self) -> torch.Tensor:
        """(B, R) per-token k1 estimate log pi - log ref, zero on padding."""
        return (self.logprobs - self.ref_logprobs) * self.mask


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A permutation of range(n) that depends only on (seed, epoch): resumes draw the same batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices for training step `step` (0-based), walking through shuffled epochs of n items."""
    per_epoch = max(1, n // batch_size) if n >= batch_size else 1
    epoch, k = divmod(step, per_epoch)
    order = epoch_order(n, seed, epoch)
    if n < batch_size:
        return [order[i % n] for i in range(batch_size)]
    return order[k * batch_size : (k + 1) * batch_size]


class TrainerBase:
    """What every policy trainer shares: device, optimizer, KL controller, step counter, checkpoints."""

    def __init__(self, policy: PolicyWithReference, tokenizer, cfg, reward_fn=None):
        from core.training.policy_config import kl_controller

        self.policy, self.tokenizer, self.cfg, self.reward_fn = policy, tokenizer, cfg, reward_fn
        self.device = next(policy.model.parameters()).device
        self.kl_ctl = kl_controller(cfg)
        self.step_count = 0
        self.minibatch_gen = torch.Generator().manual_seed(cfg.seed)
        self.minibatch_stats: list[dict] = []  # per gradient step of the latest training step
        self.extra_modules: list[nn.Module] = []  # value head / value model

    def make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for _, p in self.policy.trainable_named_parameters()]
        for m in self.extra_modules:
            params += [p for p in m.parameters() if p.requires_grad]
        if not params:
            raise UserError("Nothing to train: every weight is frozen. Freeze fewer layers or use LoRA.")
        self.params = params
        return torch.optim.AdamW(
            params, lr=self.cfg.learning_rate, eps=self.cfg.adam_eps, weight_decay=self.cfg.weight_decay
        )

    # -- experience ---------------------------------------------------------------------------------

    @torch.no_grad()
    def collect(self, prompts: list, references: list, value_fn=None) -> Experience:
        """Sample, score with the reward and the reference, and record the sampling log-probs."""
        import time

        from core.training.hybrid_reward import RewardBatch, score

        cfg, model = self.cfg, self.policy.model
        t0 = time.perf_counter()
        ids, mask = encode_prompts(self.tokenizer, prompts, prompt_budget(model, cfg), self.device)
        ro = generate_rollout(
            model,
            self.tokenizer,
            ids,
            mask,
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=cfg.seed * 1_000_003 + self.step_count,
            engine=getattr(cfg, "rollout_engine", "static"),
        )
        sync(self.device)
        t1 = time.perf_counter()
        batch = RewardBatch(
            prompts=list(prompts),
            responses=ro.texts,
            response_ids=[r[m.bool()].tolist() for r, m in zip(ro.response_ids, ro.response_mask)],
            references=list(references),
            has_eos=ro.has_eos.tolist(),
        )
        if self.reward_fn is None:  # DPO without a reward model: KL and length charts only
            scores, parts = torch.zeros(len(prompts)), {}
        else:
            scores, parts = score(self.reward_fn, batch)
        scores = scores.to(self.device)
        if cfg.missing_eos_penalty:
            scores = scores - cfg.missing_eos_penalty * (~ro.has_eos).float()
        t2 = time.perf_counter()
        n, P, fb = len(prompts), ro.prompt_len, cfg.forward_batch_size
        seq, am = ro.sequences, ro.attention_mask

        def pol(s):
            return forward_response(
                model, seq[s], am[s], P, cfg.temperature, value_head=getattr(self, "value_head", None)
            )

        outs = batched_forward(pol, n, fb)
        logprobs = torch.cat([o.logprobs for o in outs])
        values = torch.cat([o.values for o in outs]) if outs[0].values is not None else None
        with self.policy.reference() as ref:
            ref_lp = torch.cat(
                [
                    o.logprobs
                    for o in batched_forward(lambda s: forward_response(ref, seq[s], am[s], P, cfg.temperature), n, fb)
                ]
            )
        if value_fn is not None:  # a separate critic
            values = torch.cat(batched_forward(lambda s: value_fn(seq[s], am[s], P), n, fb))
        rmask = ro.response_mask
        sync(self.device)
        t3 = time.perf_counter()
        return Experience(
            rollout=ro,
            scores=scores,
            parts=parts,
            logprobs=logprobs * rmask,
            ref_logprobs=ref_lp * rmask,
            values=None if values is None else values * rmask,
            prompts=list(prompts),
            references=list(references),
            timings={"generate": t1 - t0, "score": (t2 - t1) + (t3 - t2)},
        )

    def experience_metrics(self, exp: Experience) -> dict[str, float]:
        m = exp.mask.float()
        metrics = {
            "reward/mean": float(exp.scores.mean()),
            "reward/std": float(exp.scores.std()) if len(exp.scores) > 1 else 0.0,
            "kl/mean": float(exp.kl.sum(1).mean()),
            "kl/beta": float(self.kl_ctl.value),
            "response/length": float(m.sum(1).mean()),
            "response/eos_rate": float(exp.rollout.has_eos.float().mean()),
        }
        for name, values in exp.parts.items():
            metrics[name] = float(values.mean())
        return metrics

    def sample_rows(self, exp: Experience, n: int) -> list[dict]:
        """Rows for the live sample table: prompt, response, and the parts of its reward."""
        rows = []
        for i in range(min(n, len(exp.prompts))):
            row = {
                "prompt": exp.prompts[i]
                if isinstance(exp.prompts[i], str)
                else render_prompt(self.tokenizer, exp.prompts[i]),
                "response": exp.rollout.texts[i],
                "reward": round(float(exp.scores[i]), 4),
                "kl": round(float(exp.kl[i].sum()), 4),
            }
            for name, values in exp.parts.items():
                row[name] = round(float(values[i]), 4)
            rows.append(row)
        return rows

    # -- checkpoints --------------------------------------------------------------------------------

    def _extra(self) -> Optional[nn.Module]:
        if not self.extra_modules:
            return None
        return self.extra_modules[0] if len(self.extra_modules) == 1 else nn.ModuleList(self.extra_modules)

    def checkpoint_files(self) -> dict[str, bytes]:
        state = {"step": self.step_count, "kl": self.kl_ctl.state(), "algo": self.cfg.algo}
        return pack_checkpoint(
            policy=self.policy.model,
            optimizer=self.optimizer,
            state=state,
            value=self._extra(),
            generator=self.minibatch_gen,
        )

    def restore(self, files: dict[str, bytes]) -> dict:
        state = unpack_checkpoint(
            files, policy=self.policy.model, optimizer=self.optimizer, value=self._extra(), generator=self.minibatch_gen
        )
        self.step_count = int(state["step"])
        self.kl_ctl.value = float(state["kl"]["value"])
        return state
