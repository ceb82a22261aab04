"""Loading a local Hugging Face causal LM and its tokenizer, offline; device, dtype, memory, prompts.

Nothing here touches the network: every `from_pretrained` call passes `local_files_only=True`, and
`core.offline` sets HF_HUB_OFFLINE before transformers is imported.

Prompt formatting (decided here, used everywhere):
- a chat prompt (a list of `{"role", "content"}` messages) goes through the tokenizer's chat template with
  `add_generation_prompt=True`; a tokenizer without a template gets a plain "role: content" layout;
- a plain-string prompt is sent as a single user turn through the chat template when the tokenizer has
  one (chat models answer raw text badly), and as raw text when it has none (base models).
Templated text already holds its special tokens, so it is tokenized with `add_special_tokens=False`.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import core.offline  # noqa: F401  (sets the offline environment before transformers loads)
from core.errors import UserError

log = logging.getLogger(__name__)

Prompt = Union[str, list]  # a string, or a list of {"role": ..., "content": ...} messages
PAD_TOKEN = "<|pad|>"

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")


# ---------------------------------------------------------------------------------------------------
# device and dtype


def pick_device(prefer: Optional[str] = None):
    """CUDA, then MPS, then CPU; `prefer` ("cuda", "mps", "cpu", "cuda:1") overrides when available."""
    import torch

    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"Device {prefer!r} was asked for, but no CUDA GPU is available.")
        if dev.type == "mps" and not _mps_available():
            raise UserError(f"Device {prefer!r} was asked for, but Apple MPS is not available.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_dtype(device):
    """bf16 where the device does it natively and fast (recent CUDA GPUs, MPS on recent macOS), else fp32.

    CPU gets fp32: bf16 matmuls are slow on CPUs without AMX, and training small models in bf16 on CPU
    loses too much precision to be worth it.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "mps":
        try:
            torch.ones(1, dtype=torch.bfloat16, device=device) @ torch.ones(1, dtype=torch.bfloat16, device=device)
            return torch.bfloat16
        except (RuntimeError, TypeError):
            return torch.float32
    return torch.float32


# ---------------------------------------------------------------------------------------------------
# checking a folder


def check_model_folder(folder: Union[str, Path], need_weights: bool = True) -> Path:
    """Raise a `UserError` naming the folder and what is missing when it is not a causal-LM folder."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise UserError(f"Model folder {path} does not exist.")
    if not path.is_dir():
        raise UserError(f"{path} is a file; choose the folder that holds config.json and the weights.")
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if need_weights and not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append("model weights (model.safetensors)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or tokenizer_config.json)")
    if missing:
        raise UserError(
            f"{path} is not a Hugging Face model folder: missing {', '.join(missing)}. "
            "Choose a folder saved with save_pretrained (config.json, model.safetensors, tokenizer.json)."
        )
    return path


def load_config(folder: Union[str, Path]):
    from transformers import AutoConfig

    path = check_model_folder(folder, need_weights=False)
    try:
        return AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any garbage in config.json (bad JSON, wrong types, unknown model)
        raise UserError(f"{path}/config.json could not be read as a model config: {exc}") from exc


# ---------------------------------------------------------------------------------------------------
# memory estimate


@dataclass
class MemoryEstimate:
    """What a model needs, in bytes, on one device."""

    parameters: int
    """Number of parameters."""
    bytes_per_parameter: int
    """2 for bf16/fp16, 4 for fp32."""
    weights: int
    """Parameters × bytes."""
    total: int
    """Weights plus gradients, optimizer state and activations (training) or KV cache/activations."""
    training: bool

    @property
    def gb(self) -> float:
        return self.total / 1e9

    def describe(self) -> str:
        what = "training" if self.training else "inference"
        return f"{self.parameters / 1e6:.1f}M parameters, about {self.gb:.2f} GB for {what}"


def count_parameters(config) -> int:
    """Parameters of the model a config describes, without allocating them (meta device)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except ValueError as exc:
        raise UserError(f"Model type {getattr(config, 'model_type', '?')!r} is not a causal language model.") from exc
    # Tied weights are one tensor; parameters() yields it once.
    return sum(p.numel() for p in model.parameters())


