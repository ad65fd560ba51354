"""Order a cohort by expected correction effort: the scan whose draft is least certain is corrected first."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..organs import ORGANS
from ..volume import Volume

__all__ = ["rank_scans", "effort", "rank_csv", "write_rank_csv", "UNSURE"]

#: uncertainty from which a voxel the draft calls background counts as a possible missed organ
UNSURE = 0.2


def effort(uncertainty: np.ndarray, labels: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Expected correction effort of one draft, in mL: the uncertainty summed over each predicted organ's voxels
    (``<organ>_ml``) and over the background voxels at least :data:`UNSURE` uncertain (``missed_ml``), times the
    voxel's volume; ``effort_ml`` is their total. Uncertainty tracks the error rate (docs/uncertainty.md), so the
    sum estimates the volume a user will have to repaint."""
    u, lab = np.asarray(uncertainty, dtype=np.float32), np.asarray(labels)
    if u.shape != lab.shape:
        raise ValueError(f"uncertainty {u.shape} and labels {lab.shape} must share one shape")
    sums = np.bincount(lab.ravel(), weights=u.ravel(), minlength=int(lab.max(initial=0)) + 1)
    row = {f"{o.name}_ml": float(sums[v] * voxel_ml) if v < len(sums) else 0.0 for v, o in ORGANS.items() if v > 0}
    background = (lab == 0) & (u >= UNSURE)
    row["missed_ml"] = float(u[background].sum(dtype=np.float64) * voxel_ml)
    row["effort_ml"] = float(sum(row.values()))
    return row


def rank_scans(scans: str | os.PathLike | Volume | Sequence[Any], model: Any = None, *, method: str = "entropy",
               progress: Callable[[int, int, str], Any] | None = None, **options: Any) -> list[dict]:
    """Order scans by expected correction effort (:func:`effort`), the most effort first.

    Parameters
    ----------
    scans : folder, ``.txt`` list, path, Volume, or a sequence of paths and Volumes
        As ``ctorgans predict`` takes a cohort (:func:`ct.cohort.find_inputs`).
    model : None, "starter", path or Predictor
        As ``ct.predict`` (default: the built-in starter model); loaded once.
    method : {"entropy", "tta"}
        As :func:`ct.uncertainty`.
    progress : callable(done, total, scan), optional
        Called after each scan.
    **options
        Passed on to :func:`ct.uncertainty` (``passes``, ``labelers``, ``device``, ...).

    Returns
    -------
    list of dict
        One row per scan, most effort first: ``rank`` (1 first), ``scan`` (its path or repr), ``effort_ml``, the
        per-organ columns of :func:`effort`, ``uncertain_share`` (voxels at least :data:`UNSURE` uncertain, as a
        fraction of the body) and ``error`` (empty, or why the scan could not be ranked: it goes last).

    Examples
    --------
    >>> for row in ct.rank_scans("cohort/"):  # doctest: +SKIP
    ...     print(row["rank"], row["scan"], round(row["effort_ml"], 1))
    """
    import napari_ctorgans as ct

    from .predict import Predictor
    from .uncertainty import uncertainty

    items = _items(scans)
    pred = Predictor.coerce(model, device=options.get("device") or "cpu")
    rows = []
    for k, item in enumerate(items, start=1):
        name = str(item) if not isinstance(item, Volume) else (item.path or f"volume {k}")
        try:
            vol = item if isinstance(item, Volume) else ct.read_volume(item)
            u, labels = uncertainty(vol, pred, method=method, return_labels=True, **options)
            row = {"scan": name, **effort(u, labels, vol.voxel_volume_ml), "error": ""}
            body = np.asarray(vol.array) > -500
            row["uncertain_share"] = float(((u >= UNSURE) & body).sum() / max(int(body.sum()), 1))
        except (OSError, ValueError) as exc:  # a bad scan is reported in its row; the others are still ranked
            row = {"scan": name, "effort_ml": float("nan"), "uncertain_share": float("nan"), "error": str(exc)}
        rows.append(row)
        if progress is not None:
            progress(k, len(items), name)
    rows.sort(key=lambda r: (bool(r["error"]), -r["effort_ml"] if not r["error"] else 0.0))
    return [{"rank": i, **r} for i, r in enumerate(rows, start=1)]


def _items(scans: Any) -> list[Any]:
    if isinstance(scans, Volume):
        return [scans]
    if isinstance(scans, (str, os.PathLike)) or (isinstance(scans, Sequence) and not any(
            isinstance(s, Volume) for s in scans)):
        from ..cohort import find_inputs

        return list(find_inputs(scans)[0])
    if isinstance(scans, Sequence):
        bad = [s for s in scans if not isinstance(s, (Volume, str, os.PathLike))]
        if bad:
            raise TypeError(f"scans must be paths or ct.Volume objects, got {type(bad[0]).__name__}")
        return list(scans)
    raise TypeError(f"scans must be a folder, a .txt list, a path, a ct.Volume or a list of them, got "
                    f"{type(scans).__name__}")


def _columns() -> list[str]:
    return ["rank", "scan", "effort_ml", *(f"{o.name}_ml" for v, o in ORGANS.items() if v > 0), "missed_ml",
            "uncertain_share", "error"]


def rank_csv(rows: list[dict]) -> str:
    """The ranking as CSV text (one row per scan, the columns of :func:`rank_scans`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_columns(), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_rank_csv(path: str | os.PathLike, rows: list[dict], *, overwrite: bool = False) -> Path:
    """Write the ranking as CSV, verified and atomically (an existing file is kept unless ``overwrite``).

    Raises
    ------
    ValueError
        ``path`` does not end in ``.csv``.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    from ..io import write_bytes_atomic

    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path.name}: the ranking is written as a .csv file (e.g. rank.csv)")
    return write_bytes_atomic(path, rank_csv(rows).encode("utf-8"), overwrite=overwrite)
