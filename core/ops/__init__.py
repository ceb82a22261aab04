"""The operations layer: every user-level action of the app and the CLI, as one core function each.

Both front ends call these and compose nothing of their own, so a preset, an override or a check
applies the same way in the window and in the terminal (tests/test_ops.py compares their configs).
Long actions are jobs (core/jobs.py): generators that yield Progress and take a cancel token.

    training    reward/policy config from a preset plus overrides, pre-flight verdicts and suggestions,
                starting and resuming runs, the reward model's scoring view
    models      checking and describing model folders, exporting a tuned model
    data        generating candidates, reading the audit log
    format      byte and parameter counts as people read them
    ml_imports  the one-time transformers import before the first model job

Heavy libraries (torch, transformers) are imported inside the functions, on the worker thread.
"""
