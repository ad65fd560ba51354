"""Run one compute call in a separate process, for work whose C code holds Python's GIL for long stretches.

scipy.ndimage's filters keep the GIL for up to seconds on a 512 x 512 x 141 CT, so in a worker thread they still
freeze the viewer. :func:`in_process` is a generator for a napari worker: it starts a fresh Python (``python -c``,
so a user's script is never re-run in the child, unlike multiprocessing's spawn), yields while it runs (the
worker can be cancelled: closing the generator kills the child), and returns the result or raises the child's
exception. The call and its result travel as pickle files in a private temporary folder. Qt-free.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

_CHILD = (
    "import pickle, sys\n"
    "src, dst = sys.argv[1], sys.argv[2]\n"
    "with open(src, 'rb') as f:\n"
    "    func, args, kwargs = pickle.load(f)\n"
    "try:\n"
    "    out = (True, func(*args, **kwargs))\n"
    "except BaseException as exc:\n"
    "    out = (False, exc)\n"
    "with open(dst + '.part', 'wb') as f:\n"
    "    pickle.dump(out, f, protocol=5)\n"
    "import os; os.replace(dst + '.part', dst)\n"
)


def in_process(func: Callable, *args, poll_s: float = 0.1, **kwargs):
    """Generator: ``func(*args, **kwargs)`` in a child Python; yields None while it runs, returns its result."""
    with tempfile.TemporaryDirectory(prefix="ctorgans-") as tmp:
        src, dst = Path(tmp) / "call.pkl", Path(tmp) / "result.pkl"
        with open(src, "wb") as f:
            pickle.dump((func, args, kwargs), f, protocol=5)
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(src), str(dst)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                yield None
                try:
                    proc.wait(poll_s)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not dst.exists():
            err = []
            raise RuntimeError(f"the compute process ended without a result (exit code {proc.returncode}"
                               f"{': ' + err[0] if err else ''}); if it ran out of memory, close other programs "
                               "and try again")
        with open(dst, "rb") as f:
            ok, value = pickle.load(f)
    if not ok:
        raise value
    return value
