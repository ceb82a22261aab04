"""Memory plans: which precision, quantization and gradient checkpointing a run uses, chosen to fit.

A *plan* is (quantization, gradient checkpointing) on top of the run's training mode (LoRA, freeze,
full). The pre-flight estimates each candidate plan's peak memory from the model's shape (read from
config.json on the meta device: nothing is allocated) and takes the first that fits:

    1. no quantization (bf16 on a GPU, fp32 on a CPU)
    2. the same with gradient checkpointing
    3. 4-bit NF4 base weights + LoRA + gradient checkpointing (QLoRA)

`quantization="auto"` runs that search; `none`, `8bit` and `4bit` pin the quantization (and are
refused with a clear message when the machine cannot do it). 8-bit is never picked automatically:
bitsandbytes' int8 matmuls train slower than NF4 and save less memory; ask for it by name.

Quantized plans need a CUDA GPU, the `bitsandbytes` package (`pip install 'rlhf-studio[gpu]'`) and
LoRA (a quantized base cannot be trained directly). Loading goes through transformers'
`BitsAndBytesConfig` and peft's `prepare_model_for_kbit_training`.

The estimates are rough upper bounds (documented in docs/models.md); an out-of-memory during a run
still ends as a failed run with advice, and `--resume` continues from its last checkpoint.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Optional

from core.errors import UserError

QUANTIZATIONS = ("auto", "none", "8bit", "4bit")
GIB = 2**30
# CUDA context, allocator fragmentation and what other programs hold while the run is going.
HEADROOM = 0.9


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def quantization_unavailable(device_type: str, bnb: Optional[bool] = None) -> Optional[str]:
    """Why a quantized (4-/8-bit) plan is impossible here, or None when it is possible."""
    if device_type != "cuda":
        return (
            f"4-bit/8-bit training needs a CUDA GPU; this run is on {device_type}, so a 4-bit plan is impossible here"
        )
    if not (bitsandbytes_available() if bnb is None else bnb):
        return (
            "4-bit/8-bit training needs the bitsandbytes package, which is not installed "
            "(pip install 'rlhf-studio[gpu]'), so a 4-bit plan is impossible here"
        )
    return None


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model, read from its config."""

    n_params: int
    hidden: int
    layers: int
    vocab: int
    embedding_params: int
    """Parameters that stay unquantized (input embeddings and an untied output head)."""

    @classmethod
    def from_config(cls, config, n_params: Optional[int] = None) -> "ModelShape":
        from core.models.loading import count_parameters

        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = getattr(text, "hidden_size", 0) or getattr(text, "n_embd", 0)
        layers = getattr(text, "num_hidden_layers", 0) or getattr(text, "n_layer", 0)
        vocab = getattr(text, "vocab_size", 0)
        tied = bool(getattr(config, "tie_word_embeddings", True))
        n = count_parameters(config) if n_params is None else n_params
        return cls(n, hidden, layers, vocab, vocab * hidden * (1 if tied else 2))

    @classmethod
    def from_folder(cls, folder) -> "ModelShape":
        from core.models.loading import load_config

        return cls.from_config(load_config(folder))


@dataclass(frozen=True)
class Plan:
    quantization: str
    """none, 8bit or 4bit (never auto)."""
    gradient_checkpointing: bool
    finetune: str
    """lora, freeze or full."""
    need_bytes: int
    free_bytes: int

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.free_bytes * HEADROOM

    def describe(self) -> str:
        quant = {"none": "full-precision base", "8bit": "8-bit base", "4bit": "4-bit (NF4) base"}[self.quantization]
        method = {"lora": "LoRA", "freeze": "frozen bottom layers", "full": "full fine-tune"}[self.finetune]
        if self.quantization == "4bit" and self.finetune == "lora":
            method = "LoRA (QLoRA)"
        gc = ", gradient checkpointing" if self.gradient_checkpointing else ""
        return f"{quant} + {method}{gc}: about {self.need_bytes / GIB:.1f} GiB of {self.free_bytes / GIB:.1f} GiB free"

    def as_dict(self) -> dict:
        return {
            "quantization": self.quantization,
            "gradient_checkpointing": self.gradient_checkpointing,
            "finetune": self.finetune,
            "need_bytes": self.need_bytes,
            "free_bytes": self.free_bytes,
            "plan": self.describe(),
        }


