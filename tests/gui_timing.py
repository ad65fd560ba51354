"""Measuring how long the GUI thread is blocked while a widget action runs (shared by the responsiveness tests).

A 50 ms QTimer ticks from the click until the action's result is in the viewer; the largest gap between two ticks is
the longest the user could not pan, scroll or paint. :func:`idle_gap` measures what a busy machine does to the
timer with nothing running, and :func:`allowed_gap` turns it into the limit a test asserts.

To cover a new action: ``gap = action_gap(qtbot, lambda: qtbot.mouseClick(button, LeftButton), done)`` with
``done()`` true once the result is shown, then ``assert gap < allowed``.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import traceback
from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QTimer

#: the longest the GUI thread may be blocked by an action (s), on an idle machine
MAX_GAP_S = 0.25


class Ticks:
    """A 50 ms QTimer recording when it fires (``with Ticks() as t: ...``; then ``t.times``).

    While the timer is late by more than 0.2 s, a thread samples the GUI thread's stack every 20 ms: ``stalled()``
    names where the GUI thread spent a stall, for the assertion message.
    """

    def __enter__(self):
        self.times = [time.perf_counter()]
        self.stacks: collections.Counter = collections.Counter()
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self.timer.start(50)
        self._sampling = True
        main = threading.main_thread().ident
        threading.Thread(target=self._sample, args=(main,), daemon=True).start()
        return self

    def _sample(self, main: int) -> None:
        while self._sampling:
            time.sleep(0.02)
            if time.perf_counter() - self.times[-1] > 0.2:
                frame = sys._current_frames().get(main)
                if frame is not None:
                    self.stacks["".join(traceback.format_stack(frame)[-6:])] += 1

    def stalled(self) -> str:
        """The GUI thread's most sampled stack during stalls ("" when there was none)."""
        if not self.stacks:
            return ""
        stack, n = self.stacks.most_common(1)[0]
        return f"{n * 20} ms of stalls in:\n{stack}"

    def mark(self) -> None:
        self.times.append(time.perf_counter())

    def __exit__(self, *exc):
        self._sampling = False
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


#: where the GUI thread stalled during the last :func:`action_gap` of each action name (for assertion messages)
STALLS: dict[str, str] = {}


def action_gap(qtbot, click: Callable[[], None], done: Callable[[], bool], timeout: int = 300_000,
               settle_ms: int = 300, name: str = "") -> float:
    """The longest gap of the timer from ``click()`` (included) until ``done()`` is true; where the GUI thread
    spent its stalls goes to ``STALLS[name]``."""
    import faulthandler
    import os

    qtbot.wait(settle_ms)  # the viewer first draws what the test just set up
    dump = os.environ.get("CTORGANS_STALL_DUMP")  # a file: every thread's stack every 0.3 s, even while one thread
    if dump:  # holds the GIL (faulthandler's own thread needs none), to find what stalls the GUI thread
        out = open(dump, "a")  # noqa: SIM115 - closed below
        out.write(f"==== {name}\n")
        faulthandler.dump_traceback_later(0.3, repeat=True, file=out)
    try:
        with Ticks() as ticks:
            click()
            ticks.mark()  # the click handler itself counts
            qtbot.waitUntil(done, timeout=timeout)
    finally:
        if dump:
            faulthandler.cancel_dump_traceback_later()
            out.close()
    STALLS[name] = ticks.stalled()
    return ticks.longest_gap()
