"""What every step widget of the panel shares: a status line, viewer connections that end with the widget, and
workers with progress, cancel and errors explained in the widget (never napari's traceback pop-up)."""

from __future__ import annotations

import atexit
import inspect
import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QComboBox, QLabel, QMainWindow, QProgressBar, QWidget

#: how long closing a widget (or the viewer) waits for its running job to stop (s); a job still running after that
#: is left to end on its own, its result ignored, and waited for once more before Python exits
JOIN_S = 10.0
#: workers that have not ended yet, kept referenced (a closed widget's too) so Qt never deletes one that still runs
_RUNNING: set = set()


class JobDone(threading.Event):
    """Set (from the worker's thread) when a job's function has ended, however it ended; the job's worker is then
    no longer held in :data:`_RUNNING` (a worker held there would keep a closed viewer alive)."""

    def __init__(self):
        super().__init__()
        self.worker = None

    def track(self, worker) -> None:
        """Hold ``worker`` in :data:`_RUNNING` until the job ends (``worker.done_event`` is this event)."""
        self.worker = worker
        worker.done_event = self
        if not self.is_set():
            _RUNNING.add(worker)

    def set(self) -> None:
        super().set()
        _RUNNING.discard(self.worker)
        self.worker = None


class JobCancelled(Exception):
    """Raised inside a job by a :meth:`Step.cancellable` callback once the job was cancelled (Stop, or the viewer
    closing): the work ends at its next progress report."""


def wait_for_jobs(timeout: float = 60.0) -> bool:
    """Wait (at most ``timeout`` s in all) for every running job of every step widget; True when none runs."""
    import time

    end = time.monotonic() + timeout
    for worker in list(_RUNNING):
        done = getattr(worker, "done_event", None)
        if done is not None and not done.wait(max(0.0, end - time.monotonic())):
            return False
    return True


atexit.register(wait_for_jobs)  # never let Python tear itself down under a job still running in a Qt thread


class _Failure:
    """An exception raised inside a worker, carried to the GUI thread as a value."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _guarded(func: Callable, done: threading.Event) -> Callable:
    """``func`` (a function or a generator function) with every exception returned as a :class:`_Failure`;
    ``done`` is set when it ends, however it ends."""
    if inspect.isgeneratorfunction(func):
        def gen(*args, **kwargs):
            try:
                return (yield from func(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - shown in the widget's status line
                return _Failure(exc)
            finally:
                done.set()
        return gen

    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown in the widget's status line
            return _Failure(exc)
        finally:
            done.set()
    return call


class _WindowWatch(QObject):
    """Tears a step widget down when the viewer's main window closes (napari itself leaves docked widgets alive)."""

    def __init__(self, step: "Step", window: QMainWindow):
        import weakref

        super().__init__(window)
        self._step = weakref.ref(step)  # weak: the watch never keeps a closed viewer alive
        self._window = weakref.ref(window)

    def eventFilter(self, obj, ev):  # noqa: N802 - Qt API
        kind = ev.type()
        if kind == QEvent.Type.Close:  # the close handlers may still refuse (napari's "close anyway?" dialog)
            self._closing = True
        elif kind == QEvent.Type.Hide and getattr(self, "_closing", False) and not ev.spontaneous():
            step = self._step()  # the close went through: the window hides on its way out
            if step is not None and not gone(step):
                step.teardown()
        elif kind in (QEvent.Type.Show, QEvent.Type.WindowActivate, QEvent.Type.WindowStateChange):
            self._closing = False  # a refused close: the window stays, so does the widget
        return False


def fill_combo(combo: QComboBox, names: list[str], *, keep: bool = True) -> None:
    """Replace the items of ``combo`` with ``names``, keeping the current choice when it is still there."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if keep and current and combo.findText(current) >= 0:
        combo.setCurrentText(current)
    combo.blockSignals(False)


def disconnect_owner(viewer, owner: object) -> int:
    """Disconnect every callback of the viewer's layer-list events that is bound to ``owner``; returns how many."""
    n = 0
    for emitter in viewer.layers.events.emitters.values():
        for cb in list(emitter.callbacks):
            target = cb[0]() if isinstance(cb, tuple) and callable(cb[0]) else getattr(cb, "__self__", None)
            if target is owner:
                emitter.disconnect(cb)
                n += 1
    return n


def gone(widget) -> bool:
    """Whether a step widget was closed, or its Qt object deleted with its window (a late result is ignored)."""
    from qtpy import sip

    return bool(getattr(widget, "closed", False)) or sip.isdeleted(widget)


