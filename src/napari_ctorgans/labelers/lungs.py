"""Lungs: the air pockets inside the body whose tissue looks like lung parenchyma, as left and right lung.

The paper's recipe (threshold air, erode with a 1 cm ball, drop air touching the slice border, keep the two largest
components, undo the erosion) breaks on real scans: the largest inner air pockets of an abdominal scan are bowel gas,
eroded outside air does not touch the border unless the outside counts as air, tightly cropped lungs touch the field
of view, and the couch is an air pocket. Here the outside air is defined by a body mask, the erosion treats the
outside of the volume as air, and every eroded air pocket is kept or rejected for what it is: parenchyma (mean
around -850 HU with vessels) against gas or airways (near -1000 HU). A pocket whose mean passes but a large share
of which is as dark as gas (foam of the mattress under a thin slab, gas mixed with stool) is lung only when it holds
vessels, as every lung does, emphysematous ones included.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .. import morphology
from ._common import (
    as_ct,
    check_mask_like,
    check_positive,
    check_range,
    fill_holes_axial,
    looks_like_ct,
    strides,
    upsample,
)
from .body import label_body

RIGHT, LEFT = 1, 2


def label_lungs(
    volume,
    *,
    air_hu: float = -400.0,
    erosion_mm: float = 10.0,
    parenchyma_hu=(-940.0, -550.0),
    min_core_ml: float = 3.0,
    gas_hu: float = -950.0,
    max_gas_fraction: float = 0.25,
    min_vessel_fraction: float = 0.004,
    split: bool = False,
    work_mm: float = 3.0,
    body: np.ndarray | None = None,
    backend: str = "auto",
    spacing=None,
) -> np.ndarray:
    """Label the lungs of a CT.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units (or an ndarray together with ``spacing``).
    air_hu : float
        Air threshold T = HU < ``air_hu`` (SPEC: -150).
    erosion_mm : float
        Diameter of the erosion ball (SPEC: 10 mm); it separates the lungs from the airways and from each other.
    parenchyma_hu : (float, float)
        Range of the mean HU of an eroded air pocket for it to be lung; gas and airways average near -1000 HU.
    min_core_ml : float
        Smallest eroded air pocket kept as lung, in millilitres.
    gas_hu, max_gas_fraction, min_vessel_fraction : float
        An eroded air pocket of which at least ``max_gas_fraction`` lies below ``gas_hu`` is lung only when at
        least ``min_vessel_fraction`` of its grown-back axial outline is vessels (tissue enclosed by its air):
        normal parenchyma has almost no voxel below -950 HU, the foam of a mattress and gas have many and no
        vessels, and emphysematous lung keeps its vessels. ``max_gas_fraction=1`` turns the test off.
    split : bool
        Return 1 for the right lung and 2 for the left lung instead of a boolean mask.
    work_mm : float
        The air pockets are eroded and classified on the volume subsampled by integer factors to about this
        spacing (0: full grid); the lung boundary is always taken from the full-resolution air mask.
    body : ndarray of bool, optional
        A body mask (default: :func:`label_body`); air outside it is never lung.
    backend : {"auto", "cpu", "cuda"}
        Backend of the morphology.
    spacing : 3 floats, optional
        Voxel size when ``volume`` is a bare array.

    Returns
    -------
    ndarray
        bool mask, or uint8 with 1 = right lung, 2 = left lung when ``split=True``. Empty when there are no lungs.
    """
    arr, sp = as_ct(volume, spacing)
    erosion_mm = check_positive(erosion_mm, "erosion_mm")
    min_core_ml = check_positive(min_core_ml, "min_core_ml", allow_zero=True)
    lo, hi = check_range(parenchyma_hu, "parenchyma_hu")
    max_gas_fraction = check_positive(max_gas_fraction, "max_gas_fraction", allow_zero=True)
    min_vessel_fraction = check_positive(min_vessel_fraction, "min_vessel_fraction", allow_zero=True)
    try:
        gas_hu = float(gas_hu)
    except (TypeError, ValueError):
        raise TypeError(f"gas_hu must be a number of HU, got {gas_hu!r}") from None
    if not np.isfinite(gas_hu) or gas_hu >= hi:
        raise ValueError(f"gas_hu must be a finite HU value below the top of parenchyma_hu ({hi:g}), got {gas_hu!r}")
    empty = np.zeros(arr.shape, dtype=np.uint8 if split else bool)
    if not looks_like_ct(arr, what="the lung mask"):
        return empty
    if body is None:
        body = label_body(arr, spacing=sp, backend=backend)
    else:
        body = check_mask_like(body, arr.shape, "body")
    from ._common import bbox

    box = bbox(body)
    if box is None:
        return empty
    a = arr[box]
    air = (a < air_hu) & body[box]
    if not air.any():
        return empty
    f = strides(sp, work_mm)
    sub = tuple(slice(None, None, fi) for fi in f)
    csp = tuple(s_ * fi for s_, fi in zip(sp, f))
    cair = air[sub]
    # outside the volume counts as air: lungs cut by the field of view keep their core
    core = morphology.erode(cair, erosion_mm, csp, backend=backend, border_value=1) & cair
    lab, n = ndi.label(core)
    if n == 0:
        return empty
    idx = np.arange(1, n + 1)
    counts = ndi.sum_labels(np.ones_like(core, dtype=np.uint8), lab, idx)
    means = ndi.mean(a[sub], lab, idx)
    ml = counts * float(np.prod(csp)) / 1000.0
    keep = (means >= lo) & (means <= hi) & (ml >= min_core_ml)
    if max_gas_fraction < 1 and keep.any():
        gas = ndi.sum_labels(a[sub] < gas_hu, lab, idx) / np.maximum(counts, 1)
        for i in np.flatnonzero(keep & (gas >= max_gas_fraction)):
            keep[i] = _vessel_fraction(lab == idx[i], cair, erosion_mm, csp, backend) >= min_vessel_fraction
    if not keep.any():
        return empty
    kept = np.isin(lab, idx[keep])
    rejected = core & ~kept
    # undo the erosion: the opening of the kept pockets, then air connected to it that is not near rejected pockets
    opened = upsample(morphology.dilate(kept, erosion_mm, csp, backend=backend), f, air.shape) & air
    if rejected.any():
        other = upsample(morphology.dilate(rejected, erosion_mm, csp, backend=backend), f, air.shape) & air
        allowed = air & ~(other & ~opened)
    else:
        allowed = air
    lab2, _ = ndi.label(allowed)
    touching = np.unique(lab2[opened])
    lungs = np.isin(lab2, touching[touching > 0])
    out = np.zeros(arr.shape, dtype=bool)
    out[box] = lungs
    if not split:
        return out
    return split_lungs(out, body=body)


def _vessel_fraction(core: np.ndarray, air: np.ndarray, erosion_mm: float, spacing, backend: str) -> float:
    """Share of tissue (vessels) inside the axial outline of an air pocket grown back from its eroded ``core``."""
    pocket = morphology.dilate(core, erosion_mm, spacing, backend=backend) & air
    hull = fill_holes_axial(pocket)
    return float(np.count_nonzero(hull & ~air)) / max(int(np.count_nonzero(hull)), 1)


def split_lungs(lungs: np.ndarray, *, body: np.ndarray | None = None) -> np.ndarray:
    """Split a lung mask into right (1) and left (2) by the patient's midline.

    Axis 2 runs from the patient's right to left (canonical orientation). A connected piece lies on the side of its
    centre of mass relative to the body's centre; a piece that crosses the midline by more than a tenth of its
    voxels on both sides (lungs touching at the anterior junction) is cut at the midline.
    """
    lungs = np.asarray(lungs, dtype=bool)
    out = np.zeros(lungs.shape, dtype=np.uint8)
    if not lungs.any():
        return out
    ref = body if body is not None and np.any(body) else lungs
    mid = float(ndi.center_of_mass(ref.any(axis=(0, 1)))[0])
    x = np.arange(lungs.shape[2])
    lab, n = ndi.label(lungs)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        piece = lab[sl] == i
        xs = x[sl[2]][None, None, :]
        right = np.count_nonzero(piece & (xs < mid))
        left = np.count_nonzero(piece) - right
        view = out[sl]
        if min(right, left) > 0.1 * (right + left):
            view[piece & (xs < mid)] = RIGHT
            view[piece & (xs >= mid)] = LEFT
        else:
            view[piece] = RIGHT if right >= left else LEFT
    return out