def estimate_memory(
    folder_or_config, training: bool = False, dtype=None, trainable_fraction: float = 1.0
) -> MemoryEstimate:
    """Parameters × bytes, plus what training or generation adds on top.

    Inference: weights + 20% (KV cache and activations at moderate batch). Training with AdamW:
    weights + gradients of the trainable part (same dtype) + two fp32 moment buffers of the trainable part
    + 50% of the weights for activations. `trainable_fraction` < 1 models LoRA or frozen layers.
    """
    import torch

    config = folder_or_config
    if isinstance(folder_or_config, (str, Path)):
        config = load_config(folder_or_config)
    dtype = dtype or torch.float32
    nbytes = torch.empty((), dtype=dtype).element_size()
    params = count_parameters(config)
    weights = params * nbytes
    if training:
        trainable = int(params * trainable_fraction)
        total = weights + trainable * nbytes + trainable * 8 + weights // 2
    else:
        total = int(weights * 1.2)
    return MemoryEstimate(params, nbytes, weights, int(total), training)


def available_memory(device) -> int:
    """Bytes free for a new model on `device` (free GPU memory, or available system RAM)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        except (AttributeError, RuntimeError):
            pass
    return _available_ram()


def _available_ram() -> int:
    try:  # MemAvailable counts reclaimable page cache, which SC_AVPHYS_PAGES does not
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: don't block


def check_fits(estimate: MemoryEstimate, device, name: str = "The model") -> None:
    """Raise a clear `UserError` when the estimate exceeds what `device` has free."""
    free = available_memory(device)
    if estimate.total > free:
        hint = (
            "Use LoRA or freeze layers, pick a smaller model, or free memory."
            if estimate.training
            else "Pick a smaller model, close other programs, or use a GPU with more memory."
        )
        raise UserError(
            f"{name} will not fit: it needs about {estimate.gb:.2f} GB on {device} "
            f"({estimate.describe()}), but only {free / 1e9:.2f} GB is free. {hint}"
        )


# ---------------------------------------------------------------------------------------------------
# tokenizer and model


def prepare_tokenizer(tokenizer):
    """Left padding (generation appends on the right), and a pad token distinct from EOS.

    Returns True when a pad token had to be added (the model's embeddings must then grow).
    """
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"  # keep the end of an over-long prompt: that is what gets answered
    added = False
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # Padding with EOS would make "stop at EOS" and "padding" indistinguishable in masks.
        if PAD_TOKEN in tokenizer.get_vocab():
            tokenizer.pad_token = PAD_TOKEN
        else:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
            added = True
    return added


def load_tokenizer(folder: Union[str, Path]):
    from transformers import AutoTokenizer

    path = check_model_folder(folder, need_weights=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise UserError(f"The tokenizer in {path} could not be loaded: {exc}") from exc
    prepare_tokenizer(tokenizer)
    return tokenizer


def load_model(
    folder: Union[str, Path],
    device=None,
    dtype=None,
    training: bool = False,
    check_memory: bool = True,
    quantization: str = "none",
):
    """Load (model, tokenizer) from a local folder, on `device` (default: `pick_device()`).

    The model is in eval mode unless `training`; its config and generation config know the pad token.
    `quantization` "4bit"/"8bit" loads the base through bitsandbytes (CUDA only; see
    core/training/quantization.py); the memory check is then the caller's plan.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress reporting is the job's; keep stderr clean
    path = check_model_folder(folder)
    device = torch.device(device) if device is not None else pick_device()
    dtype = dtype or pick_dtype(device)
    config = load_config(path)
    from core.training.quantization import quantized_load_kwargs

    quant = quantized_load_kwargs(quantization, device, dtype)  # {} unless 4-bit/8-bit
    if check_memory and not quant:
        check_fits(estimate_memory(config, training=training, dtype=dtype), device, name=f"The model in {path}")
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype, **quant)
    except ValueError as exc:
        raise UserError(f"{path} does not hold a causal language model: {exc}") from exc
    except OSError as exc:
        raise UserError(f"The weights in {path} could not be read: {exc}") from exc
    except pickle.UnpicklingError:  # torch.load(weights_only=True) refused objects other than tensors
        raise UserError(
            f"The weights in {path} (pytorch_model.bin) hold Python objects, not only tensors; they were "
            "not loaded, since unpickling them could run code. Use a model saved as model.safetensors."
        ) from None
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if not quant:  # a quantized model is placed by its device_map and cannot be moved
        model.to(device)
    model.train(training)
    return model, tokenizer


