"""Live training curves with pyqtgraph: every loss term per step, and the validation error per epoch.

Steps arrive faster than a plot should redraw, so values are buffered and drawn by
:meth:`LossPlot.refresh`, which the training panel calls from a UI timer.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QWidget

# Okabe-Ito colours (colour-blind safe), black for the total.
TERM_COLOURS = {
    "total": (0, 0, 0), "rec": (0, 114, 178), "l1": (230, 159, 0), "l2l": (0, 158, 115),
    "gan": (86, 180, 233), "id": (204, 121, 167), "d": (213, 94, 0),
}
TERM_LABELS = {"total": "total", "rec": "rec", "l1": "L1", "l2l": "l2l", "gan": "GAN", "id": "id", "d": "D"}
SMOOTHING = 0.8   # exponential moving average of the plotted per-step losses
EMPTY_STEPS = 10  # the step axis of an empty plot (its labels at 0 and 1 would be hidden at the edges)
EMPTY_EPOCHS = 5
EMPTY_DECADES = (-2, 1)  # the loss axis of an empty plot: 0.01 to 10, whole decades (log10)


class LogAxis(pg.AxisItem):
    """A log axis labelled at 1, 2 and 5 times powers of ten only (pyqtgraph labels every minor tick
    when the range spans less than a few decades, and the labels then overlap)."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        labels = []
        for value in values:
            number = 10.0 ** value
            mantissa = number / 10.0 ** math.floor(value + 1e-9)
            labels.append(f"{number:g}" if any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5)) else "")
        return labels


class IntegerAxis(pg.AxisItem):
    """An axis of whole numbers (steps, epochs): ticks at integers only, labelled without decimals
    (pyqtgraph would tick an empty 0-1 range at 0.1, 0.2 ...)."""

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803
        levels = [(spacing, offset) for spacing, offset in super().tickSpacing(minVal, maxVal, size)
                  if spacing >= 1 and float(spacing).is_integer()]
        return levels or [(1.0, 0.0)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [f"{int(round(value * scale))}" for value in values]


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        # The legend sits in its own row above the losses, never over the curves.
        self.losses = pg.GraphicsLayoutWidget()
        self.losses.setBackground("w")
        self.legend = pg.LegendItem(colCount=len(TERM_COLOURS), labelTextSize="8pt", labelTextColor="k",
                                    horSpacing=12, verSpacing=-6)
        self.losses.addItem(self.legend, row=0, col=0)
        self.loss_plot = self.losses.addPlot(row=1, col=0, axisItems={"left": LogAxis("left"),
                                                                      "bottom": IntegerAxis("bottom")})
        self.loss_plot.setTitle("Training losses (per step, smoothed)", color="k", size="9pt")
        self.loss_plot.setLogMode(x=False, y=True)
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.losses.ci.layout.setRowStretchFactor(1, 10)
        self.losses.ci.layout.setRowMaximumHeight(0, 26)
        self.validation = pg.PlotWidget(background="w", axisItems={"bottom": IntegerAxis("bottom")})
        self.validation.setTitle("Validation error (mm)", color="k", size="9pt")
        self.validation.setLabel("bottom", "epoch")
        self.validation.showGrid(x=True, y=True, alpha=0.2)
        self.validation_curve = self.validation.plot([], [], pen=pg.mkPen((0, 114, 178), width=2), symbol="o",
                                                     symbolSize=6, symbolBrush=(0, 114, 178))
        self.loss_note = pg.TextItem("each step", color=(120, 120, 120), anchor=(0.5, 0.5))
        self.loss_plot.addItem(self.loss_note)
        self.validation_note = pg.TextItem("after each epoch", color=(120, 120, 120), anchor=(0.5, 0.5))
        self.validation.addItem(self.validation_note)
        self.validation_note.setPos(0.5, 0.5)
        for plot in (self.loss_plot, self.validation.getPlotItem()):
            plot.setMinimumHeight(100)
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setTextPen("k")
                plot.getAxis(axis).setPen("k")
        layout.addWidget(self.losses, 3)
        layout.addWidget(self.validation, 2)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.reset()

    def reset(self) -> None:
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {}
        self._smoothed: dict[str, float] = {}
        self.epochs: list[int] = []
        self.val_errors: list[float] = []
        for curve in self.curves.values():
            self.loss_plot.removeItem(curve)
            self.legend.removeItem(curve)
        self.curves.clear()
        self.validation_curve.setData([], [])
        self.validation_note.setVisible(True)
        self.loss_note.setVisible(True)
        # Whole numbers on the empty axes; they range automatically again once there is data.
        self.loss_plot.setXRange(0, EMPTY_STEPS, padding=0)
        self.loss_plot.setYRange(*EMPTY_DECADES, padding=0)
        self.loss_note.setPos(EMPTY_STEPS / 2, sum(EMPTY_DECADES) / 2)
        self.validation.setXRange(0, EMPTY_EPOCHS, padding=0)
        self.validation_note.setPos(EMPTY_EPOCHS / 2, 0.5)
        self._ranging = {"steps": False, "epochs": 0}   # the step axis given back to auto-range; epochs ranged
        self._dirty = False

    def add_step(self, global_step: int, losses: dict[str, float]) -> None:
        self.steps.append(int(global_step))
        for key, value in losses.items():
            value = float(value)
            previous = self._smoothed.get(key)
            smoothed = value if previous is None or not math.isfinite(previous) else (
                SMOOTHING * previous + (1 - SMOOTHING) * value)
            self._smoothed[key] = smoothed
            series = self.values.setdefault(key, [float("nan")] * (len(self.steps) - 1))
            series.append(smoothed)
        for key, series in self.values.items():   # a term missing at this step
            if len(series) < len(self.steps):
                series.append(float("nan"))
        self._dirty = True

    def add_epoch(self, epoch: int, validation_error: float | None) -> None:
        if validation_error is None or not math.isfinite(validation_error):
            return
        self.epochs.append(int(epoch))
        self.val_errors.append(float(validation_error))
        self._dirty = True

    def refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        steps = np.asarray(self.steps, dtype=np.float64)
        if self.steps and not self._ranging["steps"]:
            self._ranging["steps"] = True          # once: a zoom of the user's stays
            self.loss_plot.enableAutoRange()
            self.loss_note.setVisible(False)
        for key in sorted(self.values, key=lambda k: list(TERM_COLOURS).index(k) if k in TERM_COLOURS else 99):
            values = np.maximum(np.asarray(self.values[key], dtype=np.float64), 1e-8)
            curve = self.curves.get(key)
            if curve is None:
                colour = TERM_COLOURS.get(key, (120, 120, 120))
                curve = self.loss_plot.plot([], [], pen=pg.mkPen(colour, width=2 if key == "total" else 1.3))
                self.legend.addItem(curve, TERM_LABELS.get(key, key))
                self.curves[key] = curve
            curve.setData(steps, values, connect="finite")
        if self.epochs:
            if self._ranging["epochs"] != len(self.epochs):
                # From epoch 0 to one past the last (auto-range would centre one epoch between -1 and 3).
                self._ranging["epochs"] = len(self.epochs)
                self.validation.setXRange(0, max(max(self.epochs) + 1, EMPTY_EPOCHS), padding=0.02)
            self.validation_note.setVisible(False)
            self.validation_curve.setData(np.asarray(self.epochs, float), np.asarray(self.val_errors, float))
            spacing = max(1, math.ceil(max(self.epochs) / 8))      # whole epochs on the axis
            self.validation.getAxis("bottom").setTickSpacing(spacing, spacing)
