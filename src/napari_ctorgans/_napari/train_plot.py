"""The Train widget's live plot (loss and validation Dice per iteration), its speed and ETA, and a run's history.

The plot is drawn with pyqtgraph rather than matplotlib's Qt canvas: pyqtgraph is native Qt (curves are items of a
QGraphicsScene), appending a point at every iteration redraws only that curve instead of re-rendering a whole figure
on the GUI thread, and axes, a log-scale mode, a legend, zoom and pan come built in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy.QtGui import QColor

__all__ = ["TrainPlot", "speed_and_eta", "speed_text", "run_history"]


def _organ_colour(name: str) -> QColor:
    from ..organs import ORGANS

    for organ in ORGANS.values():
        if organ.name == name:
            return QColor.fromRgbF(*organ.color)
    return QColor(170, 170, 170)


class TrainPlot(pg.GraphicsLayoutWidget):
    """Live curves: training loss on a log axis (top), per-organ validation Dice on [0, 1] (bottom), x linked."""

    SMOOTH = 20  #: iterations in the running mean drawn over the raw loss
    #: preferred height (px): below the Start button and the status, the whole plot shows at 1280 x 800
    HEIGHT = 200

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground((38, 41, 48))
        self.setMinimumHeight(170)
        self.loss_plot = self.addPlot(row=0, col=0)
        self.loss_plot.setLabel("left", "loss (log scale)")
        self.loss_plot.setLabel("bottom", "iteration")
        self.loss_plot.setLogMode(x=False, y=True)
        self.loss_plot.getAxis("left").enableAutoSIPrefix(False)
        self.loss_plot.showGrid(x=True, y=True, alpha=0.25)
        self.loss_plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((80, 160, 255, 110), width=1), name="loss")
        self.smooth_curve = self.loss_plot.plot(pen=pg.mkPen((80, 160, 255), width=2),
                                                name=f"mean of {self.SMOOTH}")
        self.dice_plot = self.addPlot(row=1, col=0)
        self.dice_plot.setLabel("left", "validation Dice")
        self.dice_plot.setLabel("bottom", "iteration")
        self.dice_plot.setYRange(0.0, 1.0, padding=0.02)
        self.dice_plot.showGrid(x=True, y=True, alpha=0.25)
        self.dice_plot.setXLink(self.loss_plot)
        self.dice_legend = self.dice_plot.addLegend(offset=(-5, -5), labelTextSize="8pt", colCount=3)
        self.dice_curves: dict[str, pg.PlotDataItem] = {}
        self.iterations: list[int] = []
        self.losses: list[float] = []
        self.dice: dict[str, tuple[list[int], list[float]]] = {}

    def sizeHint(self):  # noqa: N802 - Qt API
        from qtpy.QtCore import QSize

        return QSize(300, self.HEIGHT)

    def clear_curves(self) -> None:
        """Remove every point and every Dice line."""
        self.iterations.clear()
        self.losses.clear()
        self.dice.clear()
        self.loss_curve.setData([], [])
        self.smooth_curve.setData([], [])
        for curve in self.dice_curves.values():
            self.dice_plot.removeItem(curve)
        self.dice_curves.clear()
        self.dice_legend.clear()

    def add(self, status) -> None:
        """Append one :class:`~napari_ctorgans.train.TrainStatus`."""
        self._append_loss(status.iteration, status.loss)
        self._redraw_loss()
        if status.val_dice:
            for name in self._append_dice(status.iteration, status.val_dice, status.val_score):
                self._redraw_dice(name)

    def show_history(self, history: dict) -> None:
        """Draw the earlier iterations of a resumed run (:func:`run_history`) in place of the current curves."""
        self.clear_curves()
        for it, loss in zip(history["iterations"], history["losses"]):
            self._append_loss(it, loss)
        names: dict[str, None] = {}  # in the order of the live plot's legend: the organs, then the mean
        for it, dice, score in history["validations"]:
            names.update(dict.fromkeys(self._append_dice(it, dice, score)))
        self._redraw_loss()
        for name in names:
            self._redraw_dice(name)

    def _append_loss(self, iteration: int, loss: float) -> None:
        self.iterations.append(int(iteration))
        self.losses.append(max(float(loss), 1e-6))  # a log axis has no 0

    def _append_dice(self, iteration: int, val_dice: dict, val_score: float | None) -> list[str]:
        scores = dict(val_dice)
        if val_score is not None:
            scores["mean"] = float(val_score)
        for name, value in scores.items():
            xs, ys = self.dice.setdefault(name, ([], []))
            xs.append(int(iteration))
            ys.append(float(value))
        return list(scores)

    def _redraw_loss(self) -> None:
        x, y = np.asarray(self.iterations), np.asarray(self.losses)
        self.loss_curve.setData(x, y)
        k = min(self.SMOOTH, len(y))
        if k == 0:
            self.smooth_curve.setData([], [])
            return
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        self.smooth_curve.setData(x[k - 1:], smooth)

    def _redraw_dice(self, name: str) -> None:
        xs, ys = self.dice[name]
        self._dice_curve(name).setData(xs, ys)

    def _dice_curve(self, name: str) -> pg.PlotDataItem:
        if name not in self.dice_curves:
            colour = QColor(200, 200, 200) if name == "mean" else _organ_colour(name)
            pen = pg.mkPen(colour, width=2, style=pg.QtCore.Qt.PenStyle.DashLine if name == "mean" else None)
            self.dice_curves[name] = self.dice_plot.plot(pen=pen, symbol="o", symbolSize=6, symbolBrush=colour,
                                                         symbolPen=None, name=name)
        return self.dice_curves[name]


def run_history(checkpoint: str | Path) -> dict | None:
    """The losses and validations a run recorded up to its checkpoint, for the plot of a resumed run.

    Parameters
    ----------
    checkpoint : str or Path
        A ``last.pt`` written by :func:`napari_ctorgans.train` (its ``state`` keeps one loss per iteration and every
        validation).

    Returns
    -------
    dict or None
        ``iterations`` and ``losses`` (equal lengths) and ``validations`` (``(iteration, dice by organ, mean)``
        tuples), or None when the checkpoint keeps no history.

    Raises
    ------
    FileNotFoundError, napari_ctorgans.train.CheckpointError
        As :func:`napari_ctorgans.train.read_checkpoint`.
    """
    from ..train import read_checkpoint

    state = read_checkpoint(checkpoint).get("state") or {}
    losses = [float(v) for v in state.get("losses") or []]
    validations = [(int(h["iteration"]), dict(h.get("dice") or {}), h.get("score"))
                   for h in state.get("val_history") or [] if h.get("dice")]
    if not losses and not validations:
        return None
    last = int(state.get("iteration", len(losses)))  # one loss per iteration, the last one at ``last``
    return {"iterations": list(range(last - len(losses) + 1, last + 1)), "losses": losses,
            "validations": validations}


def speed_and_eta(statuses: list, iterations: int, validate_every: int, validating: bool) -> tuple[float, float]:
    """Iterations per second and seconds left, from the statuses of the current run.

    The speed is the median over the last 30 plain iterations (a pause or a validation does not skew it); the
    remaining validations are priced at the time the last one took. Returns ``(nan, nan)`` before two iterations.
    """
    steps, extra = [], []
    for a, b in zip(statuses, statuses[1:]):
        if b.iteration == a.iteration + 1:
            (extra if b.val_dice else steps).append(b.elapsed - a.elapsed)
    if not steps:
        return float("nan"), float("nan")
    step = float(np.median(steps[-30:]))
    rate = 1.0 / step if step > 0 else float("inf")
    now = statuses[-1].iteration
    eta = max(iterations - now, 0) * step
    if validating and extra:
        due = sum(1 for it in range(now + 1, iterations + 1) if it % validate_every == 0 or it == iterations)
        eta += due * max(extra[-1] - step, 0.0)
    return rate, eta


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def speed_text(rate: float, eta: float) -> str:
    """The speed line: ``"2.31 it/s, ETA 1 min 05 s"``, or seconds per iteration below one iteration a second."""
    if rate >= 1:
        return f"{rate:.2f} it/s, ETA {_duration(eta)}"
    return f"{1 / rate:.1f} s/it ({rate:.2f} it/s), ETA {_duration(eta)}"
