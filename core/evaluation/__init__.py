"""Evaluation: blind A/B of a tuned policy against its base, win rates with intervals, the reward model
against the expert, and the expert's own consistency. See blind.py, report.py and stats.py."""

from core.evaluation.blind import (
    BlindItem,
    EvalPrepared,
    EvalSettings,
    evaluation_items,
    evaluation_queue,
    prepare_blind_eval,
    record_evaluation,
)
from core.evaluation.report import build_report, export_report, write_report
from core.evaluation.stats import wilson_interval

__all__ = [
    "BlindItem",
    "EvalPrepared",
    "EvalSettings",
    "evaluation_items",
    "evaluation_queue",
    "prepare_blind_eval",
    "record_evaluation",
    "build_report",
    "export_report",
    "write_report",
    "wilson_interval",
]
