"""Segment one organ from clicks, boxes and scribbles: ``ct.segment_prompts``.

Positive points say "this is the organ", negative points "this is not". A box or a scribble drawn in one axial
slice acts in 3D. The engine works on the scan averaged to about 3 mm (computed once per scan and cached, see
:mod:`.grid`), in a box around the prompts sized by the organ, and brings the change back to the scan's grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..labelers._common import bbox
from ..organs import ORGANS, organ_value
from ..volume import Volume
from .grid import WorkGrid, work_grid
from .region import band, blob, fill_holes, grow, samples, split
from .sizes import PROMPTING


@dataclass
class PromptResult:
    """The organ after the prompts.

    Attributes
    ----------
    mask : ndarray of bool
        The organ on the scan's grid (``current`` with the prompts' changes).
    organ : int
        Its CT-ORG label value.
    volume_ml : float
        Its volume.
    size_ml : (float, float)
        The plausible volume range of the whole organ.
    warning : str or None
        Why the result is implausible (outside the size range, or a piece larger than one organ), else None.
    box : tuple of slices or None
        The scan voxels the prompts may have changed (None: nothing changed).
    """

    mask: np.ndarray
    organ: int
    volume_ml: float
    size_ml: tuple[float, float]
    warning: str | None
    box: tuple[slice, ...] | None

    @property
    def plausible(self) -> bool:
        return self.warning is None


def _points(points, shape, what: str) -> np.ndarray:
    if points is None:
        return np.zeros((0, 3), float)
    try:
        pts = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be points (z, y, x) in voxels of the scan, got {points!r}") from None
    if pts.size == 0:
        return np.zeros((0, 3), float)
    if pts.ndim == 1:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise ValueError(f"{what} must be an (N, 3) array of finite (z, y, x) voxel positions, got shape {pts.shape}")
    out = (pts < -0.5) | (pts > np.asarray(shape) - 0.5)
    if out.any():
        bad = pts[out.any(axis=1)][0].round(1).tolist()
        raise ValueError(f"{what} point {bad} lies outside the scan of shape {tuple(shape)}: move or delete it")
    return np.round(pts).astype(int)


def _boxes(boxes, shape, what: str = "boxes") -> list[np.ndarray]:
    """Each box as its (2, 3) corners (z, y0, x0), (z, y1, x1): at least two corners in one axial slice."""
    out = []
    for i, b in enumerate(boxes or ()):
        pts = _points(b, shape, f"{what}[{i}]")
        if len(pts) < 2 or np.ptp(pts[:, 0]) > 0:
            raise ValueError(f"{what}[{i}] must be the corners of a rectangle in one axial slice (the same z), got "
                             f"{np.asarray(b).tolist()}; draw it in a single slice")
        if np.any(np.ptp(pts[:, 1:], axis=0) < 1):
            raise ValueError(f"{what}[{i}] is flat ({np.asarray(b).tolist()}): drag a rectangle, not a line")
        out.append(np.stack([pts.min(axis=0), pts.max(axis=0)]))
    return out


def _scribbles(scribbles, shape) -> np.ndarray:
    parts = []
    for i, s in enumerate(scribbles or ()):
        pts = _points(s, shape, f"scribbles[{i}]")
        if len(pts) and np.ptp(pts[:, 0]) > 0:
            raise ValueError(f"scribbles[{i}] spans slices {pts[:, 0].min()}-{pts[:, 0].max()}; draw a scribble "
                             "in one axial slice")
        parts.append(pts)
    return np.concatenate(parts) if parts else np.zeros((0, 3), int)


def _scan_mask(mask, shape, what: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValueError(f"{what} must have the scan's shape {tuple(shape)}, got {m.shape}")
    return m.astype(bool, copy=False)


def _roi(grid: WorkGrid, points: np.ndarray, reach_mm: float, cur: np.ndarray, negatives: np.ndarray):
    """The box of work voxels around the prompts (``reach_mm`` around each point), plus the pieces of the
    current mask that negative clicks fall in."""
    lo = np.full(3, np.iinfo(int).max)
    hi = np.zeros(3, int)
    reach = np.ceil(reach_mm / np.asarray(grid.spacing)).astype(int)
    if len(points):
        lo, hi = np.minimum(lo, points.min(axis=0) - reach), np.maximum(hi, points.max(axis=0) + reach + 1)
    hit = [tuple(n) for n in negatives if cur[tuple(n)]]
    if hit:
        lab, _ = ndi.label(cur)
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            if sl is not None and any(lab[n] == i for n in hit):
                lo = np.minimum(lo, [s.start - 1 for s in sl])
                hi = np.maximum(hi, [s.stop + 1 for s in sl])
    lo, hi = np.maximum(lo, 0), np.minimum(hi, grid.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _gate(shape, seeds, prior, spacing, cfg, box_limits) -> np.ndarray:
    """Where growth may go: near the network's organ (``prior``), or within reach of seeds it does not cover."""
    near = np.zeros(shape, bool)
    if prior is not None:
        near = ndi.binary_dilation(prior >= 0.5, iterations=2)
    far = [s for s in seeds if not near[tuple(s)]]
    if far or prior is None:
        reach = np.ceil(cfg.reach_mm / np.asarray(spacing)).astype(int)
        for s in (seeds if prior is None else far):
            near[tuple(slice(max(int(c) - r, 0), int(c) + r + 1) for c, r in zip(s, reach))] = True
    for (z, y0, x0), (_, y1, x1) in box_limits:  # a box bounds the organ in its slice and, widened, in 3D
        my, mx = (y1 - y0) // 4 + 1, (x1 - x0) // 4 + 1
        inplane = np.zeros(shape[1:], bool)
        inplane[max(y0 - my, 0):y1 + my + 1, max(x0 - mx, 0):x1 + mx + 1] = True
        near &= inplane[None]
        inbox = np.zeros(shape[1:], bool)
        inbox[y0:y1 + 1, x0:x1 + 1] = True
        near[z] &= inbox
    return near


