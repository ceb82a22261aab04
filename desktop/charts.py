"""A live line chart (matplotlib in Qt) fed metric points incrementally, redrawn at most ~5 times a second.

    chart = LiveChart(["loss/train", "loss/heldout"], title="Reward model")
    handle.progress.connect(lambda ev: chart.add_metrics(ev.step, ev.metrics))
    chart.add_points({"loss/train": (step, value)})          # one point per series
    chart.add_points({"loss/train": [(1, 0.9), (2, 0.7)]})   # or several (e.g. a finished run's history)
    chart.clear()

Adding points only appends to lists; a timer redraws when something changed, so a job that reports
hundreds of steps a second never makes the GUI thread wait on matplotlib.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

__all__ = ["LiveChart"]

REDRAW_MS = 200  # at most 5 redraws a second
EMPTY_TEXT = "No figures yet: this chart fills in as soon as a run reports its first step."


class LiveChart(QWidget):
    def __init__(
        self,
        series: Iterable[str] = (),
        title: str = "",
        xlabel: str = "step",
        parent: Optional[QWidget] = None,
        logy: bool = False,
        empty_text: str = EMPTY_TEXT,
        styles: Optional[dict[str, dict]] = None,
        hlines: Iterable[float] = (),
    ):
        """styles: matplotlib line options per series (e.g. markers for a series of few points);
        hlines: dashed reference lines (e.g. 1.0 on a ratio chart)."""
        super().__init__(parent)
        self._styles = dict(styles or {})
        self.figure = Figure(figsize=(5, 3), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(160)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        # With no point yet: a sentence saying what will appear and how to start, not bare axes.
        self.empty_label = QLabel(f"<b>{title}</b><br>{empty_text}" if title else empty_text)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setMinimumHeight(160)
        self.empty_label.setStyleSheet("color: palette(mid); padding: 12px;")
        self._stack = QStackedWidget()
        self._stack.addWidget(self.empty_label)
        self._stack.addWidget(self.canvas)
        layout.addWidget(self._stack)
        self.ax = self.figure.add_subplot(111)
        self._title, self._xlabel, self._logy = title, xlabel, logy
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._lines: dict[str, object] = {}
        self._dirty = False
        self.redraws = 0  # how many times the canvas was redrawn (tests check the throttle)
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        for name in series:
            self._ensure(name)
        for y in hlines:
            self.ax.axhline(y, linestyle="--", linewidth=1.0, color="#888888", zorder=0)
        self._style()
        self._show_empty()
        self.canvas.draw_idle()

    # ---- feeding --------------------------------------------------------------------------------------

    def add_points(self, points: dict[str, tuple[float, float] | list[tuple[float, float]]]) -> None:
        """Append points: {name: (x, y)} or {name: [(x, y), ...]}. Non-finite values are skipped."""
        added = False
        for name, value in points.items():
            xs, ys = self._ensure(name)
            pairs = value if isinstance(value, list) else [value]
            for x, y in pairs:
                y = float(y)
                if math.isfinite(y):
                    xs.append(float(x))
                    ys.append(y)
                    added = True
        if added or not points:  # nothing new: no redraw (an event without this chart's figures)
            self._dirty = True
        self._show_empty()

    def add_metrics(self, step: float, metrics: dict[str, float], only: Optional[Iterable[str]] = None) -> None:
        """Convenience for Progress events: every metric (or those in `only`) at `step`."""
        wanted = set(only) if only is not None else None
        self.add_points({k: (step, v) for k, v in metrics.items() if wanted is None or k in wanted})

    def set_points(self, name: str, points: list[tuple[float, float]]) -> None:
        """Replace one series' points (e.g. a figure recomputed for past steps)."""
        xs, ys = self._ensure(name)
        xs.clear()
        ys.clear()
        self.add_points({name: list(points)})
        self._dirty = True

    def clear(self) -> None:
        self._data.clear()
        for line in self._lines.values():
            line.remove()
        self._lines.clear()
        self._dirty = True
        self._show_empty()

    def set_empty_text(self, text: str) -> None:
        self.empty_label.setText(f"<b>{self._title}</b><br>{text}" if self._title else text)

    def is_empty(self) -> bool:
        return not any(xs for xs, _ in self._data.values())

    def _show_empty(self) -> None:
        self._stack.setCurrentWidget(self.empty_label if self.is_empty() else self.canvas)

    def series(self) -> dict[str, list[tuple[float, float]]]:
        return {k: list(zip(xs, ys)) for k, (xs, ys) in self._data.items()}

    # ---- drawing --------------------------------------------------------------------------------------

    def _ensure(self, name: str) -> tuple[list[float], list[float]]:
        if name not in self._data:
            self._data[name] = ([], [])
            (line,) = self.ax.plot([], [], label=name, **{"linewidth": 1.6, **self._styles.get(name, {})})
            self._lines[name] = line
        return self._data[name]

    def _style(self) -> None:
        pal = self.palette()
        bg = pal.color(QPalette.ColorRole.Window).name()
        fg = pal.color(QPalette.ColorRole.WindowText).name()
        grid = pal.color(QPalette.ColorRole.Mid).name()
        self.figure.set_facecolor(bg)
        self.ax.set_facecolor(bg)
        for spine in self.ax.spines.values():
            spine.set_color(grid)
        self.ax.tick_params(colors=fg, labelsize=9)
        self.ax.xaxis.label.set_color(fg)
        self.ax.title.set_color(fg)
        self.ax.grid(True, color=grid, alpha=0.4, linewidth=0.6)
        self.ax.set_xlabel(self._xlabel, fontsize=9)
        if self._title:
            self.ax.set_title(self._title, fontsize=10)
        if self._logy:
            self.ax.set_yscale("log")

    def _redraw(self) -> None:
        if not self._dirty or not self.isVisible():
            return
        self._dirty = False
        for name, (xs, ys) in self._data.items():
            self._lines[name].set_data(xs, ys)
        if self._lines:
            legend = self.ax.legend(loc="best", fontsize=8, frameon=False)
            for text in legend.get_texts():
                text.set_color(self.palette().color(QPalette.ColorRole.WindowText).name())
        self.ax.relim()
        self.ax.autoscale_view()
        self.canvas.draw_idle()
        self.redraws += 1

    def changeEvent(self, event) -> None:  # follow light/dark switches
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.PaletteChange:
            self._style()
            self._dirty = True
        super().changeEvent(event)

    def showEvent(self, event) -> None:
        self._dirty = True
        super().showEvent(event)
