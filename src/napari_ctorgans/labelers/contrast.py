"""Contrast-enhanced blood for the bone labeller: vessel lumens, heart chambers and dense contrast are not bone.

After an injection, blood in the heart, the aorta and the vena cava, the renal cortex and contrast in the bowel or
the collecting system reach 150 to over 1000 HU: as bright as bone, and clipped at +1023 in 12-bit archives like
cortex. Bone differs in *shape* and *texture*: cortex is a thin shell (a few mm) around trabecular marrow, whose
local standard deviation is high; contrast fills a lumen of its own, homogeneous (only image noise) and thick
enough to hold a ball of ``vessel_mm``. The tests here are therefore:

- *homogeneous*: local mean and standard deviation in an axial square of ``window_mm`` (:func:`homogeneous_masks`),
  split into soft (mean within ``soft_hu``: blood, cartilage, discs, canal) and dense (mean above ``soft_hu``:
  concentrated contrast; also cortex clipped at +1023, which is too thin to hold the ball);
- *a lumen*: the bright homogeneous voxels that survive an opening with a ``vessel_mm`` ball, do not lie in the
  axial holes of a cortex ring (marrow does) and form a piece of at least ``vessel_min_ml`` (a vessel runs along
  the scan; marrow pockets that pass the texture test are a fraction of a millilitre).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .. import morphology
from ._common import fill_holes_axial, label_sizes

# in-plane 4-connectivity: cross-sections are labelled slice by slice
_AXIAL = np.zeros((3, 3, 3), dtype=bool)
_AXIAL[1] = ndi.generate_binary_structure(2, 1)


def homogeneous_masks(arr: np.ndarray, spacing, *, soft_hu=(0.0, 450.0), soft_std: float = 25.0,
                      window_mm: float = 5.0, blood_std: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(soft, dense)``: voxels whose local standard deviation is below ``soft_std`` and whose local mean lies
    within ``soft_hu`` (soft), or whose local standard deviation is below ``blood_std`` (default ``soft_std``) and
    whose local mean is above ``soft_hu`` (dense). With ``blood_std`` given, a third mask is returned: every voxel
    whose local standard deviation is below ``blood_std`` (``(soft, dense, flat)``).

    The statistics are computed in each axial slice over a square of about ``window_mm`` (at least 3 voxels), in
    float32 one slice at a time (no full-size float temporaries).
    """
    lo, hi = soft_hu
    size = [max(3, 2 * int(round(window_mm / s / 2)) + 1) for s in spacing[1:]]
    loose = soft_std if blood_std is None else blood_std
    soft = np.zeros(arr.shape, dtype=bool)
    dense = np.zeros(arr.shape, dtype=bool)
    flat = np.zeros(arr.shape, dtype=bool) if blood_std is not None else None
    for z in range(arr.shape[0]):
        sl = arr[z].astype(np.float32)
        m = ndi.uniform_filter(sl, size)
        var = ndi.uniform_filter(sl * sl, size)
        var -= m * m
        soft[z] = (var < soft_std * soft_std) & (m > lo) & (m < hi)
        f = var < loose * loose
        dense[z] = f & (m >= hi)
        if flat is not None:
            flat[z] = f & (m > lo)
    return (soft, dense) if flat is None else (soft, dense, flat)


def noise_hu(arr: np.ndarray, spacing, *, window_mm: float = 5.0, slices: int = 8) -> float:
    """Image noise (HU) of a CT: the 10th percentile of the local standard deviation (the window of
    :func:`homogeneous_masks`) over soft tissue (local mean -50 to 150 HU: muscle, organs) on up to ``slices``
    evenly spaced axial slices. About 10 HU on the shared 3 mm abdomen and the DICOM series, 25 HU on the native
    thorax. 0 when there is no soft tissue."""
    size = [max(3, 2 * int(round(window_mm / s / 2)) + 1) for s in spacing[1:]]
    stds = []
    for z in np.unique(np.linspace(0, arr.shape[0] - 1, slices).astype(int)):
        sl = arr[z].astype(np.float32)
        m = ndi.uniform_filter(sl, size)
        var = ndi.uniform_filter(sl * sl, size)
        var -= m * m
        sel = (m > -50) & (m < 150)
        stds.append(np.sqrt(np.maximum(var[sel], 0)))
    s = np.concatenate(stds) if stds else np.zeros(0)
    return float(np.percentile(s, 10)) if s.size else 0.0


def homogeneous_tissue(arr: np.ndarray, spacing, *, soft_hu=(0.0, 450.0), soft_std: float = 20.0,
                       window_mm: float = 5.0) -> np.ndarray:
    """Voxels of homogeneous tissue: local mean within ``soft_hu`` and local standard deviation below ``soft_std``
    (the ``soft`` mask of :func:`homogeneous_masks`)."""
    return homogeneous_masks(arr, spacing, soft_hu=soft_hu, soft_std=soft_std, window_mm=window_mm)[0]


def not_enclosed(mask: np.ndarray, cortex: np.ndarray) -> np.ndarray:
    """Drop the components of ``mask`` lying mostly in the axial holes of ``cortex`` rings: marrow. Cortex itself
    is not a hole, so dense contrast (above ``cortex_hu``) is judged by where it lies, not by its own HU."""
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    inside = np.bincount(lab[fill_holes_axial(cortex) & ~cortex], minlength=n + 1)
    total = label_sizes(lab, n)
    keep = inside < 0.5 * total
    keep[0] = False
    return keep[lab]


def vessel_sized(mask: np.ndarray, spacing, max_mm: float) -> np.ndarray:
    """Keep the axial cross-sections of ``mask`` no larger than a disc of diameter ``max_mm`` (not an organ)."""
    lab, n = ndi.label(mask, structure=_AXIAL)
    if n == 0:
        return mask
    area = label_sizes(lab, n) * float(spacing[1] * spacing[2])
    keep = area <= np.pi * (max_mm / 2.0) ** 2
    keep[0] = False
    return keep[lab]


def _big_enough(mask: np.ndarray, dense: np.ndarray, spacing, min_ml: float, dense_min_ml: float) -> np.ndarray:
    """Keep the 3D components of ``mask`` holding at least ``min_ml`` millilitres, or ``dense_min_ml`` when most of
    the component is ``dense``."""
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    ml = label_sizes(lab, n) * float(np.prod(spacing)) / 1000.0
    dense_ml = label_sizes(lab, n, where=dense) * float(np.prod(spacing)) / 1000.0
    keep = ml >= np.where(2 * dense_ml > ml, dense_min_ml, min_ml)
    keep[0] = False
    return keep[lab]


def lumens(a: np.ndarray, spacing, flat: np.ndarray, dense: np.ndarray, cortex: np.ndarray, *, bright_hu: float,
           vessel_mm: float, min_ml: float, dense_min_ml: float, backend: str = "auto") -> np.ndarray:
    """Lumens of contrast-filled blood (vessels, heart chambers) and dense contrast pools: the homogeneous
    (``flat``) voxels above ``bright_hu`` that survive an opening with a ``vessel_mm`` ball, are not enclosed by
    ``cortex`` rings and form pieces of at least ``min_ml`` millilitres (``dense_min_ml`` where most of the piece
    is ``dense``)."""
    lumen = morphology.opening(flat & (a > bright_hu), vessel_mm, spacing, backend=backend)
    if not lumen.any():
        return lumen
    return _big_enough(not_enclosed(lumen, cortex), dense, spacing, min_ml, dense_min_ml)
