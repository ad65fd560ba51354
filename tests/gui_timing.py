"""Measuring how long the GUI thread is blocked while a widget action runs (shared by the responsiveness tests).

A 50 ms QTimer ticks from the click until the action's result is in the viewer; the largest gap between two ticks is
the longest the user could not pan, scroll or paint. :func:`idle_gap` measures what a busy machine does to the
timer with nothing running, and :func:`allowed_gap` turns it into the limit a test asserts.

To cover a new action: ``gap = action_gap(qtbot, lambda: qtbot.mouseClick(button, LeftButton), done)`` with
``done()`` true once the result is shown, then ``assert gap < allowed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QTimer

#: the longest the GUI thread may be blocked by an action (s), on an idle machine
MAX_GAP_S = 0.25


class Ticks:
    """A 50 ms QTimer recording when it fires (``with Ticks() as t: ...``; then ``t.times``)."""

    def __enter__(self):
        self.times = [time.perf_counter()]
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self.timer.start(50)
        return self

    def mark(self) -> None:
        self.times.append(time.perf_counter())

    def __exit__(self, *exc):
        self.timer.stop()
        self.mark()
        return False

    def longest_gap(self, until: float | None = None) -> float:
        times = [t for t in self.times if until is None or t <= until]
        return float(np.diff(times).max()) if len(times) > 1 else 0.0


def idle_gap(qtbot, seconds: float = 3.0) -> float:
    """The longest gap of the timer with nothing running (what the neighbours of a shared machine cost)."""
    with Ticks() as ticks:
        qtbot.wait(int(seconds * 1000))
    return ticks.longest_gap()


def allowed_gap(baseline: float) -> float:
    """:data:`MAX_GAP_S`, plus the excess of the idle baseline over 0.1 s (a busy machine, not the plugin)."""
    return MAX_GAP_S + max(0.0, baseline - 0.1)


def action_gap(qtbot, click: Callable[[], None], done: Callable[[], bool], timeout: int = 300_000,
               settle_ms: int = 300) -> float:
    """The longest gap of the timer from ``click()`` (included) until ``done()`` is true."""
    qtbot.wait(settle_ms)  # the viewer first draws what the test just set up
    with Ticks() as ticks:
        click()
        ticks.mark()  # the click handler itself counts
        qtbot.waitUntil(done, timeout=timeout)
    return ticks.longest_gap()