#: soft tissue starts here: a click on fat inside an organ (the renal sinus) samples the tissue around it instead
SOFT_HU = -20.0


def _click_values(img, seeds, spacing, cfg) -> np.ndarray:
    """The HU the organ has at the clicks: within 4.5 mm, or, for a soft-tissue organ clicked on something darker
    inside it (the fat of the renal sinus), the soft tissue within 10 mm."""
    vals = samples(img, seeds, spacing, 4.5)
    if not cfg.open_side:
        wide = samples(img, seeds, spacing, 10.0)
        soft = wide[wide >= SOFT_HU]
        if len(soft) >= 10 and np.median(vals) < np.median(soft) - cfg.min_half_hu:
            return soft
    return vals


def _grow_part(img, allowed, seeds, prior, spacing, cfg, box_limits, positives, negatives):
    """The region grown from ``seeds`` (work-grid indices of the box). A region that leaks beyond
    ``cfg.grow_max_ml`` is tried again with a narrower HU band, one under half the smallest organ with a wider one;
    when every band leaks the region is empty (nothing is added rather than a leak). None: for lungs and bone,
    no click lies in the organ's HU band."""
    vals = _click_values(img, seeds, spacing, cfg)
    gate = _gate(img.shape, seeds, prior, spacing, cfg, box_limits)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    # a region under half the smallest whole organ is tried again with a wider band
    max_voxels, min_voxels = cfg.grow_max_ml / voxel_ml, 0.5 * min(cfg.size_ml[0], cfg.part_max_ml) / voxel_ml
    best = None
    for scale in (1.0, 0.7, 0.5, 1.4, 2.0):  # narrower against a leak, then wider against a too small region
        if scale > 1 and best is not None and np.count_nonzero(best) >= min_voxels:
            break
        lo, hi = band(vals, cfg.band_k * scale, cfg.min_half_hu * scale)
        if cfg.open_side == "above":
            hi = np.inf
        elif cfg.open_side == "below":
            lo = -np.inf
        lo, hi = max(lo, cfg.hu_limits[0]), min(hi, cfg.hu_limits[1])
        if cfg.open_side and np.mean((vals >= lo) & (vals <= hi)) < 0.5:  # mostly not the organ around the click
            return None  # a click on a vessel in the lung, or on marrow: nothing of the organ to grow from
        region, _ = grow(allowed & (img >= lo) & (img <= hi) & gate, seeds, spacing, cfg.radii_mm, max_voxels)
        n = np.count_nonzero(region)
        if n <= max_voxels and (best is None or n > np.count_nonzero(best)):
            best = region
        if scale == 1.0 and n <= max_voxels and n >= min_voxels:
            break
    if best is None:
        return np.zeros(img.shape, bool)
    best = fill_holes(best) & allowed
    return split(best, positives, negatives, spacing)


def _cut(region, image, positives, negatives, spacing, min_gap_hu: float) -> np.ndarray:
    """``region`` without the part each negative click in it marks as false, never a part holding a positive
    click: the voxels connected to the click that look more like it than like the organ (when the two differ by
    ``min_gap_hu``), else the thick part around the click between the region's necks (:func:`.region.blob`)."""
    out = region.copy()
    for n in negatives:
        if not out[tuple(n)]:
            continue
        lab, _ = ndi.label(out)
        sl = ndi.find_objects(lab)[lab[tuple(n)] - 1]
        piece = lab[sl] == lab[tuple(n)]
        lo = np.array([s.start for s in sl])
        keep = [p - lo for p in positives if np.all(p >= lo) and np.all(p - lo < piece.shape) and piece[tuple(p - lo)]]
        drop = _unlike(piece, image[sl], n - lo, keep, spacing, min_gap_hu)
        if drop is None:
            drop = blob(piece, n - lo, spacing, keep)
        out[sl] &= ~drop
    return out


