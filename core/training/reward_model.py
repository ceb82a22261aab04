"""The reward model: building it on a base folder, the reward of a sequence (pooling), and scoring with a
trained one.

The reward is the score head applied to a summary of the final hidden states: by default
(pooling="distinct_sum_last") the average of the last non-pad token and the sum over the reply's tokens
(over a constant, SUM_DIVISOR), leaving out each token that ends a run of REPEAT_NGRAM tokens the reply
already said. The sum reads the whole reply, which a small base model does not gather into its last
token, and counts each thing a reply says once whatever its length; leaving repeats out makes that true
of a reply that says a sentence twice, so a policy gains nothing by repeating what the reward model likes
(with every token summed, "sum_last", PPO learned to repeat a filler sentence in 44 of 48 replies on the
demo). The last token keeps what attention put there (a single decisive word). The sum also reads length,
so it needs more steps where length only loosely goes with quality (docs/training.md). "both" averages the
mean with the last token instead; "sum", "mean" and "last" are the single readings; runs saved before the
option existed load as "last".
Positions and the reply's span come from the attention mask, so left and right padding give the same
reward. Trained rewards are centred: offset and scale are stored with the weights and applied by
`RewardModel.score`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Optional, Sequence

import torch

from core.errors import UserError
from core.training import checkpoint as ckpt
from core.training.reward_config import RewardConfig
from core.training.reward_data import PromptExample, collate, encode_scored

__all__ = [
    "FINAL",
    "RewardModel",
    "resolve_device",
    "ensure_pad_token",
    "build_reward_model",
    "last_token_index",
    "sequence_rewards",
    "score_sequences",
    "load_reward_model",
    "score",
    "score_prompt",
]

FINAL = "final"
"""The artifact of a finished run: trained weights and reward.json (offset, scale, config)."""

SUM_DIVISOR = 16.0
"""What the summed reply states are divided by ("sum" pooling): about the length of a short reply, so
the sum starts on the scale of the mean and of the last token. A constant, not the reply's length: the
sum's point is that a phrase counts the same in a long reply as in a short one."""

REPEAT_NGRAM = 4
"""With pooling="distinct_sum_last", a reply token that ends a run of this many tokens already said earlier
in the same reply adds nothing to the sum (saying a sentence twice says nothing new)."""


def repeated_tokens(input_ids: torch.Tensor, span: torch.Tensor, n: int = REPEAT_NGRAM) -> torch.Tensor:
    """[N, T] tokens and reply span -> [N, T] bool: the token ends an n-gram of the reply that already
    ended at an earlier position of the same reply."""
    if input_ids.shape[1] < n:
        return torch.zeros_like(span)
    ids = input_ids.long()
    grams = ids.unfold(1, n, 1)  # [N, T-n+1, n]: the n-gram ending at position j+n-1
    inside = span.unfold(1, n, 1).all(-1)  # [N, T-n+1]: wholly in the reply
    same = grams[:, :, None, 0] == grams[:, None, :, 0]  # [N, G, G], one position at a time (memory)
    for k in range(1, n):
        same &= grams[:, :, None, k] == grams[:, None, :, k]
    earlier = torch.ones(same.shape[1], same.shape[1], dtype=torch.bool, device=ids.device).tril(-1)
    seen = (same & earlier & inside[:, None, :]).any(-1) & inside  # [N, G]
    out = torch.zeros_like(span)
    out[:, n - 1 :] = seen
    return out


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA was asked for but no GPU is available; use --device cpu")
    return dev


