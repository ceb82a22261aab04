"""Reward model training: Bradley-Terry over every pair implied by the expert's judgments.

One readable file (CleanRL style): config, data, model, loss, step, job, scoring helpers.

- Pairs come from `core.training.pairs` (via `project.preference_pairs()`); a step takes a set of prompts
  with ALL their judged responses, scores each response once, and forms all of that prompt's pairs from
  those scores (InstructGPT). Each prompt weighs the same in the loss, whatever its number of pairs.
- Loss: -log sigmoid(r_w - r_l - margin).
- The reward is the score head applied to a summary of the final hidden states: by default
  (pooling="both") the average of the mean over the reply's tokens and the last non-pad token. The mean
  reads the whole reply, which a small base model does not gather into its last token; the last token
  keeps what attention put there (a single decisive word). Over five simulated experts on the demo the
  pair gave 0.764 held-out accuracy on average against 0.749 for the last token alone (bench figures,
  docs/training.md). "mean" and "last" are the single readings; runs saved before the option existed load
  as "last". Positions and the reply's span come from the attention mask, so left and right padding
  give the same reward.
- Train/validation split by prompt; prompts of the "heldout" split are never trained on (only scored).
- After training the rewards are centred (mean 0 over the training responses); offset and scale are
  stored with the weights and applied by `RewardModel.score`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Literal, Optional, Sequence

import torch
import torch.nn.functional as F

from core.errors import UserError
from core.jobs import NEVER, CancelToken, Cancelled, Progress
from core.training import checkpoint as ckpt

__all__ = [
    "RewardConfig",
    "PromptExample",
    "RewardData",
    "RewardTrainer",
    "RewardModel",
    "RewardResult",
    "bradley_terry_loss",
    "last_token_index",
    "sequence_rewards",
    "split_by_prompt",
    "encode_pair",
    "encode_scored",
    "build_reward_model",
    "collect_data",
    "data_snapshot_hash",
    "preflight",
    "train_reward_model",
    "load_reward_model",
    "score",
    "score_prompt",
]

CHECKPOINT = "checkpoint"
FINAL = "final"


# ----------------------------------------------------------------------------------------------------
# Hyperparameters
# ----------------------------------------------------------------------------------------------------
@dataclass
class RewardConfig:
    base_model: str = ""
    """Local Hugging Face folder of the base model (the policy's base or another causal LM)."""
    preset: str = "custom"
    """Which preset filled these values (quick / balanced / thorough / custom); informational."""
    finetune: Literal["full", "lora", "freeze"] = "full"
    """full: train every weight; lora: low-rank adapters (peft) + head; freeze: bottom layers frozen."""
    freeze_layers: int = 0
    """With finetune="freeze": how many bottom transformer layers (and the embeddings) stay frozen."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_target_modules: str = "all-linear"
    """Which linear layers get adapters: "all-linear" or a comma-separated list of module names."""
    learning_rate: float = 1e-5
    """Peak learning rate after warmup."""
    min_lr_ratio: float = 0.1
    """Learning rate at the end of the decay, as a fraction of the peak."""
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup."""
    warmup_ratio: float = 0.05
    """Fraction of the steps spent warming the learning rate up linearly."""
    weight_decay: float = 0.0
    """AdamW weight decay, applied to matrices only (not biases, norms)."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.95
    """AdamW beta2."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    epochs: float = 1.0
    """Passes over the training prompts (fractions allowed); ignored when max_steps > 0."""
    max_steps: int = 0
    """Optimizer steps in all; 0 means from epochs."""
    prompts_per_micro_batch: int = 4
    """Prompts (each with all its judged responses) scored in one forward pass."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step (prompts per step = micro batch x this)."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm); 0 turns clipping off."""
    max_length: int = 512
    """Tokens per prompt+response; longer ones keep their end (the response and EOS)."""
    pooling: Literal["both", "mean", "last"] = "both"
    """What the score head reads: mean over the reply's tokens, the last token, or both averaged."""
    margin_mode: Literal["none", "tier_distance"] = "none"
    """Margin in the loss: none, or the judged distance (tiers apart / rating difference)."""
    margin_scale: float = 1.0
    """Multiplier applied to the judged distance when margin_mode="tier_distance"."""
    val_fraction: float = 0.15
    """Share of the training-split prompts kept aside for validation (whole prompts)."""
    eval_every: int = 20
    """Evaluate on the validation prompts every this many steps (and at the end)."""
    early_stopping_patience: int = 3
    """Stop after this many evaluations without a better validation accuracy; 0 turns it off."""
    early_stopping_after: float = 0.3
    """Early stopping may only stop after this fraction of the steps (early evaluations are noisy)."""
    restore_best: bool = True
    """At the end, keep the weights of the best validation accuracy rather than the last ones."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every this many steps (also on cancel and at the end)."""
    min_pairs: int = 20
    """Pre-flight: refuse to train on fewer pairs than this."""
    seed: int = 0
    """Seed for the split, the data order and the head's initialisation."""
    device: str = "auto"
    """auto (CUDA when present), cuda, cuda:N or cpu."""
    bf16: bool = True
    """bf16 autocast on CUDA (weights and optimizer stay fp32)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (slower)."""
    quantization: Literal["auto", "none", "8bit", "4bit"] = "auto"
    """Base weights: auto (pre-flight picks full precision, else 4-bit QLoRA if that fits), none, 8bit, 4bit."""
    gpus: int = 1
    """Data-parallel processes (one per GPU, NCCL; gloo processes on a CPU); 1 = this process only."""

    def __post_init__(self) -> None:
        if self.quantization not in ("auto", "none", "8bit", "4bit"):
            raise UserError(f"quantization must be auto, none, 8bit or 4bit, not {self.quantization!r}")
        if self.gpus < 1:
            raise UserError("gpus must be at least 1")
        if self.finetune not in ("full", "lora", "freeze"):
            raise UserError(f"finetune must be full, lora or freeze, not {self.finetune!r}")
        if self.lr_schedule not in ("cosine", "linear", "constant"):
            raise UserError(f"lr_schedule must be cosine, linear or constant, not {self.lr_schedule!r}")
        if self.margin_mode not in ("none", "tier_distance"):
            raise UserError(f"margin_mode must be none or tier_distance, not {self.margin_mode!r}")
        if self.prompts_per_micro_batch < 1 or self.grad_accum_steps < 1:
            raise UserError("prompts_per_micro_batch and grad_accum_steps must be at least 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError("val_fraction must be between 0 and 1")
        if self.max_length < 8:
            raise UserError("max_length must be at least 8 tokens")
        if self.pooling not in ("mean", "last", "both"):
            raise UserError(f"pooling must be both, mean or last, not {self.pooling!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "RewardConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_saved(cls, values: dict) -> "RewardConfig":
        """A config stored with a run; runs saved before `pooling` existed read the last token."""
        return cls.from_dict({"pooling": "last", **values})

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """{field: its one-line docstring}, for the advanced form and `--help` texts."""
        from core.training.policy_config import field_docs

        return field_docs(cls)

    @property
    def prompts_per_step(self) -> int:
        return self.prompts_per_micro_batch * self.grad_accum_steps


# ----------------------------------------------------------------------------------------------------
# Data: prompts with their judged responses and pairs (ids only until tokenized)
# ----------------------------------------------------------------------------------------------------
@dataclass
class PromptExample:
    """One prompt, the responses that appear in its pairs, and its pairs as local indices."""

    prompt_id: int
    response_ids: list[int]
    pairs: list[tuple[int, int, float]]
    """(winner index, loser index, margin) into response_ids."""
    tokens: list[list[int]] = field(default_factory=list)
    """Token ids of prompt+response+EOS per response, filled by `tokenize`."""
    starts: list[int] = field(default_factory=list)
    """Index in each token list where the response begins (0 when unknown: the whole sequence)."""


@dataclass
class RewardData:
    train: list[PromptExample]
    val: list[PromptExample]
    heldout: list[PromptExample]
    snapshot_hash: str

    @property
    def n_pairs(self) -> int:
        return sum(len(e.pairs) for e in self.train + self.val)

    def ids(self) -> dict:
        """JSON-able description (ids and margins only) to rebuild the same data on resume."""

        def rows(exs):
            return [[e.prompt_id, e.response_ids, [list(p) for p in e.pairs]] for e in exs]

        return {
            "train": rows(self.train),
            "val": rows(self.val),
            "heldout": rows(self.heldout),
            "snapshot_hash": self.snapshot_hash,
        }

    @classmethod
    def from_ids(cls, d: dict) -> "RewardData":
        def exs(rows):
            return [
                PromptExample(pid, list(rids), [(int(w), int(l), float(m)) for w, l, m in pairs])
                for pid, rids, pairs in rows
            ]

        return cls(exs(d["train"]), exs(d["val"]), exs(d["heldout"]), d["snapshot_hash"])


def split_by_prompt(prompt_ids: Sequence[int], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Whole prompts to train or validation (never both); at least one of each when there are two."""
    ids = sorted(set(prompt_ids))
    random.Random(seed).shuffle(ids)
    if len(ids) < 2:
        return ids, []
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    return sorted(ids[n_val:]), sorted(ids[:n_val])


def _examples(grouped: dict[int, list[tuple[int, int, float]]], prompt_ids: Iterable[int]) -> list[PromptExample]:
    out = []
    for pid in prompt_ids:
        rids: list[int] = []
        index: dict[int, int] = {}
        local = []
        for w, l, m in grouped[pid]:
            for r in (w, l):
                if r not in index:
                    index[r] = len(rids)
                    rids.append(r)
            local.append((index[w], index[l], float(m)))
        out.append(PromptExample(pid, rids, local))
    return out


def data_snapshot_hash(judgment_ids: Iterable[int], pairs: Iterable[tuple[int, int, int, float]]) -> str:
    """Plain SHA-256 over ids and margins only (never text): which judgments and pairs a run saw."""
    payload = {
        "judgments": sorted(int(j) for j in judgment_ids),
        "pairs": sorted([int(p), int(w), int(l), float(m)] for p, w, l, m in pairs),
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def collect_data(proj, config: RewardConfig) -> RewardData:
    """Pairs from the project's current judgments, split by prompt; heldout-split prompts kept apart."""
    rows = [
        (p.prompt_id, p.chosen_id, p.rejected_id, float(p.margin) * config.margin_scale)
        for p in proj.preference_pairs(margin_mode=config.margin_mode)
    ]
    grouped: dict[int, list[tuple[int, int, float]]] = {}
    for p, w, l, m in rows:
        grouped.setdefault(p, []).append((w, l, m))
    split_of = {p.id: p.split for p in proj.prompts()}
    heldout_ids = sorted(p for p in grouped if split_of.get(p) == "heldout")
    train_ids, val_ids = split_by_prompt(
        [p for p in grouped if split_of.get(p) != "heldout"], config.val_fraction, config.seed
    )
    judgment_ids = [j.id for j in proj.judgments(purpose="annotation")]
    return RewardData(
        _examples(grouped, train_ids),
        _examples(grouped, val_ids),
        _examples(grouped, heldout_ids),
        data_snapshot_hash(judgment_ids, rows),
    )


def encode_pair(tokenizer, prompt, response: str, max_length: int) -> list[int]:
    """Token ids of prompt+response ending with EOS (see `encode_scored`)."""
    return encode_scored(tokenizer, prompt, response, max_length)[0]


def encode_scored(tokenizer, prompt, response: str, max_length: int) -> tuple[list[int], int]:
    """(token ids of prompt+response ending with EOS, index where the response begins).

    The prompt is formatted exactly as the policy sees it (`core.models.loading.format_prompt`), so the
    reward model scores the policy's own token stream. Too long: keep the end, where the response and the
    EOS are. The start comes from the formatted prompt's own token count (a merge across the boundary can
    shift it by a token, which the mean over the response hardly notices).
    """
    from core.models.loading import format_prompt

    templated = isinstance(prompt, list) or bool(getattr(tokenizer, "chat_template", None))
    prefix = format_prompt(tokenizer, prompt)
    ids = tokenizer(prefix + response, add_special_tokens=not templated)["input_ids"]
    start = len(tokenizer(prefix, add_special_tokens=not templated)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids = ids + [tokenizer.eos_token_id]
    start = min(start, len(ids) - 1)  # at least the EOS counts as response
    cut = max(0, len(ids) - max_length)
    return ids[cut:], max(0, start - cut)


def tokenize(proj, tokenizer, examples: Iterable[PromptExample], max_length: int) -> None:
    for ex in examples:
        prompt = proj.prompt(ex.prompt_id).prompt
        texts = {r.id: r.text for r in proj.responses(ex.prompt_id)}
        missing = [r for r in ex.response_ids if r not in texts]
        if missing:
            raise UserError(f"response {missing[0]} of prompt {ex.prompt_id} is no longer in the project")
        encoded = [encode_scored(tokenizer, prompt, texts[r], max_length) for r in ex.response_ids]
        ex.tokens = [ids for ids, _ in encoded]
        ex.starts = [start for _, start in encoded]


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
        from peft import LoraConfig, get_peft_model

        targets = config.lora_target_modules
        targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
        model = get_peft_model(
            model,
            LoraConfig(
                task_type="SEQ_CLS",
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.0,
                target_modules=targets,
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
    (pooling="mean"; `starts` [N] = where each response begins, counted in attended tokens), at the
    last non-pad token (pooling="last"), or over the average of those two (pooling="both")."""
    backbone, head = _backbone_and_head(model)
    # Positions count attended tokens only, so a left-padded sequence sees the same positions as unpadded.
    position_ids = (attention_mask.long().cumsum(1) - 1).clamp(min=0)  # [N, T]
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # [N, T, H]
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]  # [N, H]
    if pooling in ("mean", "both"):
        if starts is None:
            starts = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
        span = (position_ids >= starts[:, None]) & attention_mask.bool()  # [N, T]
        weights = span.to(hidden.dtype)[..., None]  # [N, T, 1]
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # [N, H]
        if pooling == "both":
            pooled = 0.5 * (pooled + last)
    else:
        pooled = last
    # The head in fp32 even under autocast: rewards are compared and centred, bf16 would tie close ones.
    with torch.autocast(pooled.device.type, enabled=False):
        return head(pooled.float()).squeeze(-1)  # [N]


def bradley_terry_loss(rewards, winners, losers, margins, groups, n_groups: int):
    """Per-group mean of -log sigmoid(r_w - r_l - m).

    rewards [N]; winners, losers, groups [P] long; margins [P]. Returns (group_loss [n_groups],
    pair_loss [P], diff [P] = r_w - r_l). Each response was scored once; pairs index into the scores.
    """
    diff = rewards[winners] - rewards[losers]  # [P]
    pair_loss = -F.logsigmoid(diff - margins)  # [P]
    sums = torch.zeros(n_groups, dtype=pair_loss.dtype, device=pair_loss.device).index_add(0, groups, pair_loss)
    counts = torch.zeros(n_groups, dtype=pair_loss.dtype, device=pair_loss.device).index_add(
        0, groups, torch.ones_like(pair_loss)
    )
    return sums / counts.clamp(min=1), pair_loss, diff


@dataclass
class Batch:
    """Several prompts' responses padded together, and their pairs as indices into the rows."""

    input_ids: torch.Tensor  # [N, T]
    attention_mask: torch.Tensor  # [N, T]
    starts: torch.Tensor  # [N] where each response begins (attended-token index; 0 when unknown)
    winners: torch.Tensor  # [P]
    losers: torch.Tensor  # [P]
    margins: torch.Tensor  # [P]
    groups: torch.Tensor  # [P] prompt index within the batch
    n_prompts: int
    n_tokens: int

    @property
    def n_pairs(self) -> int:
        return int(self.winners.shape[0])


def collate(examples: Sequence[PromptExample], pad_id: int, device, padding_side: str = "right") -> Batch:
    seqs: list[list[int]] = []
    starts: list[int] = []
    w, l, m, g = [], [], [], []
    for gi, ex in enumerate(examples):
        base = len(seqs)
        seqs.extend(ex.tokens)
        starts.extend(ex.starts if len(ex.starts) == len(ex.tokens) else [0] * len(ex.tokens))
        for wi, li, mi in ex.pairs:
            w.append(base + wi)
            l.append(base + li)
            m.append(mi)
            g.append(gi)
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        if padding_side == "right":
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        else:
            ids[i, T - len(s) :] = torch.tensor(s)
            mask[i, T - len(s) :] = 1
    nb = device.type == "cuda"
    return Batch(
        ids.to(device, non_blocking=nb),
        mask.to(device, non_blocking=nb),
        torch.tensor(starts, dtype=torch.long).to(device),
        torch.tensor(w, dtype=torch.long).to(device),
        torch.tensor(l, dtype=torch.long).to(device),
        torch.tensor(m, dtype=torch.float32).to(device),
        torch.tensor(g, dtype=torch.long).to(device),
        len(examples),
        sum(len(s) for s in seqs),
    )


def lr_at(step: int, total: int, config: RewardConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine/linear/constant decay."""
    peak = config.learning_rate
    warmup = int(round(config.warmup_ratio * total))
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if config.lr_schedule == "constant":
        return peak
    low = peak * config.min_lr_ratio
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.lr_schedule == "linear":
        return peak - (peak - low) * progress
    return low + (peak - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------------
# The training step (shared by the job and bench/reward.py)
# ----------------------------------------------------------------------------------------------------
class RewardTrainer:
    """Model + optimizer + the step. Knows nothing about the project."""

    def __init__(self, model, tokenizer, config: RewardConfig, total_steps: int, device: torch.device):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device = device
        self.total_steps = max(1, total_steps)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        # Keep parameter order == self.names order so optimizer state maps back by name.
        order = {id(p): i for i, p in enumerate(params)}
        self.names = [self.names[order[id(p)]] for p in decay + no_decay]
        self.params = decay + no_decay
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
            fused=device.type == "cuda",
        )
        self.autocast = device.type == "cuda" and config.bf16
        self.pad_id = tokenizer.pad_token_id

    def _autocast(self):
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batch(self, examples: Sequence[PromptExample]) -> Batch:
        return collate(examples, self.pad_id, self.device)

    def rewards(self, b: Batch) -> torch.Tensor:
        return sequence_rewards(self.model, b.input_ids, b.attention_mask, b.starts, self.config.pooling)

    def train_step(self, micro_batches: Sequence[Batch], step: int) -> dict[str, float]:
        """One optimizer step over the micro-batches (gradient accumulation); returns step metrics."""
        self.model.train()
        lr = lr_at(step, self.total_steps, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_prompts = sum(b.n_prompts for b in micro_batches)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        diff_sum = torch.zeros((), device=self.device)
        n_pairs = 0
        for b in micro_batches:
            with self._autocast():
                rewards = self.rewards(b)  # [N]
            group_loss, _, diff = bradley_terry_loss(rewards, b.winners, b.losers, b.margins, b.groups, b.n_prompts)
            loss = group_loss.sum() / n_prompts  # every prompt weighs the same in the step
            loss.backward()
            loss_sum += loss.detach()
            correct += _correct(diff.detach()).sum()
            diff_sum += diff.detach().sum()
            n_pairs += b.n_pairs
        if self.config.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in self.params if p.grad is not None])
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.stack([loss_sum, correct / max(1, n_pairs), diff_sum / max(1, n_pairs), grad_norm.float()])
        loss_v, acc_v, margin_v, gn_v = stats.tolist()  # one device sync per step
        return {"loss/train": loss_v, "accuracy/train": acc_v, "margin/train": margin_v, "grad/norm": gn_v, "lr": lr}

    @torch.no_grad()
    def evaluate(self, examples: Sequence[PromptExample], prefix: str = "val") -> dict[str, float]:
        """Prompt-weighted loss (as in training), pairwise accuracy and mean margin r_w - r_l."""
        self.model.eval()
        if not examples:
            return {}
        size = self.config.prompts_per_micro_batch
        loss_sum, correct, diff_sum, n_pairs = 0.0, 0.0, 0.0, 0
        for i in range(0, len(examples), size):
            b = self.batch(examples[i : i + size])
            with self._autocast():
                rewards = self.rewards(b)
            group_loss, _, diff = bradley_terry_loss(rewards, b.winners, b.losers, b.margins, b.groups, b.n_prompts)
            loss_sum += float(group_loss.sum())
            correct += float(_correct(diff).sum())
            diff_sum += float(diff.sum())
            n_pairs += b.n_pairs
        return {
            f"loss/{prefix}": loss_sum / len(examples),
            f"accuracy/{prefix}": correct / max(1, n_pairs),
            f"margin/{prefix}": diff_sum / max(1, n_pairs),
        }

    def raw_scores(self, examples: Sequence[PromptExample], batch_size: int = 32) -> list[float]:
        """Uncentred rewards of every response of the examples, in order."""
        seqs = [t for ex in examples for t in ex.tokens]
        starts = [s for ex in examples for s in (ex.starts or [0] * len(ex.tokens))]
        return score_sequences(
            self.model,
            seqs,
            self.pad_id,
            self.device,
            self.autocast,
            batch_size,
            starts=starts,
            pooling=self.config.pooling,
        )


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


def _correct(diff: torch.Tensor) -> torch.Tensor:
    """1 when the winner scores higher, 0.5 on an exact tie (a constant model scores 0.5, not 0)."""
    return (diff > 0).float() + 0.5 * (diff == 0).float()


def steps_per_epoch(n_prompts: int, config: RewardConfig) -> int:
    return max(1, math.ceil(n_prompts / config.prompts_per_step))


def total_steps(n_prompts: int, config: RewardConfig) -> int:
    if config.max_steps > 0:
        return config.max_steps
    return max(1, math.ceil(config.epochs * steps_per_epoch(n_prompts, config)))


def step_examples(train: Sequence[PromptExample], step: int, config: RewardConfig) -> list[list[PromptExample]]:
    """The micro-batches of optimizer step `step`: a deterministic function of (seed, step), so a resumed
    run sees exactly the data it would have seen."""
    spe = steps_per_epoch(len(train), config)
    epoch, index = divmod(step, spe)
    order = list(range(len(train)))
    random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
    chosen = order[index * config.prompts_per_step : (index + 1) * config.prompts_per_step]
    size = config.prompts_per_micro_batch
    return [[train[i] for i in chosen[j : j + size]] for j in range(0, len(chosen), size)]


# ----------------------------------------------------------------------------------------------------
# Pre-flight
# ----------------------------------------------------------------------------------------------------
def _param_count(path: str) -> int:
    from core.models.loading import count_parameters, load_config

    return count_parameters(load_config(path))


def available_memory(device: torch.device) -> int:
    from core.models.loading import available_memory as free_bytes

    return free_bytes(device)


def estimate_memory(n_params: int, config: RewardConfig) -> int:
    """Bytes for weights + grads + AdamW state, plus a rough activation allowance."""
    if config.finetune == "lora":
        train_frac = 0.02
    elif config.finetune == "freeze":
        train_frac = 0.5
    else:
        train_frac = 1.0
    weights = 4 * n_params
    training = 12 * n_params * train_frac  # fp32 grad + two Adam moments
    activations = 2 * n_params**0.5 * config.max_length * config.prompts_per_micro_batch * 4 * 64
    return int(weights + training + activations)


def preflight(config: RewardConfig, data: RewardData, device: torch.device) -> dict:
    """Refuse early, with a plain message, when the data or the memory cannot give a useful model."""
    n_pairs = data.n_pairs
    n_prompts = len(data.train) + len(data.val)
    if n_pairs < config.min_pairs:
        raise UserError(
            f"only {n_pairs} preference pairs from {n_prompts} prompts: rank more "
            f"(at least {config.min_pairs} pairs are needed to train a reward model)"
        )
    if len(data.train) < 1 or len(data.val) < 1:
        raise UserError(
            f"only {n_prompts} prompts have judgments: rank candidates for at least 2 training prompts "
            "(whole prompts are kept aside for validation)"
        )
    n_params = _param_count(config.base_model)
    from core.training.quantization import plan_for_reward

    # The memory plan (quantization, checkpointing) that fits, or a UserError saying what was tried.
    plan = plan_for_reward(config, device, n_params, available_memory(device))
    return {"n_params": n_params, "memory_needed": plan.need_bytes, "memory_free": plan.free_bytes, **plan.as_dict()}


# ----------------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------------
@dataclass
class RewardResult:
    run_id: int
    steps: int
    stopped_early: bool
    offset: float
    scale: float
    metrics: dict[str, float]
    """Final figures: accuracy/val (held-out validation prompts), loss/val, margin/val, and
    accuracy/heldout when heldout-split prompts have judgments."""

    @property
    def heldout_accuracy(self) -> Optional[float]:
        return self.metrics.get("accuracy/heldout", self.metrics.get("accuracy/val"))


def _save_checkpoint(
    proj, run_id: int, trainer: RewardTrainer, state: dict, data: RewardData, best: Optional[dict[str, torch.Tensor]]
) -> None:
    tensors = dict(ckpt.trainable_state(trainer.model))
    tensors.update(ckpt.rng_state())
    if best is not None and state["best_step"] != state["step"]:  # else the weights above are the best
        tensors.update({f"best::{k}": v for k, v in best.items()})
    opt_bytes, opt_meta = ckpt.optimizer_to_files(trainer.optimizer, trainer.names)
    proj.save_artifact(
        run_id,
        CHECKPOINT,
        {
            "model.safetensors": ckpt.tensors_to_bytes(tensors),
            "optimizer.safetensors": opt_bytes,
            "optimizer.json": ckpt.json_bytes(opt_meta),
            "state.json": ckpt.json_bytes(state),
            "data.json": ckpt.json_bytes(data.ids()),
        },
    )


def train_reward_model(
    proj, config: RewardConfig | dict, *, cancel: CancelToken = NEVER, resume_run: Optional[int] = None
) -> Iterator[Progress]:
    """Train a reward model on the project's judgments; returns `RewardResult`.

    Yields one Progress per optimizer step: step/total for ETA, metrics `loss/train`, `accuracy/train`,
    `margin/train`, `grad/norm`, `lr`, plus `loss/val`, `accuracy/val`, `margin/val` on evaluation
    steps. The first event carries `run/id`. Cancel: a checkpoint is saved at the step boundary, the run
    is marked "cancelled" and `Cancelled` propagates; `resume_run=run_id` continues from it.
    With `gpus` > 1 the same run trains data-parallel in worker processes (core/training/distributed.py).
    """
    from core.training import distributed

    if distributed.wants_data_parallel(config, proj, resume_run):
        return (yield from distributed.train_reward_model_dp(proj, config, cancel=cancel, resume_run=resume_run))
    resume_state: Optional[dict] = None
    resume_files: Optional[dict] = None
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
        else:  # stopped before its first checkpoint: start over inside the same run
            data = collect_data(proj, config)
        device = resolve_device(config.device)
    else:
        if isinstance(config, dict):
            config = RewardConfig.from_dict(config)
        device = resolve_device(config.device)
        data = collect_data(proj, config)
        pre = preflight(config, data, device)
        # The run records the concrete plan (never "auto"), so a resume loads the model the same way.
        config = dataclasses.replace(
            config, quantization=pre["quantization"], gradient_checkpointing=pre["gradient_checkpointing"]
        )
        run_id = proj.create_run("reward", asdict(config))
        proj.update_run(
            run_id,
            status="running",
            summary={
                "data_hash": data.snapshot_hash,
                "pairs_train": sum(len(e.pairs) for e in data.train),
                "pairs_val": sum(len(e.pairs) for e in data.val),
                "prompts_train": len(data.train),
                "prompts_val": len(data.val),
                "prompts_heldout": len(data.heldout),
                "n_params": pre["n_params"],
                "memory_plan": pre["plan"],
            },
        )

    total = total_steps(len(data.train), config)
    start = resume_state["step"] if resume_state else 0
    summary = dict(proj.run(run_id).summary or {})
    summary.pop("error", None)
    try:
        proj.update_run(run_id, status="running", summary=summary)
        yield Progress(start, total, "loading the base model", metrics={"run/id": float(run_id)})
        model, tokenizer = build_reward_model(config, device)
        cancel.raise_if_cancelled()
        yield Progress(start, total, "tokenizing", metrics={"run/id": float(run_id)})
        tokenize(proj, tokenizer, data.train + data.val + data.heldout, config.max_length)
        trainer = RewardTrainer(model, tokenizer, config, total, device)

        state = {"step": 0, "best_acc": -1.0, "best_step": 0, "bad_evals": 0, "stopped_early": False}
        best: Optional[dict[str, torch.Tensor]] = None
        if resume_state is not None:
            tensors = ckpt.bytes_to_tensors(resume_files["model.safetensors"])
            ckpt.load_trainable_state(model, {k: v for k, v in tensors.items() if "::" not in k})
            best = {k[len("best::") :]: v for k, v in tensors.items() if k.startswith("best::")} or None
            if best is None and config.restore_best and resume_state["best_step"] == resume_state["step"] > 0:
                best = {k: v.detach().to("cpu", copy=True) for k, v in ckpt.trainable_state(model).items()}
            ckpt.set_rng_state(tensors)
            ckpt.optimizer_from_files(
                trainer.optimizer,
                trainer.names,
                resume_files["optimizer.safetensors"],
                ckpt.json_load(resume_files["optimizer.json"]),
            )
            state = resume_state
            proj.truncate_metrics(run_id, state["step"])  # steps after the checkpoint are redone
            proj.audit("training resumed", run=run_id)
        else:
            proj.truncate_metrics(run_id, 0)
            proj.audit("training started", run=run_id)

        step = state["step"]
        t0, tokens_seen, pairs_seen = time.monotonic(), 0, 0
        while step < total and not state["stopped_early"]:
            try:
                cancel.raise_if_cancelled()
            except Cancelled:
                _save_checkpoint(proj, run_id, trainer, state, data, best)
                raise
            micro = [trainer.batch(exs) for exs in step_examples(data.train, step, config)]
            metrics = trainer.train_step(micro, step)
            step += 1
            tokens_seen += sum(b.n_tokens for b in micro)
            pairs_seen += sum(b.n_pairs for b in micro)
            elapsed = max(1e-9, time.monotonic() - t0)
            metrics["throughput/pairs_per_s"] = pairs_seen / elapsed
            metrics["throughput/tokens_per_s"] = tokens_seen / elapsed
            metrics["progress/epoch"] = step / steps_per_epoch(len(data.train), config)
            if step % config.eval_every == 0 or step == total:
                val = trainer.evaluate(data.val)
                metrics.update(val)
                if val["accuracy/val"] > state["best_acc"]:
                    state.update(best_acc=val["accuracy/val"], best_step=step, bad_evals=0)
                    if config.restore_best:  # CPU copy, so a later, worse evaluation can roll back
                        best = {k: v.detach().to("cpu", copy=True) for k, v in ckpt.trainable_state(model).items()}
                else:
                    state["bad_evals"] += 1
                    if (
                        config.early_stopping_patience
                        and state["bad_evals"] >= config.early_stopping_patience
                        and step >= config.early_stopping_after * total
                    ):
                        state["stopped_early"] = True
            state["step"] = step
            proj.log_metrics(run_id, step, metrics)
            if config.checkpoint_every > 0 and step % config.checkpoint_every == 0 and step < total:
                _save_checkpoint(proj, run_id, trainer, state, data, best)
            yield Progress(step, total, "training", metrics=metrics)

        # Finish: best weights, centring, final figures, the "final" artifact (short; not cancellable).
        if config.restore_best and best is not None and state["best_step"] != step:
            ckpt.load_trainable_state(model, best)
        final = trainer.evaluate(data.val)
        if data.heldout:
            final.update(trainer.evaluate(data.heldout, prefix="heldout"))
        raw = trainer.raw_scores(data.train)
        offset = float(sum(raw) / len(raw))
        scale = float((sum((r - offset) ** 2 for r in raw) / max(1, len(raw) - 1)) ** 0.5) or 1.0
        meta = {
            "base_model": config.base_model,
            "config": asdict(config),
            "offset": offset,
            "scale": scale,
            "pad_token_id": tokenizer.pad_token_id,
            "steps": step,
            "best_step": state["best_step"],
        }
        proj.save_artifact(
            run_id,
            FINAL,
            {
                "model.safetensors": ckpt.tensors_to_bytes(ckpt.trainable_state(model)),
                "reward.json": ckpt.json_bytes(meta),
            },
        )
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
        # The bar ends full even after an early stop; `final/steps` says how many steps were run.
        yield Progress(
            total,
            total,
            "stopped early" if state["stopped_early"] else "done",
            metrics={"final/steps": float(step), **{f"final/{k}": v for k, v in final.items()}},
        )
        return RewardResult(run_id, step, state["stopped_early"], offset, scale, final)
    except Cancelled:
        proj.update_run(run_id, status="cancelled", summary=summary)
        raise
    except BaseException as exc:  # a crash: mark it, keep the last checkpoint for resume
        summary["error"] = type(exc).__name__  # the type only: messages may quote user text
        try:
            proj.update_run(run_id, status="failed", summary=summary)
        except Exception:
            pass
        raise


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