def _unlike(piece, image, n, keep, spacing, min_gap_hu: float):
    """The voxels of ``piece`` connected to ``n`` that are closer in HU to ``n``'s surroundings than to the organ
    (its positive clicks, else its deep inside); None when the two do not differ or that is most of the piece."""
    here = float(np.median(samples(image, np.array([n]), spacing, 4.5)))
    if keep:
        organ = float(np.median(samples(image, np.array(keep), spacing, 4.5)))
    else:
        deep = ndi.distance_transform_edt(piece, sampling=spacing) >= 2 * max(spacing)
        organ = float(np.median(image[deep if deep.any() else piece]))
    if abs(here - organ) < min_gap_hu:
        return None
    like = piece & (np.abs(image - here) < np.abs(image - organ))
    if not like[tuple(n)]:
        return None
    lab, _ = ndi.label(like)
    drop = lab == lab[tuple(n)]
    if 2 * np.count_nonzero(drop) > np.count_nonzero(piece) or any(drop[tuple(k)] for k in keep):
        return None
    return drop


def _size_warning(ml: float, mask: np.ndarray, organ: int, voxel_ml: float, cfg) -> str | None:
    """Why an organ of ``ml`` millilitres (``mask`` on a grid of voxels of ``voxel_ml``) is implausible."""
    name = ORGANS[organ].name
    lo, hi = cfg.size_ml
    if ml > hi:
        return (f"{name}: {ml:.0f} mL is more than a whole {name} ({hi:.0f} mL at most): the region has "
                    "probably leaked into a neighbour; undo, or add a negative click in the leak")
    if mask.any():
        biggest = 0.0
        if cfg.part_max_ml < hi:  # an organ of several pieces (the kidneys): none may exceed one organ
            lab, n = ndi.label(mask)
            biggest = float(np.bincount(lab.ravel())[1:].max()) * voxel_ml
        if biggest > cfg.part_max_ml:
            return (f"{name}: one piece holds {biggest:.0f} mL, more than one {name} "
                        f"({cfg.part_max_ml:.0f} mL at most): undo, or add a negative click in the leak")
        zs = np.flatnonzero(mask.any(axis=(1, 2)))
        whole = zs[0] > 0 and zs[-1] < mask.shape[0] - 1  # an organ cut by the scan's ends may be small
        if ml < lo and whole:
            return (f"{name}: {ml:.0f} mL is less than a whole {name} ({lo:.0f} mL at least): add a "
                        "positive click where it is missing, or keep it if this organ is small")
    return None