@contextlib.contextmanager
def _quiet_transformers():
    """Loading a causal LM into a classifier reports the new head; keep the terminal clean."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def ensure_pad_token(tokenizer) -> bool:
    """A pad token distinct from EOS (added when missing or shared). Returns True if one was added."""
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return False
    tokenizer.add_special_tokens({"pad_token": "<|reward_pad|>"})
    return True


def _disable_dropout(config) -> None:
    for key, value in config.to_dict().items():
        if isinstance(value, float) and ("dropout" in key or "pdrop" in key):
            setattr(config, key, 0.0)


def _backbone_and_head(model):
    inner = model.base_model.model if hasattr(model, "peft_config") else model
    head = getattr(inner, "score", None)
    if head is None:
        raise UserError(f"{type(inner).__name__} has no score head; choose a decoder (causal LM) base model")
    return getattr(inner, inner.base_model_prefix), head


def _layer_list(backbone, n_layers: int):
    for module in backbone.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    raise UserError("could not find the transformer layers of this model to freeze; use LoRA instead")


def build_reward_model(config: RewardConfig, device: Optional[torch.device] = None):
    """(model, tokenizer): a 1-output sequence classifier on the base folder, set up for `finetune`."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from core.models.loading import check_model_folder
    from core.training.quantization import prepare_quantized, quantized_load_kwargs

    path = config.base_model
    if not path or not os.path.isdir(path):
        raise UserError(f"base model folder not found: {path or '(none given)'}")
    check_model_folder(path)
    device = device or resolve_device(config.device)
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path)
        added = ensure_pad_token(tokenizer)
        mcfg = AutoConfig.from_pretrained(path)
        mcfg.num_labels = 1
        mcfg.pad_token_id = tokenizer.pad_token_id
        _disable_dropout(mcfg)
        torch.manual_seed(config.seed)  # the new score head's initialisation
        quant = quantized_load_kwargs(config.quantization, device)  # {} unless 4-bit/8-bit (QLoRA)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, config=mcfg, dtype=torch.bfloat16 if quant else torch.float32, **quant
        )
    if added:
        old = model.get_input_embeddings().weight.shape[0]
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():  # deterministic new row; its value never matters (pads are masked)
            emb = model.get_input_embeddings().weight
            emb[old:] = emb[:old].mean(0)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    if quant:
        model = prepare_quantized(model, config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if config.finetune == "lora":
        from peft import LoraConfig

        from core.models.loading import lora_fan_in_fan_out, wrap_with_lora

        targets = config.lora_target_modules
        targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
        model = wrap_with_lora(
            model,
            LoraConfig(
                task_type="SEQ_CLS",
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.0,
                target_modules=targets,
                fan_in_fan_out=lora_fan_in_fan_out(model),
            ),
        )
    elif config.finetune == "freeze" and config.freeze_layers > 0:
        backbone, _ = _backbone_and_head(model)
        n_layers = model.config.get_text_config().num_hidden_layers
        layers = _layer_list(backbone, n_layers)
        frozen = {id(p) for layer in list(layers)[: config.freeze_layers] for p in layer.parameters()}
        for m in backbone.modules():
            if isinstance(m, torch.nn.Embedding):
                frozen.update(id(p) for p in m.parameters())
        for p in model.parameters():
            if id(p) in frozen:
                p.requires_grad_(False)
    if not quant:  # a quantized model is placed by its device_map and cannot be moved
        model.to(device)
    return model, tokenizer


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """[N, T] mask -> [N] index of the rightmost attended token (left or right padding alike)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.long()).amax(dim=1)


def sequence_rewards(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    starts: Optional[torch.Tensor] = None,
    pooling: str = "last",
) -> torch.Tensor:
    """[N, T] tokens -> [N] float32 rewards: the head over the mean hidden state of the response tokens
    (pooling="mean"; `starts` [N] = where each response begins, counted in attended tokens), their sum
    divided by SUM_DIVISOR (pooling="sum"), at the last non-pad token (pooling="last"), or over the
    average of the last token and the mean ("both") or the sum ("sum_last")."""
    backbone, head = _backbone_and_head(model)
    # Positions count attended tokens only, so a left-padded sequence sees the same positions as unpadded.
    position_ids = (attention_mask.long().cumsum(1) - 1).clamp(min=0)  # [N, T]
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # [N, T, H]
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]  # [N, H]
    if pooling == "last":
        pooled = last
    else:
        if starts is None:
            starts = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
        span = (position_ids >= starts[:, None]) & attention_mask.bool()  # [N, T]
        if pooling == "distinct_sum_last":
            span = span & ~repeated_tokens(input_ids, span)
        weights = span.to(hidden.dtype)[..., None]  # [N, T, 1]
        pooled = (hidden * weights).sum(1)  # [N, H]
        if pooling in ("mean", "both"):
            pooled = pooled / weights.sum(1).clamp(min=1)
        else:  # "sum", "sum_last", "distinct_sum_last": a fixed divisor keeps the scale of a mean over a typical reply
            pooled = pooled / SUM_DIVISOR
        if pooling in ("both", "sum_last", "distinct_sum_last"):
            pooled = 0.5 * (pooled + last)
    # The head in fp32 even under autocast: rewards are compared and centred, bf16 would tie close ones.
    with torch.autocast(pooled.device.type, enabled=False):
        return head(pooled.float()).squeeze(-1)  # [N]


@torch.no_grad()
def score_sequences(
    model,
    sequences: Sequence[list[int]],
    pad_id: int,
    device,
    autocast: bool,
    batch_size: int = 32,
    *,
    starts: Optional[Sequence[int]] = None,
    pooling: str = "last",
) -> list[float]:
    """Uncentred rewards of token sequences, in order; batches similar lengths together to pad less."""
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = [0.0] * len(sequences)
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        b = collate(
            [
                PromptExample(
                    0,
                    [],
                    [],
                    tokens=[sequences[j] for j in idx],
                    starts=[starts[j] for j in idx] if starts is not None else [],
                )
            ],
            pad_id,
            device,
        )
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            values = sequence_rewards(model, b.input_ids, b.attention_mask, b.starts, pooling).tolist()
        for j, v in zip(idx, values):
            out[j] = v
    return out


# ----------------------------------------------------------------------------------------------------
# Scoring with a trained reward model (policy trainer, GUI scoring view)
# ----------------------------------------------------------------------------------------------------
class RewardModel:
    """A trained reward model ready to score; rewards are centred (train mean 0). `scale` is the train std."""

    def __init__(self, model, tokenizer, config: RewardConfig, offset: float, scale: float, device):
        self.model, self.tokenizer, self.config = model.eval(), tokenizer, config
        self.offset, self.scale, self.device = offset, scale, device

    def __call__(self, batch) -> list[float]:
        """A policy reward function: `batch` has `.prompts` and `.responses` (hybrid_reward.RewardBatch)."""
        return self.score(list(zip(batch.prompts, batch.responses)))

    @torch.no_grad()
    def score(self, items: Sequence[tuple[Any, str]], batch_size: int = 32) -> list[float]:
        """[(prompt, response)] -> centred rewards. Prompts are strings or chat message lists."""
        encoded = [encode_scored(self.tokenizer, p, r, self.config.max_length) for p, r in items]
        raw = score_sequences(
            self.model,
            [ids for ids, _ in encoded],
            self.tokenizer.pad_token_id,
            self.device,
            self.device.type == "cuda" and self.config.bf16,
            batch_size,
            starts=[start for _, start in encoded],
            pooling=self.config.pooling,
        )
        return [r - self.offset for r in raw]


def load_reward_model(proj, run_id: int, *, device: str | None = None, name: str = FINAL) -> RewardModel:
    """Rebuild the model from its base folder and load the trained weights from the encrypted artifact."""
    files = proj.load_artifact(run_id, name)
    if "reward.json" not in files:
        raise UserError(f"run {run_id} has no finished reward model (artifact {name!r})")
    meta = ckpt.json_load(files["reward.json"])
    config = RewardConfig.from_saved(meta["config"])
    if device is not None:
        config.device = device
    dev = resolve_device(config.device)
    model, tokenizer = build_reward_model(config, dev)
    ckpt.load_trainable_state(model, ckpt.bytes_to_tensors(files["model.safetensors"]))
    from core.training.quantization import is_quantized

    if hasattr(model, "merge_and_unload") and not is_quantized(model):  # LoRA: fold adapters in to score faster
        model = model.merge_and_unload()
    for p in model.parameters():
        p.requires_grad_(False)
    return RewardModel(model, tokenizer, config, meta["offset"], meta["scale"], dev)


def score(proj, run_id: int, items: Sequence[tuple[Any, str]], *, device: str | None = None) -> list[float]:
    """One-shot scoring of (prompt, response) pairs (loads the model each call; keep a RewardModel to reuse)."""
    return load_reward_model(proj, run_id, device=device).score(items)


def score_prompt(proj, run_id: int, prompt_id: int, *, model: Optional[RewardModel] = None) -> dict[int, float]:
    """{response_id: centred reward} for every candidate of a prompt (the GUI scoring view)."""
    model = model or load_reward_model(proj, run_id)
    prompt = proj.prompt(prompt_id).prompt
    responses = proj.responses(prompt_id)
    rewards = model.score([(prompt, r.text) for r in responses])
    return {r.id: v for r, v in zip(responses, rewards)}
