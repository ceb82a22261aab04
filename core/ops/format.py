"""Byte and parameter counts as people read them (pre-flight messages, the Models page)."""

from __future__ import annotations

from typing import Optional


def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return ""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MiB"
    return f"{n / 2**10:.0f} KiB"


def fmt_params(n: Optional[int]) -> str:
    if not n:
        return ""
    if n >= 1e9:
        return f"{n / 1e9:.1f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n / 1e3:.0f} K"
