"""Overlap and surface-distance metrics of two binary masks (public through :mod:`napari_ctorgans.metrics`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------------------ validation
def _spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        raise TypeError(f"spacing is required: {ndim} voxel sizes in mm in array-axis order, e.g. (2.0, 0.8, 0.8)")
    if np.isscalar(spacing):
        values = (float(spacing),) * ndim
    else:
        try:
            values = tuple(float(s) for s in spacing)
        except TypeError:
            raise TypeError(f"spacing must be a number or {ndim} numbers in mm, got {spacing!r}") from None
    if len(values) != ndim:
        raise ValueError(
            f"spacing must have {ndim} values (one per array axis, in mm) for {ndim}D masks, got {len(values)}: "
            f"{spacing!r}"
        )
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing values must be positive and finite (mm), got {spacing!r}")
    return values


def _mask(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a binary mask (bool or 0/1 numbers), got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(bool)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; a mask must hold only 0 and 1")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 1 or (arr.dtype.kind == "f" and not np.isin(arr, (0, 1)).all()):
        raise ValueError(
            f"{name} must be a binary mask with values 0 and 1, got values in [{lo}, {hi}]; "
            f"for a label map pass e.g. labels == 1"
        )
    return arr.astype(bool)


def _pair(pred: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    p, r = _mask(pred, "pred"), _mask(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred and ref must have the same shape, got pred {p.shape} and ref {r.shape}")
    return p, r


# --------------------------------------------------------------------------------------------------------- overlap
def _overlap_counts(p: np.ndarray, r: np.ndarray) -> tuple[int, int, int]:
    return int(np.count_nonzero(p)), int(np.count_nonzero(r)), int(np.count_nonzero(p & r))


def dice(pred: Any, ref: Any) -> float:
    """Dice coefficient ``2 |S & R| / (|S| + |R|)``; 1.0 when both masks are empty.

    Parameters
    ----------
    pred, ref : ndarray of bool (or 0/1), same shape
        Segmentation ``S`` and reference ``R``.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> dice(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    0.5
    """
    p, r = _pair(pred, ref)
    ns, nr, ni = _overlap_counts(p, r)
    return 1.0 if ns + nr == 0 else 2.0 * ni / (ns + nr)


def iou(pred: Any, ref: Any) -> float:
    """Intersection over union (Jaccard) ``|S & R| / |S | R|``; 1.0 when both masks are empty."""
    p, r = _pair(pred, ref)
    ns, nr, ni = _overlap_counts(p, r)
    union = ns + nr - ni
    return 1.0 if union == 0 else ni / union


def voe(pred: Any, ref: Any) -> float:
    """Volumetric overlap error ``1 - IoU``; 0.0 when both masks are empty."""
    return 1.0 - iou(pred, ref)


def rvd(pred: Any, ref: Any) -> float:
    """Relative volume difference ``(|S| - |R|) / |R|`` (signed; over-segmentation is positive).

    0.0 when both are empty, ``inf`` when only the reference is empty, -1.0 when only the prediction is empty.
    """
    p, r = _pair(pred, ref)
    ns, nr = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    if nr == 0:
        return 0.0 if ns == 0 else math.inf
    return (ns - nr) / nr


# ------------------------------------------------------------------------------------------------ surface distances
def _bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        if idx.size == 0:
            return None
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(slices)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour (or 4 in 2D) outside the mask or outside the array."""
    padded = np.pad(mask, 1)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    interior = mask.copy()
    for axis in range(mask.ndim):
        for shift in (0, 2):
            sl = list(core)
            sl[axis] = slice(shift, shift + mask.shape[axis])
            interior &= padded[tuple(sl)]
    return mask & ~interior


def _directed(from_pts: np.ndarray, to_pts: np.ndarray, tree: Any = None) -> np.ndarray:
    from scipy.spatial import cKDTree

    if from_pts.shape[0] == 0:
        return np.zeros(0)
    if to_pts.shape[0] == 0:
        return np.full(from_pts.shape[0], np.inf)
    tree = tree if tree is not None else cKDTree(to_pts, leafsize=32, balanced_tree=False, compact_nodes=False)
    return tree.query(from_pts, k=1, workers=-1)[0]


def surface_distances(
    pred: Any, ref: Any, *, spacing: Any, method: str = "kdtree"
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``pred`` to the surface of ``ref``, and back.

    Parameters
    ----------
    pred, ref : ndarray of bool, same 2D or 3D shape
    spacing : float or sequence of float
        Voxel size in mm per array axis (z, y, x).
    method : {"kdtree", "edt"}
        Nearest-surface search by a KD-tree on surface points, or by ``scipy.ndimage.distance_transform_edt``
        with ``sampling=spacing`` inside the bounding box. Both are exact.

    Returns
    -------
    d_pred_to_ref, d_ref_to_pred : ndarray of float64
        One value per surface voxel of ``pred`` (resp. ``ref``). If the other mask is empty the values are ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 1, 6), bool); a[..., 1:3] = True
    >>> b = np.zeros((1, 1, 6), bool); b[..., 3:5] = True
    >>> surface_distances(a, b, spacing=(1, 1, 2.0))[0].tolist()
    [4.0, 2.0]
    """
    p, r = _pair(pred, ref)
    if p.ndim not in (2, 3):
        raise ValueError(f"pred and ref must be 2D or 3D masks for surface distances, got shape {p.shape}")
    sp = _spacing(spacing, p.ndim)
    if method not in ("kdtree", "edt"):
        raise ValueError(f"method must be 'kdtree' or 'edt', got {method!r}")
    box = _bbox(p | r)
    if box is None:
        return np.zeros(0), np.zeros(0)
    p, r = p[box], r[box]
    bp, br = _boundary(p), _boundary(r)
    if method == "edt" and bp.any() and br.any():
        from scipy.ndimage import distance_transform_edt

        d_pr = distance_transform_edt(~br, sampling=sp)[bp]
        d_rp = distance_transform_edt(~bp, sampling=sp)[br]
        return d_pr, d_rp
    scale = np.asarray(sp)
    pts_p = np.argwhere(bp) * scale
    pts_r = np.argwhere(br) * scale
    # voxels on both surfaces are at distance 0: query only the others (argwhere and masking share C order)
    d_pr = np.zeros(pts_p.shape[0])
    d_rp = np.zeros(pts_r.shape[0])
    off_p = ~br[bp]
    off_r = ~bp[br]
    d_pr[off_p] = _directed(pts_p[off_p], pts_r)
    d_rp[off_r] = _directed(pts_r[off_r], pts_p)
    return d_pr, d_rp


def _distance_stats(d_pr: np.ndarray, d_rp: np.ndarray, tolerance_mm: float) -> dict[str, float]:
    n = d_pr.size + d_rp.size
    if n == 0:  # both empty
        return {"assd": 0.0, "mssd": 0.0, "rmsd": 0.0, "hd95": 0.0, "surface_dice": 1.0}
    if d_pr.size == 0 or d_rp.size == 0:  # one empty
        return {"assd": math.inf, "mssd": math.inf, "rmsd": math.inf, "hd95": math.inf, "surface_dice": 0.0}
    both = np.concatenate([d_pr, d_rp])
    return {
        "assd": float(both.mean()),
        "mssd": float(max(d_pr.max(), d_rp.max())),
        "rmsd": float(np.sqrt(np.mean(both**2))),
        "hd95": float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))),
        "surface_dice": float((np.count_nonzero(d_pr <= tolerance_mm) + np.count_nonzero(d_rp <= tolerance_mm)) / n),
    }


def _check_tol(tolerance_mm: Any) -> float:
    tol = float(tolerance_mm)
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance_mm must be a non-negative distance in mm, got {tolerance_mm!r}")
    return tol


def assd(pred: Any, ref: Any, *, spacing: Any) -> float:
    """Average symmetric surface distance (mm): mean of both directed surface distance sets pooled.

    0 when both masks are empty, ``inf`` when exactly one is.
    """
    return _distance_stats(*surface_distances(pred, ref, spacing=spacing), 0.0)["assd"]


def mssd(pred: Any, ref: Any, *, spacing: Any) -> float:
    """Maximum symmetric surface distance = Hausdorff distance (mm); 0 if both empty, ``inf`` if one is."""
    return _distance_stats(*surface_distances(pred, ref, spacing=spacing), 0.0)["mssd"]


def rmsd(pred: Any, ref: Any, *, spacing: Any) -> float:
    """Root-mean-square symmetric surface distance (mm); 0 if both empty, ``inf`` if one is."""
    return _distance_stats(*surface_distances(pred, ref, spacing=spacing), 0.0)["rmsd"]


def hd95(pred: Any, ref: Any, *, spacing: Any) -> float:
    """95th-percentile Hausdorff distance (mm): the larger of the two directed 95th percentiles."""
    return _distance_stats(*surface_distances(pred, ref, spacing=spacing), 0.0)["hd95"]


def surface_dice(pred: Any, ref: Any, *, spacing: Any, tolerance_mm: float = 2.0) -> float:
    """Surface Dice at a tolerance: fraction of both surfaces' voxels within ``tolerance_mm`` of the other surface.

    1 when both masks are empty, 0 when exactly one is.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True
    >>> surface_dice(a, np.roll(a, 1, axis=0), spacing=3.0, tolerance_mm=3.0)
    1.0
    """
    tol = _check_tol(tolerance_mm)
    return _distance_stats(*surface_distances(pred, ref, spacing=spacing), tol)["surface_dice"]
