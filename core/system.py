"""What the machine offers for compute, in words for the status bar (imports torch: call it off the GUI thread)."""

from __future__ import annotations

__all__ = ["device_summary"]


def device_summary() -> str:
    """E.g. "CUDA: NVIDIA H100 (80 GB)", "Apple MPS", "CPU (8 threads)"."""
    import torch

    if torch.cuda.is_available():
        idx = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        extra = f" ×{torch.cuda.device_count()}" if torch.cuda.device_count() > 1 else ""
        return f"CUDA: {props.name}{extra} ({props.total_memory / 2**30:.0f} GB)"
    backend = getattr(torch.backends, "mps", None)
    if backend is not None and backend.is_available():
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
