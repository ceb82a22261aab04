"""The results charts: the exported report's drawing functions on one canvas."""

from __future__ import annotations

from typing import Optional

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QEvent, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from core.evaluation import report as R


class ResultsCanvas(QWidget):
    """The report's charts (the same drawing functions as the exported report) on one canvas.

    Rebuilding five axes costs matplotlib a good fraction of a second, so `show_report` only records the
    report; the figure is rebuilt once per event-loop turn, and only while the canvas is visible."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.figure = Figure(figsize=(9, 5), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.report: Optional[dict] = None
        self._drawn: object = ()  # the report the figure shows now (() = nothing drawn yet)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)
        self.rebuilds = 0

    def show_report(self, report: Optional[dict]) -> None:
        self.report = report
        if self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._timer.start()

    def flush(self, force: bool = False) -> None:
        """Rebuild the figure now if the report changed since it was drawn."""
        if not force and self._drawn == self.report:
            return
        self._drawn = self.report
        self.rebuilds += 1
        fig = self.figure
        fig.clear()
        grid = fig.add_gridspec(2, 3, width_ratios=[1, 1.1, 1.1])
        rep = self.report or {}
        R.draw_outcomes(fig.add_subplot(grid[0, 0]), rep)
        R.draw_win_rate(fig.add_subplot(grid[0, 1]), rep)
        R.draw_rewards(fig.add_subplot(grid[0, 2]), rep)
        R.draw_flags(fig.add_subplot(grid[1, 0]), rep)
        R.draw_calibration(fig.add_subplot(grid[1, 1:]), rep)
        self._apply_palette()
        self.canvas.draw_idle()

    def _apply_palette(self) -> None:
        pal = self.palette()
        bg = pal.color(QPalette.ColorRole.Window).name()
        fg = pal.color(QPalette.ColorRole.WindowText).name()
        grid = pal.color(QPalette.ColorRole.Mid).name()
        self.figure.set_facecolor(bg)
        for ax in self.figure.axes:
            ax.set_facecolor(bg)
            for spine in ax.spines.values():
                spine.set_color(grid)
            ax.tick_params(colors=fg, labelsize=8.5)
            ax.title.set_color(fg)
            ax.xaxis.label.set_color(fg)
            ax.yaxis.label.set_color(fg)
            for text in ax.texts:
                if text.get_color() in ("black", "#000000", "k"):
                    text.set_color(fg)
            legend = ax.get_legend()
            if legend is not None:
                for text in legend.get_texts():
                    text.set_color(fg)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.PaletteChange and self._drawn != ():
            self._drawn = ()
            self.show_report(self.report)
        super().changeEvent(event)
