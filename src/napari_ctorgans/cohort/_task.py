"""The unit of work of a cohort: label or predict one scan, write its output and sidecar (run on Dask workers)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._sidecar import _write_json, input_record, sidecar_path

# errors that come from the scan (or checkpoint) itself: retrying cannot help
_DATA_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, KeyError, IndexError)

_PREDICTORS: dict[tuple, Any] = {}


def _predictor(checkpoint: str):
    """One loaded model per worker process and checkpoint file (reloaded when the file changes)."""
    from ..infer.predict import Predictor

    p = Path(checkpoint)
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()
        _PREDICTORS[key] = Predictor.from_checkpoint(p)
    return _PREDICTORS[key]


def _compute(volume, task: str, checkpoint: str | None, options: dict):
    import numpy as np

    if task == "label":
        from ..labelers import auto_label

        return auto_label(volume, **options)
    from ..infer.predict import predict

    return np.asarray(predict(volume, _predictor(checkpoint), **options))


def _organ_values(names: Sequence[str]) -> list[tuple[str, int]]:
    from ..organs import ORGANS

    by_name = {o.name: o.value for o in ORGANS.values()}
    out = []
    for name in names:
        if name not in by_name:
            raise ValueError(f"require must name organs among {sorted(by_name)}, got {name!r}")
        out.append((name, by_name[name]))
    return out


def process_scan(scan: str | os.PathLike, output: str | os.PathLike, *, task: str = "label",
                 checkpoint: str | None = None, options: dict | None = None, require: Sequence[str] = (),
                 format: str = "nifti") -> dict:
    """Label or predict one scan and write its output and sidecar; the unit of work of :func:`run_cohort`.

    Returns a :class:`CohortRow` as a dict. Errors of the scan itself are returned as a ``failed`` row;
    machine errors (``MemoryError``, ``OSError``, ...) are raised so that the scheduler retries the task.
    An existing ``output`` is replaced (:func:`run_cohort` decides beforehand which may be).
    """
    import numpy as np

    from ..io import read_volume
    from ..io.formats import check_label_output, write_label_file, written_size

    t0 = time.perf_counter()
    scan, output = Path(scan), Path(output)
    row = {"input": str(scan), "output": str(output), "status": "ok", "error": "", "seconds": 0.0}
    try:
        try:
            source = input_record(scan)  # before reading: a scan changed during the run is redone next time
        except OSError:
            source = None  # missing or unreadable: read_volume says so, naming the file and the fix
        volume = read_volume(scan)
        check_label_output(output, volume, format)  # DICOM-SEG/RTSTRUCT need the scan's series: before the work
        labels = _compute(volume, task, checkpoint, dict(options or {}))
        if labels.shape != volume.shape:
            raise ValueError(f"{task} returned shape {labels.shape} for a scan of shape {volume.shape}")
        missing = [name for name, value in _organ_values(require) if not np.any(labels == value)]
        if missing:
            raise ValueError(f"no {' and no '.join(missing)} found in this scan (required: "
                             f"{', '.join(require)}); check that it covers them, or drop --require")
        # a "writing" sidecar (atomic), the label file (atomic), then the final sidecar (atomic): an interrupted
        # run leaves a sidecar that says the output is ours and incomplete
        side = sidecar_path(output)
        _write_json(side, {"status": "writing", "input": str(scan), "source": source})
        write_label_file(output, labels, volume, format, overwrite=True)
        counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))
        meta = {
            "status": "ok", "input": str(scan), "source": source, "task": task, "checkpoint": checkpoint,
            "shape": list(volume.shape), "size_xyz": None, "spacing": list(volume.spacing),
            "voxels": {str(v): int(n) for v, n in enumerate(counts) if n and v},
            "seconds": round(time.perf_counter() - t0, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        meta["size_xyz"] = written_size(output)
        _write_json(side, meta)
    except _DATA_ERRORS as exc:
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    row["seconds"] = time.perf_counter() - t0
    return row

