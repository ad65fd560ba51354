"""The Train tab's worker: prepare the cases in a process of their own, then run :func:`napari_ctorgans.train` in a
worker thread, yielding its statuses to the widget, pausing and stopping as the widget asks (:mod:`.train_widget`).
"""

from __future__ import annotations

import time
from pathlib import Path

from .step import JobDone
from .train_plot import run_history


def _read_history(last: Path) -> dict | None:
    """The run's history from ``last``, or None when it keeps none or cannot be read (the run goes on without)."""
    try:
        return run_history(last)
    except (OSError, ValueError, KeyError, TypeError):  # CheckpointError is a ValueError
        return None


def _drive(gen, stopped):
    """Run the generator ``gen`` (:func:`.process.in_process`) to its end and return its value; close it early
    (which ends its process) and return None once ``stopped()`` is true."""
    try:
        while True:
            if stopped():
                gen.close()
                return None
            next(gen)
    except StopIteration as end:
        return end.value


def training_worker(w, cfg, train_cases, val_cases, *, resume: bool, overwrite: bool):
    """The (not yet started) worker of a run for the Train widget ``w``: its statuses are yielded, a failure is
    returned as ``[exception]``; ``w._stop``, ``w._paused`` and ``w._skip_bn`` steer it; ``done_event`` is set
    when it ends (the widget's teardown waits for it)."""
    from superqt.utils import thread_worker

    emit_history = w._relay.history.emit
    last = Path(cfg.output_dir) / "last.pt" if resume and cfg.output_dir else None
    done = JobDone()

    def emit(n, total, what, relay=w._relay.progress.emit):
        if what == "batch norm" and w._skip_bn:  # the user chose to skip it (or closed the widget)
            from ..train.loop import SkipRecalibration

            raise SkipRecalibration
        relay(n, total, what)

    def run():
        # reading, resampling and checking the cases happen in a process of their own (scipy's resampling holds
        # the GIL: in this thread it would freeze the viewer); errors come back as values
        from ..train import train
        from .jobs import prepare_cases
        from .process import in_process

        try:
            prepared = _drive(in_process(prepare_cases, train_cases, val_cases, cfg.spacing), lambda: w._stop)
            if prepared is None:  # stopped (or the widget closed) before the first iteration
                return None
            gen = train(cfg, *prepared, resume=resume, overwrite=overwrite, progress=emit)
        except Exception as exc:  # noqa: BLE001 - shown in the status line
            return [exc]  # in a list: superqt would re-raise a returned exception
        if last is not None:  # train() has checked the run; its first iteration rewrites last.pt
            history = _read_history(last)
            if history is not None:
                emit_history(history)
        try:
            for status in gen:
                yield status
                while w._paused and not w._stop:
                    time.sleep(0.05)
                if w._stop:
                    break
        except Exception as exc:  # noqa: BLE001 - shown in the status line
            return [exc]
        finally:
            gen.close()  # writes last.pt (atomically) if the run was stopped between checkpoints
        return None

    @thread_worker
    def work():
        try:
            return (yield from run())
        finally:
            done.set()

    worker = work()
    done.track(worker)
    return worker
