"""Seeded region growing for organs without an automatic labeler (liver, kidneys, bladder)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

from .. import morphology
from ._common import as_ct, check_positive, fill_holes_axial


def _check_seeds(seeds, shape) -> np.ndarray:
    try:
        pts = np.asarray(seeds, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"seeds must be points (z, y, x) in voxels, got {seeds!r}") from None
    if pts.ndim == 1:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError(
            f"seeds must be an (N, 3) array of (z, y, x) voxel positions with N >= 1, got shape {pts.shape}"
        )
    idx = np.round(pts).astype(int)
    inside = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    if not inside.all():
        raise ValueError(
            f"seeds {pts[~inside].tolist()} lie outside the volume of shape {tuple(shape)}; give voxel indices "
            "(z, y, x), e.g. a napari Points layer's data converted with layer.world_to_data"
        )
    return idx


#: a grown region holding more than this fraction of the volume found no edge: it is refused
MAX_FRACTION = 0.9


def _check_not_everything(region: np.ndarray, lo: float, hi: float) -> None:
    frac = np.count_nonzero(region) / region.size
    if frac > MAX_FRACTION:
        raise ValueError(
            f"the region grown from the seeds fills {frac:.0%} of the volume: the image has no edge around them in "
            f"the HU band [{lo:.0f}, {hi:.0f}] (an image with no structure, or a band too wide), so there is no "
            "organ to grow; check that the layer is the CT, or give a narrower band_hu"
        )


def grow_region(
    volume,
    seeds,
    *,
    band_hu=None,
    band_k: float = 2.5,
    min_band_hu: float = 40.0,
    sample_mm: float = 6.0,
    smooth_sigma_mm: float = 2.0,
    opening_mm: float = 9.0,
    closing_mm: float = 6.0,
    fill_holes: bool = True,
    backend: str = "auto",
    spacing=None,
) -> np.ndarray:
    """Grow an organ from seed points within an HU band, cutting leaks with an opening.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units (or an ndarray together with ``spacing``).
    seeds : array-like, shape (N, 3)
        Seed positions (z, y, x) in voxels of ``volume``.
    band_hu : (float, float), optional
        HU band of the organ; default: estimated around the seeds as mean +- ``band_k`` standard deviations of the
        smoothed image in balls of ``sample_mm`` around each seed, at least ``min_band_hu`` wide.
    band_k, min_band_hu, sample_mm : float
        Parameters of the band estimate.
    smooth_sigma_mm : float
        Gaussian smoothing of the image before thresholding (reduces noise holes); 0 disables.
    opening_mm : float
        Diameter of the opening ball that cuts thin bridges into neighbouring organs (0 disables).
    closing_mm : float
        Diameter of a closing ball that fills vessels and small notches (0 disables).
    fill_holes : bool
        Fill enclosed holes (3D and per axial slice).
    backend : {"auto", "cpu", "cuda"}
        Backend of the morphology.
    spacing : 3 floats, optional
        Voxel size when ``volume`` is a bare array.

    Returns
    -------
    ndarray of bool
        The region connected to the seeds (empty, with a warning, when a seed falls outside the band).

    Raises
    ------
    ValueError
        Bad seeds or parameters, or a region that fills more than 90 % of the volume (an image with no edge
        around the seeds: growing would return the whole volume).
    """
    arr, sp = as_ct(volume, spacing)
    idx = _check_seeds(seeds, arr.shape)
    for name, v in (("opening_mm", opening_mm), ("closing_mm", closing_mm), ("smooth_sigma_mm", smooth_sigma_mm)):
        check_positive(v, name, allow_zero=True)
    check_positive(sample_mm, "sample_mm")
    img = arr.astype(np.float32)
    if smooth_sigma_mm > 0:
        img = ndi.gaussian_filter(img, [smooth_sigma_mm / s for s in sp])
    if band_hu is None:
        r = sample_mm / 2.0
        h = [int(r // s_) for s_ in sp]
        vals = []
        for c in idx:
            sl = tuple(slice(max(int(ci) - hh, 0), min(int(ci) + hh + 1, n)) for ci, hh, n in zip(c, h, arr.shape))
            g = np.ogrid[sl]
            near = sum(((gi - ci) * s_) ** 2 for gi, ci, s_ in zip(g, c, sp)) <= r * r
            vals.append(img[sl][near])
        v = np.concatenate(vals)
        mean, std = float(v.mean()), float(v.std())
        half = max(band_k * std, min_band_hu / 2)
        lo, hi = mean - half, mean + half
    else:
        from ._common import check_range

        lo, hi = check_range(band_hu, "band_hu")
    band = (img >= lo) & (img <= hi)
    seed_ok = band[tuple(idx.T)]
    if not seed_ok.any():
        warnings.warn(
            f"no seed lies in the HU band [{lo:.0f}, {hi:.0f}]; the region is empty", UserWarning, stacklevel=2
        )
        return np.zeros(arr.shape, dtype=bool)
    region = band
    if opening_mm > 0:
        opened = morphology.opening(band, opening_mm, sp, backend=backend, border_value=1) & band
        if opened[tuple(idx.T)].any():
            region = opened
    lab, _ = ndi.label(region)
    ids = np.unique(lab[tuple(idx.T)])
    ids = ids[ids > 0]
    if ids.size == 0:
        lab, _ = ndi.label(band)
        ids = np.unique(lab[tuple(idx.T)])
        ids = ids[ids > 0]
    out = np.isin(lab, ids)
    _check_not_everything(out, lo, hi)
    if closing_mm > 0:
        out = morphology.erode(morphology.dilate(out, closing_mm, sp, backend=backend), closing_mm, sp,
                               backend=backend, border_value=1)
    if fill_holes:
        out = fill_holes_axial(ndi.binary_fill_holes(out))
    return out