class Step(QWidget):
    """Base of the step widgets: ``listen`` connects viewer events, ``start_job`` runs work in a worker thread.

    When the widget is closed or its dock is removed from the window (napari then takes the widget out of the dock),
    :meth:`teardown` disconnects every handler and stops every worker: a closed widget never acts on the viewer.
    """

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker = None
        self.closed = False
        self._links: list[tuple[Any, Callable]] = []
        self._docked = parent is not None
        self._cancel = threading.Event()  # set by cancel(): the running job's cancellable callbacks raise
        self._watch = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("status")

    # ------------------------------------------------------------------------------------------------ lifetime
    def listen(self, emitter, callback: Callable) -> None:
        """``emitter.connect(callback)``, undone by :meth:`teardown`."""
        emitter.connect(callback)
        self._links.append((emitter, callback))

    def teardown(self) -> None:
        """Disconnect every handler, stop every worker, and ignore results still on their way."""
        if self.closed:
            return
        self.closed = True
        for emitter, callback in self._links:
            try:
                emitter.disconnect(callback)
            except (TypeError, RuntimeError, ValueError):
                pass
        self._links.clear()
        worker = self.worker
        self.cancel(quiet=True)
        for child in self.findChildren(Step):
            child.teardown()
        self.join(worker)

    def join(self, worker=None, timeout: float = JOIN_S) -> bool:
        """Wait (blocking, at most ``timeout`` s) until ``worker`` (default: the running one) has ended."""
        worker = self.worker if worker is None else worker
        done = getattr(worker, "done_event", None)
        return True if done is None else done.wait(timeout)

    def event(self, ev):  # noqa: D102 - Qt API
        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
                self._watch_window()
            elif self._docked:  # taken out of its dock (napari's close button): the widget is done
                self.teardown()
        return super().event(ev)

    def showEvent(self, ev):  # noqa: N802 - Qt API
        self._watch_window()
        super().showEvent(ev)

    def _watch_window(self) -> None:
        """Once inside the viewer's main window: tear down when that window closes."""
        window = self.window()
        if self._watch is None and isinstance(window, QMainWindow):
            self._watch = _WindowWatch(self, window)
            window.installEventFilter(self._watch)

    def closeEvent(self, ev):  # noqa: N802 - Qt API
        self.teardown()
        super().closeEvent(ev)

    # ------------------------------------------------------------------------------------------------ messages
    def say(self, text: str) -> None:
        """Write ``text`` in the widget's own status line."""
        self._hinted = False
        self.status.setText(text)

    def hint(self, missing: str | None) -> None:
        """Show what the widget still needs; clear that hint once nothing is missing (other messages stay)."""
        if missing:
            self.say(missing)
            self._hinted = True
        elif getattr(self, "_hinted", False):
            self.say("")

    def busy_changed(self, busy: bool) -> None:
        """Enable or disable the widget's buttons while a worker runs (override)."""

    # ------------------------------------------------------------------------------------------------ workers
    def start_job(self, func: Callable, *args, what: str, on_result: Callable, progress: QProgressBar | None = None,
                  total: int = 0):
        """Run ``func(*args)`` in a worker thread; ``on_result(value)`` on the GUI thread when it returns.

        A generator function reports progress by yielding step numbers out of ``total`` (a busy bar when 0).
        Errors go to the status line as "``what`` failed: ...". Returns the worker (also in ``self.worker``).
        """
        from superqt.utils import create_worker

        done = JobDone()
        worker = create_worker(_guarded(func, done), *args, _start_thread=False)
        worker.cancelled_by_user = False
        done.track(worker)
        if progress is not None:
            progress.setRange(0, total)
            progress.setValue(0)
            if hasattr(worker, "yielded"):
                worker.yielded.connect(lambda i, bar=progress: bar.setValue(int(i))
                                       if isinstance(i, int) and not gone(self) else None)

        def returned(value, w=worker):
            if gone(self) or w.cancelled_by_user:
                return
            if isinstance(value, _Failure):
                self.say(f"{what} failed: {value.exc}")
                return
            if progress is not None:
                progress.setRange(0, max(total, 1))
                progress.setValue(max(total, 1))
            on_result(value)

        def finished(w=worker):
            if not gone(self) and self.worker is w:
                self.worker = None
                if not self.closed:
                    self.busy_changed(False)

        worker.returned.connect(returned)
        worker.errored.connect(lambda exc: None if gone(self) else self.say(f"{what} failed: {exc}"))
        worker.finished.connect(finished)
        self.worker = worker
        self.busy_changed(True)
        worker.start()
        return worker

    def cancellable(self, callback: Callable) -> Callable:
        """``callback`` (a progress callback handed to the work) that raises :class:`JobCancelled` once the job is
        cancelled, so work without steps of its own (a prediction's tiles) stops at its next report."""
        cancelled = self._cancel

        def call(*args, **kwargs):
            if cancelled.is_set():
                raise JobCancelled("cancelled")
            return callback(*args, **kwargs)
        return call

    def cancel(self, quiet: bool = False) -> None:
        """Stop the running worker (a generator stops at its next step) and drop its result."""
        worker = self.worker
        if worker is None:
            return
        worker.cancelled_by_user = True
        worker.quit()
        self._cancel.set()  # the running job's cancellable callbacks raise from now on
        self._cancel = threading.Event()  # the next job's are fresh
        if not quiet and not self.closed:
            self.say("cancelled; the layers are as they were")
