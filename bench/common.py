"""What the GPU benches share: the 0.5B Qwen2 shape they build with random weights, and timing."""

from __future__ import annotations

import time

# A randomly initialised model of Qwen2-0.5B's shape (no weights are downloaded; the shape sets the cost).
QWEN2_05B = dict(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
    rope_theta=1_000_000.0,
)


def sync(device) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int):
    """Best of `repeats` runs after one warm-up: (seconds, last result)."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, result
