"""Batched sampling from a causal LM: left padding, static KV cache, per-row temperatures, EOS per row.

`sample(model, tokenizer, input_ids, attention_mask, settings)` is the one entry point (candidate
generation and PPO/RLOO rollouts both use it). Backends:

- "static": a hand-written decoding loop over a pre-allocated `StaticCache`. Masks are built here as 4D
  tensors over the cache slots, so nothing is concatenated or re-allocated per token; on CUDA the
  one-token decode step is captured once as a CUDA graph and replayed (no Python/launch overhead), with
  an eager fallback if capture fails. `compile=True` instead wraps the decode step in `torch.compile`.
- "hf": plain `model.generate` (eager), the fallback for architectures the static loop can't drive.
- "auto" (default): "static", falling back to "hf" on an unsupported model.

Left padding: pad slots are never attended to by real tokens, position ids count real tokens only
(cumsum(mask) - 1), so each row gives the same tokens as it would alone. A pad query attends to itself
only, which keeps its (ignored) hidden state finite: a fully masked softmax row would give NaN, and a NaN
in a cached value poisons every later row through 0 × NaN.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch

from core.errors import UserError
from core.models.loading import max_positions, position_ids_from_mask

log = logging.getLogger(__name__)


@dataclass
class SamplingSettings:
    temperature: float = 0.8
    """Softmax temperature; 0 means greedy (argmax)."""
    top_p: float = 0.95
    """Nucleus sampling: keep the smallest set of tokens whose probability sums to top_p (1 = off)."""
    top_k: int = 0
    """Keep only the k most likely tokens (0 = off)."""
    max_new_tokens: int = 128
    """Most tokens generated per response (EOS included)."""
    seed: Optional[int] = 0
    """Seed for the sampling generator; the same seed and inputs give the same outputs. None = random."""
    temperatures: Optional[tuple[float, ...]] = None
    """A mix for diversity: candidate k of a prompt uses temperatures[k % len]; overrides `temperature`."""

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["temperatures"] is not None:
            d["temperatures"] = list(d["temperatures"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingSettings":
        d = dict(d)
        if d.get("temperatures") is not None:
            d["temperatures"] = tuple(float(t) for t in d["temperatures"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def temperature_for(self, candidate_index: int) -> float:
        if self.temperatures:
            return float(self.temperatures[candidate_index % len(self.temperatures)])
        return float(self.temperature)


@dataclass
class SampleOutput:
    sequences: torch.Tensor
    """(B, P + T) prompt ids (left-padded, as given) followed by response ids."""
    response_ids: torch.Tensor
    """(B, T) generated ids; EOS kept, pad after it. T = longest response in the batch."""
    response_mask: torch.Tensor
    """(B, T) 1 for generated tokens up to and including EOS, 0 for pad after it."""
    texts: list[str]
    """Decoded responses, special tokens (EOS, pad) removed."""
    logprobs: Optional[torch.Tensor] = None
    """(B, T) log-prob of each sampled token under the temperature-scaled full distribution (no
    top-k/top-p), 0 on pad; only when asked for (return_logprobs=True)."""
    backend: str = ""
    """Which path ran: "static", "static+cudagraph", "static+compile" or "hf"."""
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# token choice


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and the generation config's."""
    ids = set()
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    return sorted(ids)


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set logits outside top-k / the top-p nucleus to -inf. logits: (B, V) float, already tempered.

    With top-k on, the nucleus is found among those k only (sorting k values, not the vocabulary).
    """
    V = logits.shape[-1]
    use_k = bool(top_k) and 0 < top_k < V
    use_p = top_p is not None and 0.0 < top_p < 1.0
    if not (use_k or use_p):
        return logits
    if use_k:
        values, idx = torch.topk(logits, top_k, dim=-1)  # (B, k), sorted descending
    else:
        values, idx = torch.sort(logits, descending=True, dim=-1)
    if use_p:
        probs = values.softmax(-1)
        # drop a token when the mass before it already reaches top_p (the top token always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        values = values.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, idx, values)


def sample_categorical(probs: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """One draw per row from probs (B, V): argmax(p / E) with E ~ Exp(1) is an exact categorical sample
    (the exponential race), and much faster than torch.multinomial on CPU; no host sync on GPU."""
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return (probs / race).argmax(-1)


def choose_tokens(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    settings: SamplingSettings,
    generator: Optional[torch.Generator],
    want_logprobs: bool = False,
    all_greedy: Optional[bool] = None,
):
    """Next token per row. logits (B, V); temperatures (B,), 0 = greedy. Returns (tokens (B,), logprobs).

    all_greedy: pass it when known, to save a host sync per step.
    """
    logits = logits.float()
    greedy_rows = temperatures <= 0
    safe_t = torch.where(greedy_rows, torch.ones_like(temperatures), temperatures)
    scaled = logits / safe_t[:, None]  # (B, V)
    greedy_tok = logits.argmax(-1)
    if all_greedy is None:
        all_greedy = bool(greedy_rows.all())
    if all_greedy:
        tokens = greedy_tok
    else:
        filtered = filter_logits(scaled, settings.top_k, settings.top_p)
        sampled = sample_categorical(filtered.softmax(-1), generator)
        tokens = torch.where(greedy_rows, greedy_tok, sampled)
    logprobs = None
    if want_logprobs:
        logprobs = scaled.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)
    return tokens, logprobs


# ---------------------------------------------------------------------------------------------------
# the public entry point


def sample(
    model,
    tokenizer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: SamplingSettings,
    *,
    temperatures: Optional[Sequence[float] | torch.Tensor] = None,
    backend: str = "auto",
    compile: bool = False,
    cuda_graph: bool = True,
    compact_rows: bool = True,
    return_logprobs: bool = False,
) -> SampleOutput:
    """Generate one response per row of a left-padded batch.

    input_ids, attention_mask: (B, P) on the model's device, left-padded (see `encode_batch`).
    temperatures: optional per-row temperatures (B,), overriding `settings.temperature`.
    compact_rows: in the eager static loop, drop finished rows once half the batch is done (not with
    CUDA graphs or compile, whose shapes are fixed).
    The model is put in eval mode for sampling and its previous mode restored afterwards.
    """
    if attention_mask[:, -1].min() == 0:
        raise ValueError("prompts must be left-padded: the last column holds a pad token")
    device = input_ids.device
    B = input_ids.shape[0]
    if temperatures is None:
        temps = torch.full((B,), float(settings.temperature), device=device)
    else:
        temps = torch.as_tensor(temperatures, dtype=torch.float32, device=device).reshape(B)
    limit = max_positions(model.config)
    if limit is not None and input_ids.shape[1] + settings.max_new_tokens > limit:
        raise UserError(
            f"Prompt ({input_ids.shape[1]} tokens) plus max new tokens ({settings.max_new_tokens}) is longer "
            f"than this model's {limit}-token context; lower max new tokens or shorten the prompts."
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if backend in ("auto", "static"):
                try:
                    return _sample_static(
                        model,
                        tokenizer,
                        input_ids,
                        attention_mask,
                        settings,
                        temps,
                        compile=compile,
                        cuda_graph=cuda_graph,
                        compact_rows=compact_rows,
                        want_logprobs=return_logprobs,
                    )
                except _Unsupported as exc:
                    if backend == "static":
                        raise
                    log.info("static decoding unavailable (%s); using model.generate", exc)
            elif backend != "hf":
                raise ValueError(f"unknown backend {backend!r}")
            return _sample_hf(model, tokenizer, input_ids, attention_mask, settings, temps, return_logprobs)
    finally:
        model.train(was_training)


def _make_generator(device, seed: Optional[int]) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF)
    return gen


def _finish(tokenizer, input_ids, tokens: torch.Tensor, eos_ids, pad_id, logprobs, backend) -> SampleOutput:
    """tokens (B, T) as generated (anything after EOS is junk) -> padded ids, mask, texts."""
    B, T = tokens.shape
    is_eos = torch.zeros_like(tokens, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= tokens == e
    # a token is part of the response if no EOS came strictly before it
    eos_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # (B, T)
    mask = ~eos_before
    lengths = mask.long().sum(-1)  # (B,)
    T_keep = int(lengths.max()) if B else 0
    response_ids = tokens.masked_fill(~mask, pad_id)[:, :T_keep]
    response_mask = mask[:, :T_keep].long()
    if logprobs is not None:
        logprobs = logprobs.masked_fill(~mask, 0.0)[:, :T_keep]
    texts = tokenizer.batch_decode(
        [row[: int(n)].tolist() for row, n in zip(response_ids.cpu(), lengths.cpu())],
        skip_special_tokens=True,
    )
    return SampleOutput(
        sequences=torch.cat([input_ids, response_ids], dim=1),
        response_ids=response_ids,
        response_mask=response_mask,
        texts=texts,
        logprobs=logprobs,
        backend=backend,
    )


# ---------------------------------------------------------------------------------------------------
# static-cache decoding loop


class _Unsupported(Exception):
    pass


def _attention_kind(model) -> str:
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    if impl not in ("sdpa", "eager"):
        raise _Unsupported(f"attention implementation {impl!r}")
    return impl


def _as_attention_mask(allowed: torch.Tensor, impl: str, dtype) -> torch.Tensor:
    """A (B, 1, Q, L) boolean "may attend" mask in the form the attention implementation wants."""
    if impl == "sdpa":
        return allowed
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    neg = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, neg)


def _sample_static(
    model, tokenizer, input_ids, attention_mask, settings, temps, *, compile, cuda_graph, compact_rows, want_logprobs
):
    from transformers import StaticCache

    impl = _attention_kind(model)
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        raise _Unsupported("encoder-decoder model")
    device = input_ids.device
    dtype = next(model.parameters()).dtype
    B, P = input_ids.shape
    T = int(settings.max_new_tokens)
    L = P + T
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    gen = _make_generator(device, settings.seed)
    try:
        cache = StaticCache(config=config, max_cache_len=L)
    except Exception as exc:  # noqa: BLE001 - any config the cache cannot describe
        raise _Unsupported(f"StaticCache: {exc}") from exc
    if any(getattr(layer, "is_sliding", False) for layer in cache.layers):
        raise _Unsupported("sliding-window layers")

    # valid[b, j]: cache slot j holds a real token of row b. Prompt pads stay False forever.
    valid = torch.zeros((B, L), dtype=torch.bool, device=device)
    valid[:, :P] = attention_mask.bool()
    position_ids = position_ids_from_mask(attention_mask)  # (B, P)

    # Prefill: query i may attend slot j <= i that is a real token; a pad query attends to itself.
    slots = torch.arange(L, device=device)
    causal = slots[None, :] <= torch.arange(P, device=device)[:, None]  # (P, L)
    allowed = causal[None] & valid[:, None, :]  # (B, P, L)
    allowed |= (slots[None, :] == torch.arange(P, device=device)[:, None])[None]
    try:
        out = model(
            input_ids=input_ids,
            attention_mask=_as_attention_mask(allowed[:, None], impl, dtype),
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    except TypeError as exc:  # a wrapper or architecture whose forward lacks these arguments
        raise _Unsupported(f"forward signature: {exc}") from exc
    logits = out.logits[:, -1]  # (B, V)

    # Static buffers the decode step reads; updated in place so a captured graph sees new values.
    step_ids = torch.zeros((B, 1), dtype=torch.long, device=device)
    step_pos = position_ids[:, -1:].clone()  # (B, 1): last real position, +1 before each step
    step_mask = valid[:, None, None, :]  # (B, 1, 1, L) view: slots filled so far

    def decode_step():
        mask = step_mask if impl == "sdpa" else _as_attention_mask(step_mask, impl, dtype)
        return model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_pos,
            cache=cache,
            use_cache=True,
        ).logits[:, -1]

    backend = "static"
    runner = decode_step
    if compile:
        runner = torch.compile(decode_step, dynamic=False)
        backend = "static+compile"
    graph = None
    use_graph = cuda_graph and not compile and device.type == "cuda" and impl == "sdpa"

    tokens = torch.full((B, T), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((B, T), device=device) if want_logprobs else None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    eos_t = torch.tensor(eos_ids, device=device, dtype=torch.long)
    warmup_steps = 3
    all_greedy = bool((temps <= 0).all())
    rows = None  # after compaction: original row of each live row
    may_compact = compact_rows and not compile and not use_graph
    for t in range(T):
        tok, lp = choose_tokens(logits, temps, settings, gen, want_logprobs, all_greedy)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        where = slice(None) if rows is None else rows
        tokens[where, t] = tok
        if logps is not None:
            logps[where, t] = lp
        done |= torch.isin(tok, eos_t)
        if t == T - 1:
            break
        if t % 8 == 7:  # host sync only every few steps
            n_live = int((~done).sum())
            if n_live == 0:
                break
            if may_compact and n_live <= done.shape[0] // 2:
                # Drop finished rows from the batch and the cache: a few long replies then don't cost
                # the whole batch's compute.
                keep = (~done).nonzero().squeeze(-1)
                rows = keep if rows is None else rows[keep]
                tok, done, temps = tok[keep], done[keep], temps[keep]
                step_ids, step_pos, valid = step_ids[keep], step_pos[keep], valid[keep]
                step_mask = valid[:, None, None, :]
                for layer in cache.layers:
                    layer.keys = layer.keys.index_select(0, keep)
                    layer.values = layer.values.index_select(0, keep)
                    layer.batch_size = len(keep)
        step_ids.copy_(tok[:, None])
        step_pos.add_(1)
        valid[:, P + t] = True
        if use_graph and graph is None and t >= warmup_steps:
            graph, graph_logits = _capture(runner)
            if graph is None:
                use_graph = False
            else:
                backend = "static+cudagraph"
        if graph is not None:
            graph.replay()
            logits = graph_logits
        elif use_graph:
            # CUDA graphs want their warm-up iterations on a side stream.
            side = torch.cuda.Stream(device=device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                logits = runner()
            torch.cuda.current_stream(device).wait_stream(side)
        else:
            logits = runner()
    return _finish(tokenizer, input_ids, tokens, eos_ids, pad_id, logps, backend)


def _capture(step):
    """Capture one decode step as a CUDA graph. Capture records without running, so the cache is untouched."""
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = step()
        return graph, static_logits
    except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager steps
        log.info("CUDA graph capture failed (%s); decoding eagerly", type(exc).__name__)
        torch.cuda.synchronize()
        return None, None


# ---------------------------------------------------------------------------------------------------
# fallback: transformers' generate


def _sample_hf(model, tokenizer, input_ids, attention_mask, settings, temps, want_logprobs) -> SampleOutput:
    from transformers import GenerationConfig

    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    B = input_ids.shape[0]
    T = int(settings.max_new_tokens)
    tokens = torch.full((B, T), pad_id, dtype=torch.long, device=input_ids.device)
    logps = torch.zeros((B, T), device=input_ids.device) if want_logprobs else None
    # generate() has one temperature per call: run each distinct temperature as its own group.
    for temp in sorted(set(temps.tolist())):
        rows = (temps == temp).nonzero().squeeze(-1)
        do_sample = temp > 0
        config = GenerationConfig(
            max_new_tokens=T,
            do_sample=do_sample,
            temperature=temp if do_sample else None,
            top_p=settings.top_p if do_sample else None,
            top_k=settings.top_k if do_sample else None,
            pad_token_id=pad_id,
            eos_token_id=eos_ids,
            output_scores=want_logprobs,
            return_dict_in_generate=True,
        )
        sub_ids, sub_mask = input_ids[rows], attention_mask[rows]
        with torch.random.fork_rng(devices=[input_ids.device] if input_ids.device.type == "cuda" else []):
            if settings.seed is not None:
                seed = zlib.crc32(f"{settings.seed}:{temp}".encode())
                torch.manual_seed(seed)
            out = model.generate(input_ids=sub_ids, attention_mask=sub_mask, generation_config=config)
        new = out.sequences[:, sub_ids.shape[1] :]
        tokens[rows, : new.shape[1]] = new
        if want_logprobs:
            # scores are the processed logits; recompute the tempered full-distribution log-prob instead
            full = (
                model(
                    input_ids=torch.cat([sub_ids, new], 1),
                    attention_mask=torch.cat([sub_mask, torch.ones_like(new)], 1),
                    position_ids=position_ids_from_mask(torch.cat([sub_mask, torch.ones_like(new)], 1)),
                )
                .logits[:, sub_ids.shape[1] - 1 : -1]
                .float()
            )
            scale = temp if temp > 0 else 1.0
            lp = (full / scale).log_softmax(-1).gather(-1, new[..., None]).squeeze(-1)
            logps[rows, : new.shape[1]] = lp
    return _finish(tokenizer, input_ids, tokens, eos_ids, pad_id, logps, "hf")


def generate_texts(model, tokenizer, prompts, settings: SamplingSettings, batch_size: int = 32, **kwargs) -> list[str]:
    """Convenience: prompts (strings or chats) -> one response text each, in order."""
    from core.models.loading import encode_batch

    device = next(model.parameters()).device
    limit = max_positions(model.config)
    max_prompt = None if limit is None else max(1, limit - settings.max_new_tokens)
    texts: list[str] = []
    for i in range(0, len(prompts), batch_size):
        batch = encode_batch(tokenizer, prompts[i : i + batch_size], max_tokens=max_prompt, device=device)
        out = sample(model, tokenizer, batch["input_ids"], batch["attention_mask"], settings, **kwargs)
        texts.extend(out.texts)
    return texts