def weight_bytes(shape: ModelShape, quantization: str, compute_bytes: int) -> int:
    """Bytes of the base weights. Quantized: linear layers at 4.25 / 8.5 bits (NF4 + double-quantized
    scales; int8 + outlier scales); embeddings and the head stay unquantized and are upcast to fp32 by
    peft's prepare_model_for_kbit_training."""
    if quantization == "none":
        return shape.n_params * compute_bytes
    bits = 4.25 if quantization == "4bit" else 8.5
    linear = max(0, shape.n_params - shape.embedding_params)
    return int(linear * bits / 8 + shape.embedding_params * 4)


def estimate_bytes(
    shape: ModelShape,
    *,
    quantization: str = "none",
    finetune: str = "lora",
    gradient_checkpointing: bool = False,
    batch_tokens: int = 2048,
    compute_bytes: int = 2,
    lm_logits: bool = True,
    reference_copy: bool = False,
    trainable_fraction: float = 0.0,
    extra_bytes: int = 0,
) -> int:
    """Peak training bytes of one plan (rough upper bound).

    weights (+ a frozen reference copy for full/freeze policies) + AdamW state of the trainable part
    (fp32 grad and two moments: 12 bytes) + activations (all layers × ~16 values per hidden unit per
    token; with checkpointing only each layer's input plus one layer's working set) + fp32 logits,
    log-softmax and their gradient (policy and DPO; a reward head has none) + `extra_bytes` (a reward
    model held beside a policy).
    """
    weights = weight_bytes(shape, quantization, compute_bytes)
    if reference_copy and finetune != "lora":
        weights += shape.n_params * compute_bytes
    if not trainable_fraction:
        trainable_fraction = {"lora": 0.02, "freeze": 0.5, "full": 1.0}[finetune]
    optim = int(shape.n_params * trainable_fraction * 12)
    per_layer = batch_tokens * shape.hidden * 16 * compute_bytes
    if gradient_checkpointing:
        activations = batch_tokens * shape.hidden * shape.layers * compute_bytes + per_layer
    else:
        activations = per_layer * shape.layers
    logits = batch_tokens * shape.vocab * 4 * 3 if lm_logits else 0
    return int(weights + optim + activations + logits + extra_bytes)


def candidate_plans(quantization: str, finetune: str, gradient_checkpointing: bool) -> list[tuple[str, bool]]:
    """(quantization, checkpointing) pairs to try, in order of preference."""
    if quantization == "auto":
        plans = [("none", gradient_checkpointing), ("none", True)]
        if finetune == "lora":
            plans.append(("4bit", True))
    else:
        plans = [(quantization, gradient_checkpointing), (quantization, True)]
    seen, out = set(), []
    for p in plans:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def choose_plan(
    shape: ModelShape,
    *,
    device_type: str,
    free_bytes: int,
    quantization: str = "auto",
    finetune: str = "lora",
    gradient_checkpointing: bool = False,
    bnb: Optional[bool] = None,
    what: str = "this run",
    **estimate,
) -> Plan:
    """The first plan that fits, or a `UserError` saying what was tried and what would help.

    `bnb` overrides the bitsandbytes check (tests); `estimate` goes to `estimate_bytes`
    (batch_tokens, compute_bytes, lm_logits, reference_copy, extra_bytes).
    """
    if quantization not in QUANTIZATIONS:
        raise UserError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
    if quantization in ("4bit", "8bit"):
        if finetune != "lora":
            raise UserError(
                f"{quantization} quantization trains LoRA adapters on a frozen quantized base: "
                "switch the training mode to LoRA"
            )
        reason = quantization_unavailable(device_type, bnb)
        if reason:
            raise UserError(f"{reason}. Choose quantization none (or auto).")
    blocked = quantization_unavailable(device_type, bnb)
    tried = []
    for quant, gc in candidate_plans(quantization, finetune, gradient_checkpointing):
        need = estimate_bytes(shape, quantization=quant, finetune=finetune, gradient_checkpointing=gc, **estimate)
        plan = Plan(quant, gc, finetune, need, free_bytes)
        if quant != "none" and blocked:
            tried.append(f"{plan.describe()} (impossible: {blocked})")
            continue
        if plan.fits:
            return plan
        tried.append(plan.describe())
    hints = []
    if finetune != "lora":
        hints.append("switch to LoRA")
    if blocked and finetune == "lora" and quantization == "auto":
        hints.append("use a CUDA GPU with bitsandbytes for 4-bit QLoRA")
    hints += ["shorten max length / responses", "use a smaller batch", "pick a smaller model"]
    raise UserError(
        f"{what} will not fit on {device_type}: tried " + "; ".join(tried) + ". Try: " + ", ".join(hints) + "."
    )


