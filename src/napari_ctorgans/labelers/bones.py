"""Bone: the skeleton above a bone threshold, closed with a large ball, limited to tissue, holes filled per slice.

The paper keeps the largest component above 200 HU; on a thin slab the ribs are separate pieces, and with contrast
the aorta and kidneys exceed 200 HU too. Here every piece above ``bone_hu`` that contains cortical bone
(``cortex_hu``) is kept, and contrast-filled vessels touching a vertebra are cut off where they are far from cortex.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .. import morphology
from ._common import (
    as_ct,
    bbox,
    check_mask_like,
    check_positive,
    fill_holes_axial,
    largest_component,
    looks_like_ct,
)
from .body import label_body


def label_bones(
    volume,
    *,
    bone_hu: float = 150.0,
    tissue_hu: float = 60.0,
    cortex_hu: float = 600.0,
    cortex_mm: float = 0.0,
    closing_mm: float = 25.0,
    min_piece_ml: float = 0.05,
    keep: str = "cortex",
    fill_holes: bool = True,
    body: np.ndarray | None = None,
    backend: str = "auto",
    spacing=None,
) -> np.ndarray:
    """Label the skeleton of a CT.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units (or an ndarray together with ``spacing``).
    bone_hu : float
        tau2 of the paper: bone seeds are HU > ``bone_hu`` (200; the paper's code used 175).
    tissue_hu : float
        tau1: after the closing, only voxels above it are kept (removes soft tissue bridged between bones).
    cortex_hu : float
        With ``keep="cortex"``, a piece is bone when it holds voxels above this value (contrast-filled vessels
        and kidneys stay below it), and only its voxels within ``cortex_mm`` of such voxels are kept.
    cortex_mm : float
        Distance (mm) from cortical voxels within which bone seeds are kept (cuts vessels touching a vertebra).
    closing_mm : float
        Diameter of the closing ball (2.5 cm).
    min_piece_ml : float
        Smallest piece kept, in millilitres.
    keep : {"cortex", "largest"}
        "largest" is the paper's literal recipe (largest connected component only).
    fill_holes : bool
        Fill the holes of every axial slice (marrow of pelvis and femurs).
    body : ndarray of bool, optional
        Body mask (default :func:`label_body`); the couch and anything outside the patient is never bone.
    backend : {"auto", "cpu", "cuda"}
        Backend of the morphology.
    spacing : 3 floats, optional
        Voxel size when ``volume`` is a bare array.

    Returns
    -------
    ndarray of bool
    """
    arr, sp = as_ct(volume, spacing)
    closing_mm = check_positive(closing_mm, "closing_mm", allow_zero=True)
    cortex_mm = check_positive(cortex_mm, "cortex_mm", allow_zero=True)
    min_piece_ml = check_positive(min_piece_ml, "min_piece_ml", allow_zero=True)
    if keep not in ("cortex", "largest"):
        raise ValueError(f"keep must be 'cortex' or 'largest', got {keep!r}")
    empty = np.zeros(arr.shape, dtype=bool)
    if not looks_like_ct(arr, what="the bone mask"):
        return empty
    if body is None:
        body = label_body(arr, spacing=sp, backend=backend)
    else:
        body = check_mask_like(body, arr.shape, "body")
    half = [int(np.ceil(closing_mm / 2 / s)) + 1 for s in sp]
    seeds = (arr > bone_hu) & body
    box = bbox(seeds, margin=half)
    if box is None:
        return empty
    a = arr[box]
    seeds = seeds[box]
    if keep == "largest":
        bone = largest_component(seeds)
    else:
        cortex = a > cortex_hu
        if cortex_mm > 0 and cortex.any():
            seeds &= morphology.dilate(cortex, 2 * cortex_mm, sp, backend=backend)
        lab, n = ndi.label(seeds)
        if n == 0:
            return empty
        ml = np.bincount(lab.ravel(), minlength=n + 1) * float(np.prod(sp)) / 1000.0
        has_cortex = np.zeros(n + 1, dtype=bool)
        has_cortex[np.unique(lab[a > cortex_hu])] = True
        has_cortex[0] = False
        good = np.flatnonzero(has_cortex & (ml >= min_piece_ml))
        if good.size == 0:
            return empty
        bone = np.isin(lab, good)
    if closing_mm > 0:
        # closing that does not shrink at the volume border: outside counts as bone for the erosion
        grown = morphology.dilate(bone, closing_mm, sp, backend=backend, border_value=0)
        bone = morphology.erode(grown, closing_mm, sp, backend=backend, border_value=1)
        del grown
    bone &= a > tissue_hu
    if fill_holes:
        bone = fill_holes_axial(bone)
    out = empty
    out[box] = bone
    return out
