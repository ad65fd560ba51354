"""The next place to check: the most uncertain regions of an uncertainty map, most uncertain first.

The map is averaged over blocks of about ``pool_mm`` and smoothed (a Gaussian of ``smooth_mm``), so that a thick
uncertain blob (a missed kidney) outranks the thin shell every organ boundary has; the regions are its local maxima
(the largest within a ``window_mm`` cube), ordered by the smoothed value, each place listed once. A region's box is
the connected part of the smoothed map above half its peak around the peak, within ``window_mm`` of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Region", "uncertain_regions", "next_region"]


@dataclass(frozen=True)
class Region:
    """An uncertain region: ``center`` (voxel index z, y, x), ``lo``/``hi`` (its box, ``hi`` excluded), ``score``
    (the smoothed uncertainty at the centre, in [0, 1]) and ``rank`` (0: the most uncertain)."""

    center: tuple[int, int, int]
    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    score: float
    rank: int

    @property
    def box(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    def contains(self, index) -> bool:
        return all(a <= int(i) < b for a, i, b in zip(self.lo, index, self.hi))


def _check(uncertainty: np.ndarray, spacing) -> tuple[np.ndarray, tuple[float, float, float]]:
    u = np.asarray(uncertainty)
    if u.ndim != 3 or not np.issubdtype(u.dtype, np.floating):
        raise ValueError(f"uncertainty must be a 3D float map (Z, Y, X) such as ct.uncertainty returns, got "
                         f"{u.dtype} of shape {u.shape}")
    s = tuple(float(v) for v in (spacing if np.ndim(spacing) else (spacing,) * 3))
    if len(s) != 3 or min(s) <= 0:
        raise ValueError(f"spacing must have 3 positive values in mm (z, y, x), got {spacing!r}")
    return u, s  # type: ignore[return-value]


def uncertain_regions(uncertainty: np.ndarray, *, spacing=(1.0, 1.0, 1.0), smooth_mm: float = 6.0,
                      window_mm: float = 45.0, threshold: float = 0.05, limit: int = 50,
                      pool_mm: float = 3.0) -> list[Region]:
    """Every uncertain region of a map, most uncertain first.

    Parameters
    ----------
    uncertainty : ndarray (Z, Y, X) of float
        From :func:`ct.uncertainty`.
    spacing : 3 floats or float
        Voxel size in mm (the scan's ``volume.spacing``).
    smooth_mm : float
        Gaussian sigma of the smoothing, in mm.
    window_mm : float
        Least distance between two region centres, and the largest extent of a region's box from its centre.
    threshold : float
        Smoothed uncertainty below which nothing is a region.
    limit : int
        Regions returned at most.
    pool_mm : float
        The map is first averaged over blocks of about this size (whole voxels per axis; none on a grid already
        this coarse), so a 512 x 512 x 141 scan takes about a second, not tens of seconds.

    Returns
    -------
    list of Region
    """
    u, s = _check(uncertainty, spacing)
    f = [max(1, int(pool_mm // v)) for v in s]
    u = _pooled(u, f)
    s = tuple(v * k for v, k in zip(s, f))
    g = ndimage.gaussian_filter(u.astype(np.float32, copy=False), [smooth_mm / v for v in s], truncate=3.0)
    size = [max(3, int(round(window_mm / v)) | 1) for v in s]
    peaks = (g == ndimage.maximum_filter(g, size=size, mode="constant", cval=-1.0)) & (g >= threshold)
    idx = np.argwhere(peaks)
    order = np.argsort(-g[tuple(idx.T)], kind="stable")
    regions: list[Region] = []
    for i in order:
        if len(regions) == limit:
            break
        center = tuple(int(v) for v in idx[i])
        full = tuple(min(c * k + k // 2, n - 1) for c, k, n in zip(center, f, uncertainty.shape))
        if any(r.contains(full) for r in regions):
            continue  # the same place as a more uncertain region (a flat top, or a peak inside its box)
        lo, hi = _box(g, center, size)
        lo = tuple(a * k for a, k in zip(lo, f))
        hi = tuple(min(b * k, n) if b < m else n for b, k, n, m in zip(hi, f, uncertainty.shape, g.shape))
        regions.append(Region(full, lo, hi, float(g[center]), len(regions)))
    return regions


def _pooled(u: np.ndarray, f: list[int]) -> np.ndarray:
    """The mean of ``u`` over blocks of ``f`` voxels (a last partial block averages what it has)."""
    if all(k == 1 for k in f):
        return u
    out = u.astype(np.float32, copy=False)
    for axis, k in enumerate(f):
        if k > 1:
            n = out.shape[axis]
            starts = np.arange(0, n, k)
            sums = np.add.reduceat(out, starts, axis=axis, dtype=np.float32)
            counts = np.diff(np.append(starts, n)).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = -1
            out = sums / counts.reshape(shape)
    return out


def _box(g: np.ndarray, center, size) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The box of the connected part of ``g >= g[center] / 2`` around ``center`` within ``size`` of it."""
    win = tuple(slice(max(c - n, 0), min(c + n + 1, m)) for c, n, m in zip(center, size, g.shape))
    comp, _ = ndimage.label(g[win] >= g[center] / 2)
    local = tuple(c - w.start for c, w in zip(center, win))
    found = ndimage.find_objects((comp == comp[local]).astype(np.uint8))[0]
    lo = tuple(int(w.start + f.start) for w, f in zip(win, found))
    hi = tuple(int(w.start + f.stop) for w, f in zip(win, found))
    return lo, hi


def next_region(uncertainty: np.ndarray, reviewed: np.ndarray | Iterable[Region] | None = None, *,
                spacing=(1.0, 1.0, 1.0), regions: list[Region] | None = None, **options) -> Region | None:
    """The most uncertain region not yet reviewed, or None when every region was.

    Parameters
    ----------
    uncertainty : ndarray (Z, Y, X) of float
        From :func:`ct.uncertainty`.
    reviewed : bool ndarray of the same shape, or Regions, optional
        What the user has looked at: a region whose centre lies in a reviewed voxel, or in the box of a reviewed
        region, is skipped.
    spacing : 3 floats or float
        Voxel size in mm (the scan's ``volume.spacing``).
    regions : list of Region, optional
        :func:`uncertain_regions` of this map, computed once (found again from the map when not given).
    **options
        ``smooth_mm``, ``window_mm``, ``threshold``, ``limit`` of :func:`uncertain_regions`.

    Returns
    -------
    Region or None

    Examples
    --------
    >>> u = ct.uncertainty(volume)  # doctest: +SKIP
    >>> first = ct.next_region(u, spacing=volume.spacing)  # doctest: +SKIP
    >>> second = ct.next_region(u, [first], spacing=volume.spacing)  # doctest: +SKIP
    """
    u, s = _check(uncertainty, spacing)
    if regions is None:
        regions = uncertain_regions(u, spacing=s, **options)
    if reviewed is None:
        return regions[0] if regions else None
    if isinstance(reviewed, np.ndarray):
        if reviewed.shape != u.shape:
            raise ValueError(f"reviewed must be a mask of the uncertainty's shape {u.shape}, got {reviewed.shape}")
        return next((r for r in regions if not reviewed[r.center]), None)
    seen = list(reviewed)
    if not all(isinstance(r, Region) for r in seen):
        raise TypeError("reviewed must be a bool mask of the map's shape or a list of the Regions already shown")
    return next((r for r in regions if not any(v.contains(r.center) for v in seen)), None)
