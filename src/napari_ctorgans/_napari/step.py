"""What every step widget of the panel shares: a status line, viewer connections that end with the widget, and
workers with progress, cancel and errors explained in the widget (never napari's traceback pop-up)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QComboBox, QLabel, QProgressBar, QWidget


class _Failure:
    """An exception raised inside a worker, carried to the GUI thread as a value."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _guarded(func: Callable) -> Callable:
    """``func`` (a function or a generator function) with every exception returned as a :class:`_Failure`."""
    if inspect.isgeneratorfunction(func):
        def gen(*args, **kwargs):
            try:
                return (yield from func(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - shown in the widget's status line
                return _Failure(exc)
        return gen

    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown in the widget's status line
            return _Failure(exc)
    return call


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
        self.cancel(quiet=True)
        for child in self.findChildren(Step):
            child.teardown()

    def event(self, ev):  # noqa: D102 - Qt API
        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:  # taken out of its dock (napari's close button): the widget is done
                self.teardown()
        return super().event(ev)

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

        worker = create_worker(_guarded(func), *args, _start_thread=False)
        worker.cancelled_by_user = False
        if progress is not None:
            progress.setRange(0, total)
            progress.setValue(0)
            if hasattr(worker, "yielded"):
                worker.yielded.connect(lambda i, bar=progress: bar.setValue(int(i)) if isinstance(i, int) else None)

        def returned(value, w=worker):
            if self.closed or w.cancelled_by_user:
                return
            if isinstance(value, _Failure):
                self.say(f"{what} failed: {value.exc}")
                return
            if progress is not None:
                progress.setRange(0, max(total, 1))
                progress.setValue(max(total, 1))
            on_result(value)

        def finished(w=worker):
            if self.worker is w:
                self.worker = None
                if not self.closed:
                    self.busy_changed(False)

        worker.returned.connect(returned)
        worker.errored.connect(lambda exc: None if self.closed else self.say(f"{what} failed: {exc}"))
        worker.finished.connect(finished)
        self.worker = worker
        self.busy_changed(True)
        worker.start()
        return worker

    def cancel(self, quiet: bool = False) -> None:
        """Stop the running worker (a generator stops at its next step) and drop its result."""
        worker = self.worker
        if worker is None:
            return
        worker.cancelled_by_user = True
        worker.quit()
        if not quiet and not self.closed:
            self.say("cancelled; the layers are as they were")
