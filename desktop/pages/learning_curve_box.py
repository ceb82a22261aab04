"""The Reward tab's learning curve: held-out accuracy against the number of ranked prompts, and roughly
how many more rankings would help. The re-fits are a core job (core.training.learning_curve) on the
worker; the newest curve is kept in the project and shown again when the project opens."""

from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from desktop.charts import LiveChart

SERIES = "accuracy (held out)"
EMPTY = (
    "How held-out accuracy grows with your rankings. <b>Compute</b> re-fits the reward model on 25, 50, "
    "75 and 100% of the ranked prompts (a few small fits) and says roughly how many more would help."
)


class LearningCurveBox(QGroupBox):
    def __init__(self, tab):
        super().__init__("How many rankings are enough?")
        self.tab = tab
        self.handle = None
        self.curve = None
        layout = QVBoxLayout(self)
        self.chart = LiveChart(
            [SERIES],
            title="Accuracy vs ranked prompts",
            xlabel="ranked prompts",
            empty_text=EMPTY,
            styles={SERIES: {"marker": "o"}},
            hlines=(0.9,),
        )
        self.chart.canvas.setMinimumHeight(150)
        self.chart.setMaximumHeight(210)  # the runs list above keeps its room
        self.chart.empty_label.setMinimumHeight(120)
        layout.addWidget(self.chart, 1)
        self.advice = QLabel("")
        self.advice.setWordWrap(True)
        self.advice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.advice)
        row = QHBoxLayout()
        self.button = QPushButton("Compute learning curve")
        self.button.setToolTip(
            "Re-fit the reward model (Quick settings) on growing shares of your ranked prompts "
            "and measure each on the held-out prompts. Nothing but the figures is kept."
        )
        self.button.clicked.connect(lambda: self.compute())
        row.addWidget(self.button)
        row.addStretch(1)
        layout.addLayout(row)

    def set_project(self, project) -> None:
        self.curve = None
        self.chart.clear()
        self.advice.setText("")
        if project is not None:
            from core.training.learning_curve import latest_curve

            self.show_curve(latest_curve(project))
        self.update_button()

    def update_button(self) -> None:
        busy = self.handle is not None and self.handle.running
        self.button.setEnabled(self.tab.project is not None and not busy and bool(self.tab.base.path()))
        self.button.setText("Computing…" if busy else "Compute learning curve")

    def compute(self, **overrides) -> Optional[object]:
        """Start the re-fits on the worker (the base model of the tab's setup); returns the job handle."""
        from desktop.pages.base import error_text

        proj, base = self.tab.project, self.tab.base.path()
        if proj is None or not base or (self.handle is not None and self.handle.running):
            return None

        from core.ops.training import learning_curve_job

        def job(cancel):
            return learning_curve_job(proj, base, cancel, **overrides)

        self.chart.clear()
        self.advice.setText("Re-fitting the reward model on 25, 50, 75 and 100% of your ranked prompts…")
        self.handle = self.tab.page.run_job(
            job,
            "Learning curve",
            on_progress=self.tab._guard(self._on_progress),
            on_finished=self.tab._guard(self.show_curve),
            on_failed=self.tab._guard(lambda e: self.advice.setText(html.escape(error_text(e)))),
            on_cancelled=self.tab._guard(lambda: self.advice.setText("Cancelled.")),
        )
        self.handle.done.connect(self.update_button)
        self.update_button()
        return self.handle

    def _on_progress(self, ev) -> None:
        m = ev.metrics
        if "curve/accuracy" in m:
            self.chart.add_points({SERIES: (m["curve/prompts"], m["curve/accuracy"])})

    def show_curve(self, curve) -> None:
        self.curve = curve
        if curve is None:
            self.chart.clear()
            self.advice.setText("")
            return
        self.chart.set_points(SERIES, [(p.prompts, p.accuracy) for p in curve.points])
        where = "held-out prompts" if curve.eval_source == "heldout" else "prompts set aside"
        last = curve.points[-1] if curve.points else None
        measured = f" Measured on {curve.eval_prompts} {where} ({last.eval_pairs} pairs)." if last else ""
        self.advice.setText(html.escape(curve.advice) + measured)
