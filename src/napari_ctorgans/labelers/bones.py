"""Bone: the skeleton above a bone threshold, closed with a large ball, limited to tissue, holes filled per slice.

The paper keeps the largest component above 200 HU; on a thin slab the ribs are separate pieces, and with contrast
the aorta and kidneys exceed 200 HU too. Here (``keep="cortex"``):

1. *homogeneous soft tissue* is found slice by slice: voxels whose local mean (a ``window_mm`` square) lies in
   ``soft_hu`` and whose local standard deviation is below ``soft_std``. Contrast-filled blood, costal cartilage,
   intervertebral discs and the spinal canal are homogeneous; marrow is trabecular and cortex is above
   ``cortex_hu``. The mask is grown by ``soft_mm`` (the partial-volume rim of a vessel), never into cortex;
2. contrast-filled lumens (:mod:`.contrast`) are the bright homogeneous tissue, at any HU (dense contrast and
   +1023-clipped contrast too), that survives an opening with a ``vessel_mm`` ball, is not enclosed by cortex
   rings and forms a piece of at least ``vessel_min_ml`` (``dense_min_ml`` where its local mean is above
   ``soft_hu``); they and their ``soft_mm`` rim are never bone, and everything within ``vessel_wall_mm`` of the
   lumens at most ``vessel_max_mm`` across (wall, calcified plaques) is not bone;
3. seeds are the voxels above ``bone_hu`` outside the bright homogeneous tissue and the vessels; every connected
   piece that holds cortex (``cortex_hu``) and at least ``min_piece_ml`` is kept;
4. only voxels of these pieces above ``edge_hu`` enter the closing with a ``closing_mm`` ball, so the outer
   boundary follows ``edge_hu`` while the closing adds marrow; the result keeps voxels above ``tissue_hu`` outside
   the homogeneous tissue (``edge_hu`` and ``tissue_hu`` default to values that fall with the voxel size, see
   :func:`default_thresholds`);
5. holes of every axial slice are filled, except holes darker than ``marrow_hu`` that are at least
   ``fill_max_soft`` homogeneous soft tissue: the disc between two endplate rims and the canal inside a
   vertebral arch stay empty.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .. import morphology
from ._common import (
    as_ct,
    axial_boxes,
    bbox,
    check_mask_like,
    check_positive,
    check_range,
    fill_holes_axial,
    label_sizes,
    largest_component,
    looks_like_ct,
)
from .body import label_body
from .contrast import _AXIAL, homogeneous_masks, homogeneous_tissue, lumens, noise_hu, vessel_sized

__all__ = ["label_bones", "default_thresholds", "homogeneous_tissue"]

#: default local standard deviation (HU) below which tissue is homogeneous, and its multiple of the image noise on
#: noisy scans (:func:`~napari_ctorgans.labelers.contrast.noise_hu`), whichever is larger
SOFT_STD, NOISE_FACTOR = 25.0, 1.5

#: (in-plane voxel size mm, edge_hu, tissue_hu) at the fine and the coarse end; linear in between
_THRESHOLDS = ((1.0, 240.0, 120.0), (3.0, 150.0, 60.0))


def default_thresholds(spacing) -> tuple[float, float]:
    """Default ``(edge_hu, tissue_hu)`` of :func:`label_bones` for a voxel spacing (z, y, x) in mm.

    Partial-volume averaging lowers the HU of the thin cortical rim and of marrow/cortex mixtures as voxels grow,
    so both thresholds fall with the in-plane voxel size: (240, 120) HU at 1 mm and finer, (150, 60) HU at 3 mm
    and coarser, linear in between (values measured on the DICOM slab at 0.98 mm and the abdomen at 3 mm).
    """
    (s0, e0, t0), (s1, e1, t1) = _THRESHOLDS
    w = float(np.clip((float(np.mean(spacing[1:])) - s0) / (s1 - s0), 0.0, 1.0))
    return e0 + w * (e1 - e0), t0 + w * (t1 - t0)


def _blood(a, sp, flat, dense, cortex, bright_hu, vessel_mm, min_ml, dense_min_ml, max_mm, wall_mm, rim_mm,
           backend):
    """Never bone: contrast-filled lumens (:func:`~napari_ctorgans.labelers.contrast.lumens`) grown by ``rim_mm``
    into everything, cortex included (the partial-volume rim of dense contrast is as bright as cortex), and the
    ``wall_mm`` ball around the lumens no wider than ``max_mm`` (vessel walls and their calcified plaques).
    None when there is no lumen."""
    if vessel_mm <= 0:
        return None
    lumen = lumens(a, sp, flat, dense, cortex, bright_hu=bright_hu, vessel_mm=vessel_mm, min_ml=min_ml,
                   dense_min_ml=dense_min_ml, backend=backend)
    if not lumen.any():
        return None
    blood = morphology.dilate(lumen, rim_mm, sp, backend=backend) if rim_mm > 0 else lumen
    if wall_mm > 0:
        tubes = vessel_sized(lumen, sp, max_mm)
        if tubes.any():
            blood |= morphology.dilate(tubes, wall_mm, sp, backend=backend)
    return blood


def _check_hu(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of HU or None for the default, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number of HU, got {value!r}")
    return v


def _fill_holes_not_soft(bone: np.ndarray, soft: np.ndarray, a: np.ndarray, max_soft: float,
                        marrow_hu: float) -> np.ndarray:
    """Fill the axial holes of ``bone`` except those darker than ``marrow_hu`` on average with at least a fraction
    ``max_soft`` of ``soft`` voxels (disc, spinal canal). Works slice by slice (no full-size label image)."""
    out = bone.copy()
    for z, sl in axial_boxes(bone):
        b = bone[z]
        holes = ndi.binary_fill_holes(b[sl])
        holes &= ~b[sl]
        lab, n = ndi.label(holes, structure=_AXIAL[1])
        if n == 0:
            continue
        total = np.bincount(lab.ravel(), minlength=n + 1)
        nsoft = np.bincount(lab[soft[z][sl]], minlength=n + 1)
        inside = lab > 0
        mean = np.bincount(lab[inside], weights=a[z][sl][inside], minlength=n + 1) / np.maximum(total, 1)
        fill = (nsoft < max_soft * total) | (mean >= marrow_hu)
        fill[0] = False
        out[z][sl] |= fill[lab]
    return out


def label_bones(
    volume,
    *,
    bone_hu: float = 150.0,
    edge_hu: float | None = None,
    tissue_hu: float | None = None,
    cortex_hu: float = 600.0,
    cortex_mm: float = 0.0,
    soft_hu=(0.0, 450.0),
    soft_std: float = SOFT_STD,
    blood_std: float | None = None,
    soft_mm: float = 3.0,
    window_mm: float = 5.0,
    vessel_mm: float = 6.0,
    vessel_wall_mm: float = 15.0,
    vessel_max_mm: float = 40.0,
    vessel_min_ml: float = 1.0,
    dense_min_ml: float = 20.0,
    fill_max_soft: float = 0.2,
    marrow_hu: float = 100.0,
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
    edge_hu : float, optional
        With ``keep="cortex"``: only voxels of the kept pieces above this value enter the closing, so the outer
        boundary of bone follows ``edge_hu`` instead of ``bone_hu``. Default: :func:`default_thresholds` (240 HU
        for voxels of 1 mm in-plane, 150 HU for 3 mm).
    tissue_hu : float, optional
        tau1: after the closing, only voxels above it are kept (removes soft tissue bridged between bones).
        Default: :func:`default_thresholds` (120 HU for voxels of 1 mm in-plane, 60 HU for 3 mm); the paper's
        literal recipe uses 0.
    cortex_hu : float
        With ``keep="cortex"``, a piece is bone when it holds voxels above this value (contrast-filled vessels
        and kidneys stay below it).
    cortex_mm : float
        When positive, bone seeds farther than this distance (mm) from cortical voxels are dropped (0: off).
    soft_hu : (float, float)
        With ``keep="cortex"``: HU range of the local mean of homogeneous soft tissue (contrast blood, cartilage,
        disc, spinal canal), which is never bone.
    soft_std : float
        Local standard deviation (HU) below which tissue counts as homogeneous; trabecular marrow is above it.
    blood_std : float, optional
        The same for contrast-filled lumens (vessels, chambers, dense pools). Default: ``soft_std``, or 1.5 times
        the image noise where that is larger (noisy, low-dose scans:
        :func:`~napari_ctorgans.labelers.contrast.noise_hu`), so blood stays homogeneous there; ``soft_std=0``
        turns both tests off.
    soft_mm : float
        The homogeneous tissue is grown by a ball of this diameter (mm), never into cortex, to take the
        partial-volume rim of vessels along.
    window_mm : float
        In-plane size of the square (mm, at least 3 voxels) of the local mean and standard deviation.
    vessel_mm : float
        Contrast-filled lumens (aorta, cava, heart chambers, dense contrast pools) are the homogeneous tissue
        brighter than ``bone_hu - 40`` that survives an opening with a ball of this diameter (mm; trabecular
        marrow and thin cortex do not). 0 turns the lumen steps off.
    vessel_min_ml, dense_min_ml : float
        Smallest lumen piece (ml): a vessel runs along the scan, while the marrow pockets that pass the texture
        test hold a fraction of a millilitre. Pieces whose local mean is mostly above ``soft_hu`` (dense or
        clipped contrast) must hold ``dense_min_ml``, as no bone holds that much homogeneous cortex.
    vessel_max_mm : float
        Largest vessel diameter (mm): lumen cross-sections of a larger area are an enhancing organ (a bright
        liver, spleen or kidney), not a vessel, and get no wall.
    vessel_wall_mm : float
        Everything within a ball of this diameter (mm) around the lumen of a large vessel is not bone: the wall
        and its calcified plaques, which are as bright as cortex and often touch a vertebra (0: off).
    fill_max_soft, marrow_hu : float
        An axial hole is left empty when at least a fraction ``fill_max_soft`` of it is homogeneous soft tissue
        and its mean is below ``marrow_hu`` (disc between endplate rims, spinal canal inside the arch); every
        other hole (marrow, fatty or not) is filled. ``fill_max_soft=1`` fills every hole as the paper does.
    closing_mm : float
        Diameter of the closing ball (2.5 cm).
    min_piece_ml : float
        Smallest piece kept, in millilitres.
    keep : {"cortex", "largest"}
        "largest" is the paper's literal recipe (largest connected component above ``bone_hu``, closed, limited to
        ``tissue_hu``, every axial hole filled; the ``edge_hu`` and soft-tissue steps are not applied).
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
    auto_edge, auto_tissue = default_thresholds(sp)
    edge_hu = auto_edge if edge_hu is None else _check_hu(edge_hu, "edge_hu")
    tissue_hu = auto_tissue if tissue_hu is None else _check_hu(tissue_hu, "tissue_hu")
    closing_mm = check_positive(closing_mm, "closing_mm", allow_zero=True)
    cortex_mm = check_positive(cortex_mm, "cortex_mm", allow_zero=True)
    min_piece_ml = check_positive(min_piece_ml, "min_piece_ml", allow_zero=True)
    soft_std = check_positive(soft_std, "soft_std", allow_zero=True)
    blood_std = None if blood_std is None else check_positive(blood_std, "blood_std", allow_zero=True)
    soft_mm = check_positive(soft_mm, "soft_mm", allow_zero=True)
    window_mm = check_positive(window_mm, "window_mm")
    if blood_std is None:
        blood_std = soft_std and max(soft_std, NOISE_FACTOR * noise_hu(arr, sp, window_mm=window_mm))
    vessel_mm = check_positive(vessel_mm, "vessel_mm", allow_zero=True)
    vessel_wall_mm = check_positive(vessel_wall_mm, "vessel_wall_mm", allow_zero=True)
    vessel_max_mm = check_positive(vessel_max_mm, "vessel_max_mm")
    vessel_min_ml = check_positive(vessel_min_ml, "vessel_min_ml", allow_zero=True)
    dense_min_ml = check_positive(dense_min_ml, "dense_min_ml", allow_zero=True)
    fill_max_soft = check_positive(fill_max_soft, "fill_max_soft", allow_zero=True)
    soft_hu = check_range(soft_hu, "soft_hu")
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
    soft = None
    if keep == "largest":
        bone = largest_component(seeds)
    else:
        cortex = a > cortex_hu
        soft, dense, flat = homogeneous_masks(a, sp, soft_hu=soft_hu, soft_std=soft_std, window_mm=window_mm,
                                              blood_std=blood_std)
        grown = soft
        if soft_mm > 0 and soft.any():
            grown = morphology.dilate(soft, soft_mm, sp, backend=backend) & ~cortex
        # contrast blood and bright cartilage are not seeds (homogeneous and brighter than about bone_hu)
        bright = grown & ~(a <= bone_hu - 40) if soft_mm > 0 else soft.copy()
        vessels = _blood(a, sp, flat, dense, cortex, bone_hu - 40, vessel_mm, vessel_min_ml, dense_min_ml,
                         vessel_max_mm, vessel_wall_mm, soft_mm, backend)
        if vessels is not None:
            bright |= vessels
        del dense, flat
        seeds &= ~bright
        del bright
        if cortex_mm > 0 and cortex.any():
            seeds &= morphology.dilate(cortex, 2 * cortex_mm, sp, backend=backend)
        lab, n = ndi.label(seeds)
        if n == 0:
            return empty
        ml = label_sizes(lab, n) * float(np.prod(sp)) / 1000.0
        has_cortex = np.zeros(n + 1, dtype=bool)
        has_cortex[np.unique(lab[cortex])] = True
        has_cortex[0] = False
        good = np.flatnonzero(has_cortex & (ml >= min_piece_ml))
        if good.size == 0:
            return empty
        keep_piece = np.zeros(n + 1, dtype=bool)
        keep_piece[good] = True
        bone = keep_piece[lab]  # a lookup table: no sorted or int64 temporaries of the label image
        del lab
        bone &= a > edge_hu
    if closing_mm > 0:
        # closing that does not shrink at the volume border: outside counts as bone for the erosion
        dil = morphology.dilate(bone, closing_mm, sp, backend=backend, border_value=0)
        bone = morphology.erode(dil, closing_mm, sp, backend=backend, border_value=1)
        del dil
    bone &= a > tissue_hu
    if soft is not None:
        bone &= ~grown
        if vessels is not None:
            bone &= ~vessels
    if fill_holes:
        bone = fill_holes_axial(bone) if soft is None else _fill_holes_not_soft(bone, soft, a, fill_max_soft, marrow_hu)
    out = empty
    out[box] = bone
    return out
