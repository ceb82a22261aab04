"""Did the run change the model? The share of held-out prompts where the tuned model wrote exactly the
base model's reply, and what to say when that share is most of them.

    share = identical_share(eval_run.config["items"])          # 0.77: 37 of 48 prompts unchanged
    text = barely_changed_message(report["eval"])              # None, or a plain sentence with advice

With greedy decoding (the default blind set) the same model gives the same reply every time, so an
identical reply means the tuning did not move the model on that prompt at all. Numbers only: nothing
here reads prompt or response text.
"""

from __future__ import annotations

from typing import Optional, Sequence

BARELY_CHANGED_SHARE = 0.5
"""The run "barely changed the model" when at least this share of the held-out replies are identical."""

ADVICE = (
    "To move it further: rank more prompts (a reward model that has seen more of your judgments "
    "gives a clearer signal), train longer (more steps, or the Thorough preset), or give the run more "
    "room with a higher learning rate or KL target (Advanced…). Then evaluate again."
)


def identical_count(items: Sequence[dict]) -> int:
    """Blind-set items where base and tuned wrote the same text (stored once, marked identical)."""
    return sum(1 for it in items if it.get("identical"))


def identical_share(items: Sequence[dict]) -> Optional[float]:
    """Share of the blind set's prompts with identical replies; None for an empty set."""
    return identical_count(items) / len(items) if items else None


def barely_changed(n_identical: int, n_items: int, threshold: float = BARELY_CHANGED_SHARE) -> bool:
    return n_items > 0 and n_identical / n_items >= threshold


def barely_changed_message(ev: Optional[dict], threshold: float = BARELY_CHANGED_SHARE) -> Optional[str]:
    """The plain-words warning for a report's `eval` section, or None when the run changed the model.

    `ev` needs `items` (count) and `outcomes["identical"]`; `decoding` says whether replies were greedy.
    """
    if not ev:
        return None
    n, same = int(ev.get("items") or 0), int((ev.get("outcomes") or {}).get("identical") or 0)
    if not barely_changed(same, n, threshold):
        return None
    temperature = (ev.get("decoding") or {}).get("temperature")
    how = "greedy decoding" if not temperature else f"sampling at temperature {temperature}"
    return (
        f"This run barely changed the model: the tuned model gave the same reply as the base on {same} of "
        f"{n} held-out prompts ({round(100 * same / n)}%, {how}). " + ADVICE
    )
