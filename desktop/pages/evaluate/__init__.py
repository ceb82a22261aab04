"""The Evaluate page: prepare a blind A/B set for a policy run, judge it blind, see and export the
results, and overlay the training curves of chosen runs.

Everything here is presentation over core.evaluation: `prepare_blind_eval` and `build_report` run as jobs
on the worker; the judging view records through `record_evaluation` (each choice committed before the
next pair shows). The judging view never shows where a response came from: only "A" and "B", the text
and its word count. `set_project(None)` clears every view that shows decrypted text.

    judge_view  the blind judging view (BlindJudgeView)
    results     the report's charts (ResultsCanvas)
    page        EvaluatePage: choosing runs, preparing a blind set, results, comparison of training curves
    screens     the page's screenshots
"""

from desktop.pages.evaluate.judge_view import BlindJudgeView
from desktop.pages.evaluate.page import EvaluatePage, run_label
from desktop.pages.evaluate.results import ResultsCanvas
from desktop.pages.evaluate.screens import render_evaluate_screens, render_judge_screen

__all__ = [
    "BlindJudgeView",
    "EvaluatePage",
    "ResultsCanvas",
    "render_evaluate_screens",
    "render_judge_screen",
    "run_label",
]
