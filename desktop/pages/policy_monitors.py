"""The Policy tab's reward-hacking monitors: two live charts, a warning banner with advice, and Check with
the expert (rank a few of the policy's fresh replies blind, mixed with the base's).

All figures and the warning rule come from core.training.monitors (the CLI uses the same `Watch`); the
check's sampling, storage and agreement are core jobs (core.training.expert_check) run on the worker.
This module only places them on screen.
"""

from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from core.training import monitors as M
from desktop.charts import LiveChart
from desktop.pages.evaluate import BlindJudgeView

BANNER_STYLE = (
    "QLabel { background: #fbeaea; color: #7a1f1f; border: 1px solid #d9534f; border-radius: 4px; padding: 6px; }"
)
CHECK_PROMPTS = 8


class MonitorsPanel:
    """The monitors' widgets (placed by the Policy tab) and the Watch that feeds them."""

    def __init__(self, tab):
        self.tab = tab
        self.length_chart = LiveChart(
            [M.LENGTH_RATIO],
            title="Reply length vs the base (×)",
            hlines=(1.0,),
            empty_text="Reply length against the base model's (1.0 = as long) appears with the first step.",
        )
        self.share_chart = LiveChart(
            [M.TRUNCATED, M.AGREEMENT],
            title="Cut off · agreement with you",
            styles={M.AGREEMENT: {"marker": "o", "linestyle": "--"}},
            empty_text="The share of replies cut off at the token limit appears with the first step; "
            "<b>Check with the expert…</b> adds how often the reward model agrees with you.",
        )
        for chart in self.charts():
            chart.canvas.setMinimumHeight(130)
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setStyleSheet(BANNER_STYLE)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setVisible(False)
        self.check_button = QPushButton("Check with the expert…")
        self.check_button.setToolTip(
            f"Rank {CHECK_PROMPTS} of the policy's fresh replies against the base model's, blind. Your choices are "
            "ordinary judgments (they teach the next reward model) and show how often the reward model "
            "agrees with you on the policy's new replies."
        )
        self.check_button.clicked.connect(lambda: self.tab.check_with_expert())
        self.watch = M.Watch()
        self.run_id: Optional[int] = None
        self.dialog: Optional[ExpertCheckDialog] = None

    def charts(self) -> tuple[LiveChart, ...]:
        return (self.length_chart, self.share_chart)

    # ---- feeding ----------------------------------------------------------------------------------------

    def reset(self, run_id: Optional[int] = None, run_config: Optional[dict] = None) -> None:
        """A new Watch for `run_id` (None: nothing shown)."""
        self.run_id = run_id
        cfg = run_config or {}
        proj = self.tab.project
        self.watch = M.Watch(
            kl_target=M.kl_target_of(cfg) if cfg else None,
            reference_accuracy=M.reference_accuracy(proj, cfg.get("reward_run")) if proj is not None and cfg else None,
        )
        self._show_warnings()

    def add(self, step: float, metrics: dict[str, float]) -> None:
        self.length_chart.add_metrics(step, metrics, only=(M.LENGTH_RATIO,))
        self.share_chart.add_metrics(step, metrics, only=(M.TRUNCATED,))
        if any(k in metrics for k in ("reward/mean", "response/length", M.BASE_LENGTH)):
            self.watch.add(int(step), metrics)
            self._show_warnings()

    def show_agreement(self, overall: Optional[M.Agreement], rows: list[dict]) -> None:
        """The expert's checks of this run: one point per check (at the step of the weights sampled)."""
        points = [(r["step"] or 0, r["rate"]) for r in rows if r.get("rate") is not None]
        self.share_chart.set_points(M.AGREEMENT, sorted(points))
        self.watch.set_agreement(overall)
        self._show_warnings()

    def _show_warnings(self) -> None:
        warnings = self.watch.warnings
        self.banner.setVisible(bool(warnings))
        self.banner.setText(
            "".join(
                f"<p style='margin:2px'><b>⚠ {html.escape(w.title)}</b> {html.escape(w.advice)}</p>" for w in warnings
            )
        )

    def figures_text(self) -> str:
        return self.watch.summary_line()

    def warning_codes(self) -> list[str]:
        return [w.code for w in self.watch.warnings]


class CheckJudgeView(BlindJudgeView):
    """The blind pairwise view of the Evaluate page, on a check's pairs (ordinary judgments)."""

    def start(self, project, check_run: int) -> None:  # type: ignore[override]
        from core.training.expert_check import check_items

        self.project = project
        self.eval_run = check_run
        self._undo.clear()
        self.set_flags(project.tags())
        self.total = len(check_items(project, check_run))
        self.back.setText("Done (Esc)")
        self._reload()
        self.setFocus()

    def _reload(self, prefer=None) -> None:
        from core.training.expert_check import check_queue

        self.queue = check_queue(self.project, self.eval_run)
        if prefer is not None:
            self.queue = [prefer] + [q for q in self.queue if q.index != prefer.index]
        self._show(self.queue[0] if self.queue else None)

    def _show(self, item) -> None:
        super()._show(item)
        if item is None:
            self.done_label.setText(
                "<h3>Every pair of this check is judged.</h3>Press Done (Esc): the reward "
                "model's agreement with your choices appears on the Policy tab."
            )

    def submit(self, result: str) -> bool:
        import time

        from core.training.expert_check import record_check

        if self.item is None or self.project is None:
            return False
        flags = tuple(t for t, c in zip(self.tags, self.flag_checks) if c.isChecked())
        jid = record_check(
            self.project,
            self.item,
            result,
            flags=flags,
            comment=self.comment.text().strip(),
            seconds=round(time.monotonic() - self.shown_at, 3),
        )
        self._undo.append((jid, self.item))
        self._reload()
        self.judged.emit()
        return True


class ExpertCheckDialog(QDialog):
    """A window over the Train page: judge the check's pairs; closing it measures the agreement."""

    def __init__(self, project, check_run: int, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Check with the expert")
        self.setModal(False)
        self.resize(1100, 720)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        intro = QLabel("Which reply is better? Pick as you would when ranking: these are ordinary judgments.")
        intro.setContentsMargins(10, 8, 10, 0)
        layout.addWidget(intro)
        self.view = CheckJudgeView()
        layout.addWidget(self.view, 1)
        self.view.closed.connect(self.accept)
        self.view.start(project, check_run)

    def done(self, result: int) -> None:  # accept, reject (Esc on the dialog) or the window's close button
        self.view.clear()
        super().done(result)
