"""Local Hugging Face models: loading, device and dtype, chat templates, generation."""

DEFAULT_K = 6
"""Candidates per prompt unless asked otherwise. Ranking K replies gives K(K-1)/2 comparisons for little more
reading than K, so six (15 pairs) teach the reward model far more per ranked prompt than four (6 pairs):
on the demo, held-out accuracy from the same 192 ranked prompts rose from 0.77-0.86 to 0.85-0.89 for all
five simulated experts (docs/training.md)."""
