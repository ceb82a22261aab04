"""A rough passphrase strength estimate for the new-project wizard (a hint, not a policy).

The estimate is the entropy of a random string of the same length over the character classes used,
cut down for repeats, runs and very common passwords; words of four or more letters count as ~11 bits
each when the passphrase looks like several words (diceware-style), which is what we recommend.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Strength", "strength"]

COMMON = {
    "password",
    "passw0rd",
    "123456",
    "12345678",
    "123456789",
    "qwerty",
    "letmein",
    "welcome",
    "admin",
    "iloveyou",
    "monkey",
    "dragon",
    "abc123",
    "111111",
    "secret",
    "changeme",
    "demo",
}
LABELS = ("very weak", "weak", "fair", "good", "strong")


@dataclass(frozen=True)
class Strength:
    score: int  # 0..4
    bits: float
    label: str
    hint: str


def _charset_bits(p: str) -> float:
    pool = 0
    pool += 26 if re.search(r"[a-z]", p) else 0
    pool += 26 if re.search(r"[A-Z]", p) else 0
    pool += 10 if re.search(r"[0-9]", p) else 0
    pool += 33 if re.search(r"[^a-zA-Z0-9\s]", p) else 0
    pool += 1 if " " in p else 0
    pool += 100 if re.search(r"[^\x00-\x7f]", p) else 0
    # Repeats and runs add little: count each distinct-from-previous character, and halve runs.
    effective = 0.0
    prev = None
    for ch in p:
        if ch == prev:
            effective += 0.2
        elif prev is not None and ch.isalnum() and prev.isalnum() and abs(ord(ch) - ord(prev)) == 1:
            effective += 0.5
        else:
            effective += 1.0
        prev = ch
    return effective * math.log2(max(pool, 2))


def _word_bits(p: str) -> float:
    """Letter runs of four or more count as dictionary words (~11 bits; 1 bit when repeated);
    every other character counts as a random one of its class."""
    bits, seen = 0.0, set()
    for token in re.findall(r"[A-Za-z]{4,}|.", p, re.S):
        if len(token) >= 4:
            bits += 1.0 if token.lower() in seen else 11.0
            seen.add(token.lower())
        else:
            bits += _charset_bits(token)
    return bits


def strength(passphrase: str) -> Strength:
    p = passphrase
    if not p:
        return Strength(0, 0.0, LABELS[0], "Type a passphrase.")
    if p.casefold() in COMMON:
        return Strength(0, 1.0, LABELS[0], "This is one of the most common passwords.")
    bits = min(_charset_bits(p), _word_bits(p))
    score = 0 if bits < 28 else 1 if bits < 40 else 2 if bits < 56 else 3 if bits < 72 else 4
    if len(p) < 12:  # short ones fall to offline guessing however mixed they look
        score = min(score, 2)
    if score <= 1:
        hint = "Too easy to guess. Use four or more random words, or a longer phrase."
    elif score == 2:
        hint = "Fair. Adding another random word makes it much harder to guess."
    else:
        hint = "Good. There is no way to recover a forgotten passphrase: keep it safe."
    return Strength(score, bits, LABELS[score], hint)
