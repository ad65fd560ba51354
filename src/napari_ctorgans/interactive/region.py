"""The prompt engine's steps on a box of the work grid: the intensity band, leak-free growth, and cuts.

Growth keeps the part of the organ's HU band that is thick around the clicks: the band is reduced to its core
(voxels farther than ``r`` from the band's edge), the core's component at the click is kept, and grown back by
``r`` inside the band. Bridges thinner than ``2 r`` (vessels, fascia, the psoas along the liver) are cut; ``r``
rises until the region fits the organ's size range. A negative click splits a region at its narrowest neck
between the positive clicks and the negative one (a watershed of the distance to the region's edge).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed


def ball_offsets(radius_mm: float, spacing) -> np.ndarray:
    """Integer offsets (k, 3) of the voxels within ``radius_mm`` of a voxel's centre."""
    h = [int(radius_mm // s) for s in spacing]
    g = np.mgrid[-h[0]:h[0] + 1, -h[1]:h[1] + 1, -h[2]:h[2] + 1].reshape(3, -1).T
    d2 = ((g * np.asarray(spacing)) ** 2).sum(axis=1)
    return g[d2 <= radius_mm ** 2]


def samples(image: np.ndarray, points: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """The values of ``image`` in balls of ``radius_mm`` around ``points`` (work-grid indices of the box)."""
    off = ball_offsets(radius_mm, spacing)
    idx = (points[:, None, :] + off[None]).reshape(-1, 3)
    idx = idx[np.all((idx >= 0) & (idx < np.asarray(image.shape)), axis=1)]
    return image[tuple(idx.T)]


def band(values: np.ndarray, k: float, min_half: float) -> tuple[float, float]:
    """The HU band ``median +- max(k * robust sigma, min_half)`` of sampled values."""
    mid = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - mid)))
    half = max(k * sigma, min_half)
    return mid - half, mid + half


def _component_at(lab: np.ndarray, dist: np.ndarray, point, reach: int) -> int:
    """The label at ``point``, or the label of the deepest voxel of ``dist`` within ``reach`` voxels of it."""
    p = tuple(int(v) for v in point)
    if lab[p]:
        return int(lab[p])
    sl = tuple(slice(max(v - reach, 0), v + reach + 1) for v in p)
    d = np.where(lab[sl] > 0, dist[sl], -1)
    if d.max() <= 0:
        return 0
    return int(lab[sl].flat[int(d.argmax())])


def grow(cand: np.ndarray, seeds: np.ndarray, spacing, radii, max_voxels: float):
    """Grow from ``seeds`` in ``cand`` cutting bridges thinner than ``2 r``; the first ``r`` of ``radii`` whose
    region holds at most ``max_voxels`` wins (the last one otherwise).

    Returns ``(region, r)``; the region is empty when no seed reaches a core.
    """
    if not cand.any():
        return np.zeros(cand.shape, bool), 0.0
    dist = None
    region, used = np.zeros(cand.shape, bool), 0.0
    for r in radii:
        if dist is None and r > 0:
            dist = ndi.distance_transform_edt(cand, sampling=spacing)
        core = dist > r if r > 0 else cand
        lab, _ = ndi.label(core)
        reach = max(1, int(np.ceil((r + 1e-6) / min(spacing)))) + 1
        ids = {_component_at(lab, cand if dist is None else dist, s, reach) for s in seeds} - {0}
        if not ids:
            break
        kept = np.isin(lab, sorted(ids))
        if r > 0:
            kept = cand & (ndi.distance_transform_edt(~kept, sampling=spacing) <= r + 1e-6)
        region, used = kept, float(r)
        if np.count_nonzero(region) <= max_voxels:
            break
    return region, used


def fill_holes(region: np.ndarray) -> np.ndarray:
    """``region`` with its enclosed holes filled, computed in its bounding box (a labelling of the background
    there: faster than scipy's iterated fill on a large box)."""
    from ..labelers._common import bbox, border_labels

    box = bbox(region, margin=(1, 1, 1))
    if box is None:
        return region
    lab, n = ndi.label(~region[box])
    holes = np.ones(n + 1, bool)
    holes[0] = False
    holes[border_labels(lab)] = False
    out = region.copy()
    out[box] |= holes[lab]
    return out


def split(region: np.ndarray, keep: np.ndarray, drop: np.ndarray, spacing) -> np.ndarray:
    """Split ``region`` at its narrow necks between the ``keep`` and ``drop`` points: the part flooded from
    ``keep`` (a watershed of the distance to the region's edge); parts reached from neither are kept."""
    if not len(drop) or not region.any():
        return region
    dist = ndi.distance_transform_edt(region, sampling=spacing)
    markers = np.zeros(region.shape, np.int32)
    for p in keep:
        markers[tuple(p)] = 1
    for p in drop:
        markers[tuple(p)] = 2
    markers[~region] = 0
    parts = watershed(-dist, markers, mask=region)
    return region & (parts != 2)


def blob(piece: np.ndarray, point, spacing, keep=(), depth_mm: float = 3.0) -> np.ndarray:
    """The thick part of ``piece`` around ``point`` between its necks: the basin of ``point`` in a watershed of the
    distance to the edge, flooded from the parts of ``piece`` deeper than half the depth of ``point`` (at least
    ``depth_mm``): parts joined by a neck thinner than that are apart. Points in ``keep`` (positive
    clicks) stay: a basin holding one is split again between it and ``point`` alone."""
    dist = ndi.distance_transform_edt(piece, sampling=spacing)
    p = tuple(int(v) for v in point)
    # the parts: the pieces of the region deeper than half the click's depth, flooded back to the edge
    markers, _ = ndi.label(dist >= min(max(depth_mm, 0.5 * float(dist[p])), float(dist[p])))
    basins = watershed(-dist, markers, mask=piece)
    out = (basins == basins[p]) & piece
    if 2 * np.count_nonzero(out) > np.count_nonzero(piece):  # no neck: the click is not in a part of its own
        core = far_core(piece, p, spacing)
        out = piece if core is None else piece & ~split(piece, core[None], np.array([p]), spacing)
        if 2 * np.count_nonzero(out) > np.count_nonzero(piece):  # still most of it: only around the click
            out = _ball(piece.shape, p, spacing, min(2.0 * max(float(dist[p]), 3.0 * max(spacing)), 25.0)) & piece
    mine = [k for k in keep if out[tuple(k)]]
    if mine:
        out &= ~split(out, np.array(mine).reshape(-1, 3), np.array([p]), spacing)
    return out


def _ball(shape, centre, spacing, radius_mm: float) -> np.ndarray:
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, centre, spacing)) <= radius_mm ** 2


def far_core(region: np.ndarray, negative, spacing) -> np.ndarray | None:
    """A point of ``region`` to keep against a negative click when no positive click says where the organ is:
    the deepest voxel whose inscribed ball does not reach the negative click's (None: no such voxel)."""
    dist = ndi.distance_transform_edt(region, sampling=spacing)
    n = np.asarray([int(v) for v in negative])
    pts = np.argwhere(region)
    d = dist[region]
    gap = np.sqrt((((pts - n) * np.asarray(spacing)) ** 2).sum(axis=1))
    ok = gap > d + dist[tuple(n)] + max(spacing)
    if not ok.any():
        return None
    return pts[ok][int(d[ok].argmax())]