def segment_prompts(volume: Volume, organ, *, positive=None, negative=None, boxes=None, scribbles=None,
                    prior=None, current=None, forbidden=None, work_mm: float = 3.0) -> PromptResult:
    """Segment or correct one organ from prompts; other voxels are never touched.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units. Its per-scan work (the ~3 mm image, the body mask) is computed on the first call
        and kept while the Volume lives, so later prompts on the same scan are fast.
    organ : str or int
        CT-ORG organ ("liver", "bladder", "lungs", "kidneys", "bone") or its label value.
    positive, negative : array-like (N, 3), optional
        Points (z, y, x) in voxels of the scan inside / outside the organ.
    boxes : sequence of array-like (k, 3), optional
        Rectangles in one axial slice each (two opposite corners, or napari's four): the organ's extent in that
        slice; it grows in 3D from the box's centre and stays within the box, widened by a quarter, in-plane.
    scribbles : sequence of array-like (N, 3), optional
        Strokes in one axial slice each, inside the organ (for a stroke outside it pass its points as ``negative``).
    prior : ndarray, optional
        The organ's probability (0..1) on the scan's grid, e.g. from ``ct.predict(..., return_probabilities=True)``:
        growth from a click stays near it (clicks far from it grow freely).
    current : ndarray of bool, optional
        The organ now (a draft or the last result): positive clicks outside it add, negative clicks in it remove
        the part beyond the narrowest neck; everything else of it is kept voxel for voxel.
    forbidden : ndarray of bool, optional
        Voxels the organ may never take and growth may not pass (other organs, the user's own painting).
    work_mm : float
        Spacing of the work grid.

    Returns
    -------
    PromptResult
        The organ's mask on the scan's grid, its volume and a warning when it is outside the organ's plausible
        size range (the result is returned all the same: show the warning and offer to undo).
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a napari_ctorgans.Volume (ct.read_volume), got {type(volume)!r}")
    value = organ_value(organ)
    if value not in PROMPTING:
        raise ValueError(f"organ must be one of {', '.join(ORGANS[v].name for v in PROMPTING)}, got {organ!r}")
    cfg, shape = PROMPTING[value], volume.shape
    pos, neg = _points(positive, shape, "positive"), _points(negative, shape, "negative")
    box_list, strokes = _boxes(boxes, shape), _scribbles(scribbles, shape)
    current = _scan_mask(current, shape, "current")
    forbidden = _scan_mask(forbidden, shape, "forbidden")
    if prior is not None and np.shape(prior) != tuple(shape):
        raise ValueError(f"prior must have the scan's shape {tuple(shape)}, got {np.shape(prior)}")
    grid = work_grid(volume, work_mm)
    return _run(grid, value, cfg, pos, neg, box_list, strokes, prior, current, forbidden)


def _run(grid: WorkGrid, value, cfg, pos, neg, box_list, strokes, prior, current, forbidden) -> PromptResult:
    cur = grid.to_work(current) if current is not None else np.zeros(grid.shape, bool)
    w = grid.to_index
    centres = np.array([(b[0] + b[1]) // 2 for b in box_list]).reshape(-1, 3)
    marks = np.concatenate([w(pos), w(strokes), w(centres)]) if len(pos) + len(strokes) + len(centres) else \
        np.zeros((0, 3), int)
    neg_w = w(neg)
    grow_from = np.array([m for m in marks if not cur[tuple(m)]]).reshape(-1, 3)  # the rest only mark the organ
    roi = _roi(grid, grow_from, cfg.reach_mm, cur, neg_w)
    lo = np.array([s.start for s in roi])
    if any(s.stop <= s.start for s in roi):  # every click already agrees with the organ
        return _result(grid, value, current, cur, None, None, None, forbidden)
    inside = np.all((marks >= lo) & (marks < [s.stop for s in roi]), axis=1)
    marks_l = marks[inside] - lo
    inside = np.all((neg_w >= lo) & (neg_w < [s.stop for s in roi]), axis=1)
    neg_l = neg_w[inside] - lo
    cur_r = cur[roi]
    allowed = grid.body[roi].copy()
    if forbidden is not None:
        allowed &= ~grid.to_work(forbidden[grid.scan_box(roi)])
    new, refused = cur_r.copy(), None
    seeds = grow_from - lo
    if len(seeds):
        pr = grid.to_work_float(prior[grid.scan_box(roi)]) if prior is not None else None
        limits = [(tuple(w(b)[0] - lo), tuple(w(b)[1] - lo)) for b in box_list]
        grown = _grow_part(grid.image[roi], allowed, seeds, pr, grid.spacing, cfg, limits, marks_l, neg_l)
        if grown is None:
            hu = ", ".join(f"{grid.image[roi][tuple(p)]:.0f}" for p in seeds)
            refused = (f"{ORGANS[value].name}: the click lies at {hu} HU (averaged to the work grid), outside the "
                       f"HU range of the {ORGANS[value].name}, so nothing was added; click on the organ itself")
            grown = np.zeros(new.shape, bool)
        elif not grown.any():
            refused = (f"{ORGANS[value].name}: the region around the click runs into its neighbours beyond "
                       f"{cfg.grow_max_ml:.0f} mL, so nothing was added; click nearer the organ's middle, or draw "
                       "a box around it in one slice")
        new |= grown
    new = _cut(new, grid.image[roi], marks_l, neg_l, grid.spacing, cfg.min_half_hu)
    return _result(grid, value, current, cur, roi, new & ~cur_r, cur_r & ~new, forbidden, refused)


def _result(grid, value, current, cur, roi, added, removed, forbidden, refused=None) -> PromptResult:
    mask = np.zeros(grid.scan_shape, bool) if current is None else current.copy()
    sbox = None
    changed = None if roi is None else bbox(added | removed, margin=(1, 1, 1))
    if changed is not None:
        sub = tuple(slice(r.start + c.start, r.start + c.stop) for r, c in zip(roi, changed))
        sbox, up_add = grid.to_scan(added[changed], sub)
        _, up_rem = grid.to_scan(removed[changed], sub)
        if forbidden is not None:
            up_add &= ~forbidden[sbox]
        mask[sbox] |= up_add
        mask[sbox] &= ~up_rem
    if roi is not None:
        cur = cur.copy()
        cur[roi] = (cur[roi] | added) & ~removed
    ml = float(np.count_nonzero(mask)) * grid.scan_voxel_ml
    warning = _size_warning(ml, cur, value, grid.voxel_ml, PROMPTING[value]) or refused
    return PromptResult(mask, value, ml, PROMPTING[value].size_ml, warning, sbox)
