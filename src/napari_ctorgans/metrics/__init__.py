"""Segmentation metrics on binary masks with physical spacing, and per-organ tables over CT-ORG label maps.

Overlap: :func:`dice`, :func:`iou`, :func:`voe` (= 1 - IoU), :func:`rvd` (relative volume difference).
Surface distances (millimetres): :func:`assd` (average symmetric), :func:`mssd` (maximum symmetric = Hausdorff),
:func:`rmsd` (root-mean-square symmetric), :func:`hd95` (95th percentile Hausdorff) and :func:`surface_dice`
(fraction of both surfaces within a tolerance). :func:`evaluate` gives one row per organ; :func:`global_dice` pools a
set of cases; :class:`MetricAccumulator` collects rows case by case.

Surfaces are the boundary voxels of each mask (voxels with at least one of their 6 face neighbours outside the mask
or the image), as in MONAI. Distances between the two surfaces are exact Euclidean distances between voxel centres in
mm, computed only on the surfaces, inside the bounding box of the two masks, with a KD-tree (default) or a distance
transform. Empty masks: see ``docs/metrics.md`` (both empty: perfect scores, distances 0; one empty: Dice 0,
distances ``inf``, surface Dice 0).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..organs import IGNORE_LABEL, ORGANS
from ._pairs import (  # noqa: F401  (the private helpers are used by the tables below)
    _bbox, _check_tol, _distance_stats, _mask, _overlap_counts, _pair, _spacing, assd, dice, hd95, iou, mssd, rmsd,
    rvd, surface_dice, surface_distances, voe,
)

__all__ = [
    "dice", "iou", "voe", "rvd", "assd", "mssd", "rmsd", "hd95", "surface_dice", "surface_distances",
    "OrganMetrics", "evaluate", "global_dice", "to_csv", "write_csv", "MetricAccumulator", "NOT_PREDICTED",
    "NOT_IN_REFERENCE",
]

#: ``OrganMetrics.status`` of an organ in the reference but not in the prediction (its Dice 0, distances inf)
NOT_PREDICTED = "not predicted"
#: ``OrganMetrics.status`` of an organ in the prediction but not in the reference (its Dice 0, distances inf)
NOT_IN_REFERENCE = "not in reference"


# ------------------------------------------------------------------------------------------------ per-organ tables
@dataclass
class OrganMetrics:
    """One row of :func:`evaluate`: metrics of one organ (distances in mm, volumes in mL)."""

    label: int
    organ: str
    dice: float
    iou: float
    voe: float
    rvd: float
    assd: float
    mssd: float
    rmsd: float
    hd95: float
    surface_dice: float
    tolerance_mm: float
    pred_ml: float
    ref_ml: float
    pred_voxels: int = 0
    ref_voxels: int = 0
    intersection_voxels: int = 0
    case: str = ""
    status: str = ""  # NOT_PREDICTED or NOT_IN_REFERENCE when the organ is on one side only; shown instead of scores

    def as_dict(self) -> dict:
        return asdict(self)


def _metrics_row(p: np.ndarray, r: np.ndarray, sp: tuple, label: int, tol: float, case: str) -> OrganMetrics:
    ns, nr, ni = _overlap_counts(p, r)
    union = ns + nr - ni
    d = _distance_stats(*surface_distances(p, r, spacing=sp), tol)
    ml = float(np.prod(sp)) / 1000.0
    iou_value = 1.0 if union == 0 else ni / union
    return OrganMetrics(
        label=label,
        organ=ORGANS[label].name if label in ORGANS else f"label {label}",
        dice=1.0 if ns + nr == 0 else 2.0 * ni / (ns + nr),
        iou=iou_value,
        voe=1.0 - iou_value,
        rvd=(0.0 if ns == 0 else math.inf) if nr == 0 else (ns - nr) / nr,
        tolerance_mm=tol,
        pred_ml=ns * ml,
        ref_ml=nr * ml,
        pred_voxels=ns,
        ref_voxels=nr,
        intersection_voxels=ni,
        case=case,
        status=NOT_PREDICTED if ns == 0 and nr else (NOT_IN_REFERENCE if nr == 0 and ns else ""),
        **d,
    )


def _labels(arr: Any, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values; a label map holds integers")
        if not np.array_equal(a, np.round(a)):
            raise ValueError(f"{name} must hold integer labels, got non-integer floats")
    elif a.dtype.kind not in "biu":
        raise TypeError(f"{name} must be an integer label map, got dtype {a.dtype}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2D or 3D label map, got shape {a.shape}")
    if a.dtype.kind in "fi" and a.size and a.min() < 0:
        raise ValueError(f"{name} holds negative values (min {a.min():g}); label values are 0 (background) and "
                         "positive organ values: it is probably a CT image or a difference map, not a label map")
    return a


def _present(a: np.ndarray) -> set[int]:
    if a.dtype in (np.uint8, np.int8, np.bool_):
        flat = a.view(np.uint8).ravel()
        counts = np.zeros(256, np.int64)
        for start in range(0, flat.size, 1 << 22):  # chunks keep bincount's int64 copy small
            counts += np.bincount(flat[start : start + (1 << 22)], minlength=256)
        values = np.flatnonzero(counts)
        return {int(v) - 256 if a.dtype == np.int8 and v > 127 else int(v) for v in values}
    return {int(v) for v in np.unique(a)}


def evaluate(
    pred_labels: Any,
    ref_labels: Any,
    *,
    spacing: Any,
    organs: Iterable[int | str] | None = None,
    tolerance_mm: float = 2.0,
    ignore_index: int | None = IGNORE_LABEL,
    case: str = "",
) -> list[OrganMetrics]:
    """Per-organ metrics of a predicted label map against a reference label map.

    Parameters
    ----------
    pred_labels, ref_labels : ndarray of int, same shape (z, y, x)
        CT-ORG label maps (``ct.ORGANS`` values).
    spacing : float or 3 floats
        Voxel size in mm, (z, y, x).
    organs : iterable of int or str, optional
        Label values or organ names to evaluate. Default: every non-background label present in either map.
    tolerance_mm : float, optional
        Tolerance of the surface Dice (2 mm as in 004).
    ignore_index : int or None, optional
        Reference voxels with this value (unlabelled) are left out of both maps.
    case : str, optional
        Case name stored in each row.

    Returns
    -------
    list of OrganMetrics
        One row per organ; see :func:`to_csv` / :func:`write_csv`.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.zeros((6, 6, 6), np.uint8); ref[1:4, 1:4, 1:4] = 1
    >>> rows = evaluate(ref, ref, spacing=3.0)
    >>> rows[0].organ, rows[0].dice, rows[0].assd
    ('liver', 1.0, 0.0)
    """
    from ..organs import organ_value

    pred = _labels(pred_labels, "pred_labels")
    ref = _labels(ref_labels, "ref_labels")
    if pred.shape != ref.shape:
        raise ValueError(
            f"pred_labels and ref_labels must share a grid, got shapes {pred.shape} and {ref.shape}; "
            "resample the prediction to the reference grid first"
        )
    sp = _spacing(spacing, ref.ndim)
    tol = _check_tol(tolerance_mm)
    if ignore_index is not None:
        unlabelled = ref == ignore_index
        if unlabelled.any():
            pred = np.where(unlabelled, 0, pred)
            ref = np.where(unlabelled, 0, ref)
    if organs is None:
        present = _present(ref) | _present(pred)
        values = sorted(int(v) for v in present if v != 0 and v != ignore_index)
    else:
        values = [organ_value(o if isinstance(o, str) else int(o)) for o in organs]
    rows = []
    for value in values:
        p, r = pred == value, ref == value
        box = _bbox(p | r)
        if box is not None:
            p, r = p[box], r[box]
        rows.append(_metrics_row(p, r, sp, value, tol, case))
    return rows


def global_dice(preds: Sequence[Any], refs: Sequence[Any], *, label: int | None = None) -> float:
    """Global Dice over a set of cases: ``2 sum|S_i & R_i| / sum(|S_i| + |R_i|)`` (LiTS "Dice global").

    Parameters
    ----------
    preds, refs : sequences of arrays
        Binary masks, or label maps with ``label`` given.
    label : int, optional
        Organ value to compare when the arrays are label maps.
    """
    if len(preds) != len(refs):
        raise ValueError(f"preds and refs must have the same length, got {len(preds)} and {len(refs)}")
    inter = total = 0
    for i, (a, b) in enumerate(zip(preds, refs)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"case {i}: pred shape {a.shape} differs from ref shape {b.shape}")
        if label is not None:
            a, b = a == label, b == label
        else:
            a, b = _pair(a, b)
        inter += int(np.count_nonzero(a & b))
        total += int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 1.0 if total == 0 else 2.0 * inter / total


def to_csv(rows: Iterable[OrganMetrics | dict]) -> str:
    """CSV text (header + one line per row) of :func:`evaluate` rows."""
    dicts = [r.as_dict() if isinstance(r, OrganMetrics) else dict(r) for r in rows]
    header = [f.name for f in fields(OrganMetrics)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for d in dicts:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in d.items()})
    return buf.getvalue()


def write_csv(rows: Iterable[OrganMetrics | dict], path: str | Path) -> Path:
    """Write :func:`evaluate` rows to a CSV file; returns the path."""
    path = Path(path)
    path.write_text(to_csv(rows))
    return path


class MetricAccumulator:
    """Collect per-organ rows over cases; summarise per organ with means and the global Dice.

    Examples
    --------
    >>> import numpy as np
    >>> acc = MetricAccumulator(spacing=3.0)
    >>> ref = np.zeros((6, 6, 6), np.uint8); ref[1:4, 1:4, 1:4] = 1
    >>> _ = acc.update(ref, ref, case="a")
    >>> acc.summary()[0]["global_dice"]
    1.0
    """

    def __init__(self, *, spacing: Any = None, organs: Iterable[int | str] | None = None, tolerance_mm: float = 2.0):
        self.spacing, self.organs, self.tolerance_mm = spacing, organs, tolerance_mm
        self.rows: list[OrganMetrics] = []
        self._pool: dict[int, list[int]] = {}

    def update(self, pred_labels: Any, ref_labels: Any, *, spacing: Any = None, case: str = "") -> list[OrganMetrics]:
        sp = spacing if spacing is not None else self.spacing
        rows = evaluate(pred_labels, ref_labels, spacing=sp, organs=self.organs, tolerance_mm=self.tolerance_mm,
                        case=case or str(len({r.case for r in self.rows})))
        for row in rows:
            pool = self._pool.setdefault(row.label, [0, 0])
            pool[0] += row.intersection_voxels
            pool[1] += row.pred_voxels + row.ref_voxels
        self.rows.extend(rows)
        return rows

    def summary(self) -> list[dict]:
        """Per organ: number of cases, mean of each metric (finite values only for distances), global Dice."""
        out = []
        for label in sorted(self._pool):
            rows = [r for r in self.rows if r.label == label]
            entry: dict[str, Any] = {"label": label, "organ": rows[0].organ, "cases": len(rows)}
            for key in ("dice", "iou", "voe", "rvd", "assd", "mssd", "rmsd", "hd95", "surface_dice"):
                vals = [getattr(r, key) for r in rows if math.isfinite(getattr(r, key))]
                entry[key] = float(np.mean(vals)) if vals else math.nan
            inter, total = self._pool[label]
            entry["global_dice"] = 1.0 if total == 0 else 2.0 * inter / total
            out.append(entry)
        return out

    def reset(self) -> None:
        self.rows.clear()
        self._pool.clear()