def describe_model(folder: Union[str, Path], device=None) -> dict[str, Any]:
    """What the Models page shows: architecture, parameter count, device, dtype, memory estimate."""
    import torch

    config = load_config(folder)
    device = torch.device(device) if device is not None else pick_device()
    dtype = pick_dtype(device)
    est = estimate_memory(config, dtype=dtype)
    return {
        "path": str(Path(folder).expanduser().resolve()),
        "model_type": config.model_type,
        "parameters": est.parameters,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "memory_bytes": est.total,
        "memory_training_bytes": estimate_memory(config, training=True, dtype=dtype).total,
        "available_bytes": available_memory(device),
        "max_positions": max_positions(config),
    }


def max_positions(config) -> Optional[int]:
    """Longest sequence (prompt + response) the model's position table allows, if it has one."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# ---------------------------------------------------------------------------------------------------
# prompts


def is_chat(prompt: Prompt) -> bool:
    return isinstance(prompt, list)


def format_prompt(tokenizer, prompt: Prompt) -> str:
    """The text the model sees for a prompt (see the module docstring for the rules)."""
    if isinstance(prompt, str):
        if not getattr(tokenizer, "chat_template", None):
            return prompt
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    if getattr(tokenizer, "chat_template", None):
        from jinja2 import TemplateError  # transformers renders templates in a sandboxed Jinja environment

        try:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as exc:  # includes SecurityError: a template reaching for Python internals
            raise UserError(f"The model's chat template could not be applied: {exc}") from None
    # No template: a readable layout that base models continue sensibly.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


def prompt_token_ids(tokenizer, prompt: Prompt, max_tokens: Optional[int] = None) -> list[int]:
    """Token ids of the formatted prompt, keeping the last `max_tokens` when it is too long."""
    templated = is_chat(prompt) or bool(getattr(tokenizer, "chat_template", None))
    text = format_prompt(tokenizer, prompt)
    ids = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[-max_tokens:]
    return ids


def position_ids_from_mask(attention_mask):
    """Position of each token counting real tokens only: cumsum(mask) - 1, pads clamped to 0.

    With left padding, position 0 is each row's first real token, exactly as when the row is run alone.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pad_left(rows: Sequence[Sequence[int]], pad_id: int, device=None) -> dict[str, Any]:
    """Left-pad token id lists into input_ids, attention_mask, position_ids (each (B, P) long)."""
    import torch

    if not rows:
        raise ValueError("no prompts to encode")
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            input_ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
            attention_mask[i, width - len(row) :] = 1
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids_from_mask(attention_mask),
    }
    if device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch


def encode_batch(tokenizer, prompts: Sequence[Prompt], max_tokens: Optional[int] = None, device=None):
    """Format and tokenize prompts; left-padded input_ids, attention_mask and position_ids (B, P)."""
    rows = [prompt_token_ids(tokenizer, p, max_tokens) for p in prompts]
    return pad_left(rows, tokenizer.pad_token_id, device=device)


def lora_fan_in_fan_out(model) -> bool:
    """Whether LoRA must treat the targets' weights as (in, out): GPT-2-style models use transformers'
    Conv1D instead of nn.Linear. peft corrects a wrong setting itself but warns at every wrap."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for m in model.modules())


def wrap_with_lora(model, lora_config):
    """peft's get_peft_model, without the FutureWarning it triggers on every wrap with transformers 5
    (peft reads the deprecated `is_gradient_checkpointing` alias): users would see it in every CLI run."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora_config)