# ---------------------------------------------------------------------------------------------------
# loading


def bnb_config(quantization: str, compute_dtype=None):
    """transformers' BitsAndBytesConfig for a plan: NF4 with double quantization (QLoRA), or LLM.int8."""
    import torch
    from transformers import BitsAndBytesConfig

    compute_dtype = compute_dtype or torch.bfloat16
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"no bitsandbytes config for quantization {quantization!r}")


def quantized_load_kwargs(quantization: str, device, compute_dtype=None) -> dict:
    """Extra `from_pretrained` keyword arguments: the quantization config and a one-device map.

    Raises a `UserError` when the machine cannot do it (checked again at load time: a resumed run may
    be on another machine)."""
    import torch

    if quantization in (None, "", "none", "auto"):
        return {}
    device = torch.device(device)
    reason = quantization_unavailable(device.type)
    if reason:
        raise UserError(f"{reason}.")
    index = device.index if device.index is not None else torch.cuda.current_device()
    return {"quantization_config": bnb_config(quantization, compute_dtype), "device_map": {"": index}}


def prepare_quantized(model, gradient_checkpointing: bool = True):
    """peft's prepare_model_for_kbit_training: freeze the base, upcast norms/embeddings, input grads."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
    )


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant checkpointing (works with LoRA's frozen base), and no KV cache while training."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False


def is_quantized(model) -> bool:
    return bool(
        getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
        or getattr(getattr(model, "base_model", None), "is_loaded_in_4bit", False)
    )


# ---------------------------------------------------------------------------------------------------
# the pre-flight of each job


def plan_for_reward(
    config,
    device,
    n_params: Optional[int] = None,
    free_bytes: Optional[int] = None,
    shape: Optional[ModelShape] = None,
    bnb: Optional[bool] = None,
) -> Plan:
    """The reward model's plan: fp32 master weights (bf16 autocast) unless quantized; no LM logits;
    a micro-batch of `prompts_per_micro_batch` prompts × ~4 responses × `max_length` tokens."""
    import torch

    from core.models.loading import available_memory, load_config

    device = torch.device(device)
    shape = shape or ModelShape.from_config(load_config(config.base_model), n_params)
    free = available_memory(device) if free_bytes is None else free_bytes
    return choose_plan(
        shape,
        device_type=device.type,
        free_bytes=free,
        quantization=config.quantization,
        finetune=config.finetune,
        gradient_checkpointing=config.gradient_checkpointing,
        bnb=bnb,
        what=f"training this {shape.n_params / 1e6:.0f}M-parameter reward model",
        batch_tokens=config.max_length * config.prompts_per_micro_batch * 4,
        compute_bytes=4,
        lm_logits=False,
    )


def plan_for_policy(
    cfg,
    device,
    free_bytes: Optional[int] = None,
    shape: Optional[ModelShape] = None,
    reward_bytes: int = 0,
    bnb: Optional[bool] = None,
) -> Plan:
    """The policy's plan (PPO, RLOO, GRPO, DPO), before any weights load: a gradient minibatch of
    `minibatch_size` rows (×2 for DPO's chosen and rejected) of prompt + response tokens, LM logits,
    a reference copy unless LoRA, and `reward_bytes` for a reward model on the same device."""
    import torch

    from core.models.loading import available_memory, pick_dtype

    device = torch.device(device)
    shape = shape or ModelShape.from_folder(cfg.policy_path)
    free = available_memory(device) if free_bytes is None else free_bytes
    if cfg.dtype in ("auto", None, ""):
        compute = 2 if pick_dtype(device) != torch.float32 else 4
    else:
        compute = 4 if cfg.dtype in ("float32", "fp32") else 2
    rows = cfg.minibatch_size * (2 if cfg.algo == "dpo" else 1)
    return choose_plan(
        shape,
        device_type=device.type,
        free_bytes=free,
        quantization=cfg.quantization,
        finetune=cfg.mode,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bnb=bnb,
        what=f"training this {shape.n_params / 1e6:.0f}M-parameter policy",
        batch_tokens=rows * (cfg.max_prompt_tokens + cfg.max_new_tokens),
        compute_bytes=compute,
        lm_logits=True,
        reference_copy=True,
        extra_bytes=reward_bytes,
    )


def inference_bytes(shape: ModelShape, quantization: str, compute_bytes: int) -> int:
    """A frozen scorer's weights + 20% (a reward model held beside the policy)."""
    return int(weight_bytes(shape, quantization if quantization != "auto" else "none", compute_bytes) * 1.2)


def resolve_policy_plan(cfg, proj=None, free_bytes: Optional[int] = None, bnb: Optional[bool] = None):
    """(cfg with a concrete quantization and checkpointing, Plan or None when the folder is not a
    model). Counts the reward model when it scores on the policy's device (PPO/RLOO/GRPO + reward run)."""
    import dataclasses

    from core.models.loading import pick_device

    device = pick_device(None if cfg.device in (None, "auto") else cfg.device)
    reward_bytes = 0
    if proj is not None and cfg.reward_run is not None and cfg.algo != "dpo" and cfg.reward_device in ("auto", ""):
        try:
            rcfg = proj.run(cfg.reward_run).config or {}
            rshape = ModelShape.from_folder(rcfg["base_model"])
            quant = rcfg.get("quantization", "none")
            reward_bytes = inference_bytes(rshape, quant, 4 if quant in ("none", "auto") else 2)
        except (KeyError, OSError, UserError):
            reward_bytes = 0  # the reward run's own checks report a missing base later
    try:
        shape = ModelShape.from_folder(cfg.policy_path)
    except UserError:  # not a model folder: the run records it and fails at load with the plain message
        quant = "none" if cfg.quantization == "auto" else cfg.quantization
        return dataclasses.replace(cfg, quantization=quant), None
    plan = plan_for_policy(cfg, device, free_bytes=free_bytes, shape=shape, reward_bytes=reward_bytes, bnb=bnb)
    return dataclasses.replace(
        cfg, quantization=plan.quantization, gradient_checkpointing=plan.gradient_checkpointing
    ), plan


def checkpoint_blocks(model) -> int:
    """Gradient checkpointing of each decoder block, active whenever autograd records (train or eval
    mode alike: the policy stays in eval mode so dropout is off and the sampler's KV cache works).
    No-grad passes (rollouts, reference log-probs, scoring) run the block as usual. Returns the count."""
    import torch
    from torch.utils.checkpoint import checkpoint

    from core.training.policy_common import transformer_blocks

    blocks = transformer_blocks(model)
    for block in blocks:
        if getattr(block, "_rlhf_checkpointed", False):
            continue
        plain = block.forward

        def forward(*args, _plain=plain, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_plain, *args, use_reentrant=False, **kwargs)
            return _plain(*args, **kwargs)

        block.forward = forward
        block._rlhf_checkpointed = True
    return len(blocks)


def prepare_policy_base(model, cfg):
    """After loading the policy's base: peft's k-bit preparation for a quantized base, then per-block
    gradient checkpointing when the plan asks for it."""
    if getattr(cfg, "quantization", "none") in ("4bit", "8bit"):
        model = prepare_quantized(model, gradient_checkpointing=False)  # ours below works in eval mode
        model.eval()
    if getattr(cfg, "gradient_checkpointing", False):
        checkpoint_blocks(model)
    return model
