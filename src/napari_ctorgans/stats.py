"""Per-organ statistics of a label map over its CT: volume, HU distribution, extent and position in mm (LPS).

Patient coordinates follow DICOM: x to the patient's Left, y to Posterior, z to Superior, in mm, the numbers a DICOM
viewer shows under the cursor. A :class:`~napari_ctorgans.volume.Volume` keeps ``origin`` and ``direction`` in
``(z, y, x)`` order, so a point ``(z, y, x)`` there is ``(x, y, z) = (L, P, S)`` here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .organs import IGNORE_LABEL, ORGANS
from .volume import Volume

#: Column order of the flat table (CSV, panel table, PNG report); vectors are split into their L, P, S parts.
TABLE_COLUMNS = (
    "value", "name", "voxels", "volume_ml", "hu_mean", "hu_std", "hu_median", "hu_p5", "hu_p95",
    "centroid_L_mm", "centroid_P_mm", "centroid_S_mm",
    "bbox_min_L_mm", "bbox_min_P_mm", "bbox_min_S_mm", "bbox_max_L_mm", "bbox_max_P_mm", "bbox_max_S_mm",
    "pieces", "cut_off", "confidence",
)


def index_to_lps(volume: Volume, index_zyx: Any) -> np.ndarray:
    """Patient coordinates (L, P, S) in mm of voxel indices ``(z, y, x)`` (shape ``(..., 3)``) of ``volume``."""
    idx = np.asarray(index_zyx, dtype=float)
    phys_zyx = np.asarray(volume.origin) + (idx * np.asarray(volume.spacing)) @ np.asarray(volume.direction).T
    return phys_zyx[..., ::-1]


def _label_array(labels: Any, volume: Volume) -> np.ndarray:
    if isinstance(labels, Volume):
        if not labels.same_grid(volume):
            raise ValueError(
                f"the label map (shape {labels.shape}, spacing {labels.spacing}) is not on the grid of the CT "
                f"{volume.path or ''} (shape {volume.shape}, spacing {volume.spacing}); give the labels made "
                "for this CT, or resample them first with ct.resample(labels, ..., kind='labels')"
            )
        labels = labels.array
    arr = np.asarray(labels)
    if arr.shape != volume.shape:
        raise ValueError(
            f"labels shape {arr.shape} does not match the CT shape {volume.shape}; "
            "give the label map made for this CT"
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}; use labels.astype(np.uint8)")
    return arr


def organ_name(value: int) -> str:
    """The CT-ORG name of a label value, or ``"label N"`` for a value outside the table."""
    organ = ORGANS.get(int(value))
    return organ.name if organ is not None else f"label {int(value)}"


def _one_organ(mask: np.ndarray, hu: np.ndarray, offset: np.ndarray, volume: Volume, value: int) -> dict:
    idx = np.argwhere(mask)
    values = hu[mask].astype(np.float64)
    lo, hi = idx.min(axis=0) + offset, idx.max(axis=0) + offset
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    corners_lps = index_to_lps(volume, corners)
    _, pieces = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    centroid_index = idx.mean(axis=0) + offset
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {
        "value": int(value),
        "name": organ_name(value),
        "voxels": int(idx.shape[0]),
        "volume_ml": float(idx.shape[0] * volume.voxel_volume_ml),
        "hu_mean": float(values.mean()),
        "hu_std": float(values.std()),
        "hu_median": float(median),
        "hu_p5": float(p5),
        "hu_p95": float(p95),
        "centroid_lps": tuple(float(v) for v in index_to_lps(volume, centroid_index)),
        "bbox_min_lps": tuple(float(v) for v in corners_lps.min(axis=0)),
        "bbox_max_lps": tuple(float(v) for v in corners_lps.max(axis=0)),
        "pieces": int(pieces),
        "centroid_index": tuple(float(v) for v in centroid_index),
        "bbox_index": (tuple(int(v) for v in lo), tuple(int(v) for v in hi)),
    }


def organ_statistics(labels: Any, volume: Volume, *, confidence: dict | None = None) -> list[dict]:
    """Statistics of every organ present in a label map, measured on its CT.

    Parameters
    ----------
    labels : ndarray (Z, Y, X) of int, or Volume
        Label map on the grid of ``volume`` (CT-ORG values; other positive values are reported by the name in
        the Volume's ``metadata["segment_names"]`` or as ``"label N"``; the ignore value 255 is skipped).
    volume : Volume
        The CT in Hounsfield units.
    confidence : dict value -> float, optional
        Each organ's confidence from the prediction (``ct.predict(..., return_report=True)``'s
        ``report.confidence``).

    Returns
    -------
    list of dict
        One dict per label value present, in increasing value, with ``value``, ``name``, ``voxels``,
        ``volume_ml``, ``hu_mean``, ``hu_std``, ``hu_median``, ``hu_p5``, ``hu_p95``; ``centroid_lps``,
        ``bbox_min_lps`` and ``bbox_max_lps`` (patient coordinates (L, P, S) in mm of voxel centres, as DICOM
        viewers show them); ``pieces`` (connected components, 26-connectivity); ``cut_off``: the edges of the
        scan the organ touches (``"first slice"``, ``"last slice"``, ``"field of view"``; empty when it is whole
        in view): a cut-off organ continues outside the scan, its volume and extent are those of the part in view;
        ``confidence`` (None without ``confidence=``) and ``check`` (True when the confidence is below
        :data:`napari_ctorgans.quality.LOW_CONFIDENCE`); and, for slicing the arrays, ``centroid_index``
        (z, y, x, float) and ``bbox_index`` ((z, y, x) first and last voxel). Voxels in the padding outside the
        reconstruction field (:func:`ct.padding_mask`) are outside the patient and never counted.

    Raises
    ------
    ValueError
        The labels are not integers or not on the grid of the CT.

    Examples
    --------
    >>> import napari_ctorgans as ct
    >>> vol, labels = ct.make_phantom(seed=0, spacing=6.0)
    >>> rows = ct.organ_statistics(labels, vol)
    >>> rows[0]["name"], rows[0]["volume_ml"] > 0
    ('liver', True)
    """
    names = labels.metadata.get("segment_names", {}) if isinstance(labels, Volume) else {}
    arr = _label_array(labels, volume)
    hu = np.asarray(volume.array)
    from .padding import may_have_padding, padding_mask

    pad = padding_mask(volume) if hu.ndim == 3 and may_have_padding(volume) else None
    boxes = ndimage.find_objects(arr) if arr.size and arr.max() > 0 else []
    rows = []
    for value, box in enumerate(boxes, start=1):
        if box is None or value == IGNORE_LABEL:
            continue
        mask = arr[box] == value
        if pad is not None:  # padding outside the reconstruction field is outside the patient: never an organ
            mask &= ~pad[box]
            if not mask.any():
                continue
        offset = np.array([s.start for s in box])
        rows.append(_one_organ(mask, hu[box], offset, volume, value))
        rows[-1]["name"] = str(names.get(value, rows[-1]["name"]))
        _flags(rows[-1], arr.shape, (confidence or {}).get(value))
    return rows


def _flags(row: dict, shape, confidence: float | None) -> None:
    """Add ``cut_off``, ``confidence`` and ``check`` to a statistics row."""
    from .quality import LOW_CONFIDENCE, cut_off

    row["cut_off"] = cut_off(row["bbox_index"], shape)
    row["confidence"] = None if confidence is None else float(confidence)
    row["check"] = confidence is not None and confidence < LOW_CONFIDENCE


def table_rows(stats: list[dict]) -> list[dict]:
    """Flatten :func:`organ_statistics` rows to the scalar columns of :data:`TABLE_COLUMNS` (CSV, tables)."""
    flat = []
    for row in stats:
        out = {k: row[k] for k in TABLE_COLUMNS if k in row}
        out["cut_off"] = "; ".join(row.get("cut_off") or [])
        out["confidence"] = "" if row.get("confidence") is None else row["confidence"]
        for key in ("centroid", "bbox_min", "bbox_max"):
            for axis, v in zip("LPS", row[f"{key}_lps"]):
                out[f"{key}_{axis}_mm"] = v
        flat.append({k: out[k] for k in TABLE_COLUMNS})
    return flat


def statistics_text(stats: list[dict], suffix: str, *, extra: dict | None = None) -> str:
    """The statistics table as ``.csv`` (the flat :data:`TABLE_COLUMNS`) or ``.json`` (every field, plus ``extra``)."""
    import csv
    import io
    import json

    suffix = suffix.lower()
    if suffix == ".json":
        return json.dumps({**(extra or {}), "organs": stats}, indent=1, default=float) + "\n"
    if suffix != ".csv":
        raise ValueError(f"the statistics table is written as .csv or .json, not {suffix or 'a file without suffix'}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in table_rows(stats):
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_statistics(path, stats: list[dict], *, overwrite: bool = False, extra: dict | None = None):
    """Write the statistics table (``.csv`` or ``.json``) verified and atomically; the previous file is kept on error.

    Raises
    ------
    ValueError
        Another suffix than ``.csv`` / ``.json``.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    from pathlib import Path

    from .io import write_bytes_atomic

    path = Path(path)
    text = statistics_text(stats, path.suffix, extra=extra)
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


__all__ = ["TABLE_COLUMNS", "index_to_lps", "organ_name", "organ_statistics", "statistics_text", "table_rows",
           "write_statistics"]
