"""Anatomical landmarks of a CT on a coarse grid: body, lungs, skeleton, spine, rib cage, bony pelvis, diaphragm.

The landmarks are what :func:`napari_ctorgans.plausible` asks where an organ can be. They come from the project's
own labellers (:func:`~napari_ctorgans.labelers.label_body`, :func:`~napari_ctorgans.labelers.label_lungs`,
:func:`~napari_ctorgans.labelers.label_bones`) run on the scan subsampled by integer factors to about ``work_mm``
(3 mm), in the canonical orientation (axis 0 inferior -> superior, axis 1 anterior -> posterior, axis 2 right ->
left). Each landmark is then a few numbers per axial slice:

- the *body* mask and its cross-section (cm^2) per slice;
- the *lungs*, and from them the *diaphragm*: per (row, column) the lowest lung voxel (:attr:`lung_base`) and the
  top of the right hemidiaphragm (:attr:`dome`), the highest point of the right lung's base under the middle of
  the right hemithorax; ``dome = -1`` when the right lung is at least half as wide at the scan's first slice as
  anywhere (cut off above the diaphragm: it is below the scan);
- the *spine*: per slice, the middle of the bone within 30 mm of the body's midline in its back half;
- the *bony pelvis*: the slices below the lungs with a large bone piece on each side of the spine (iliac wings,
  acetabula, femoral heads), not neck slices (the shoulders of a neck scan have such bones too), and their
  footprint, the convex hull of their bone seen from above;
- *neck slices*: no lungs, and an airway (air of 0.8-8 cm^2 within 20 mm of the midline, 10-70 mm in front of
  the spine) in most slices within 15 mm;
- *head slices*: the skull encloses at least 40 % of the slice's body cross-section with soft tissue (the brain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .volume import Volume

__all__ = ["Landmarks", "find_landmarks", "canonical_axes"]

#: the largest bone piece (cm^2) on each side of the spine for a slice below the lungs to count as bony pelvis:
#: an iliac wing, an acetabulum or a femoral head cut axially is 7-50 cm^2 (at 3 mm), a lumbar transverse process
#: under 2 cm^2, a lower rib under 6 cm^2
PELVIS_PIECE_CM2 = 7.0
#: bone on a side lies at least this far (mm) from the spine's middle
PELVIS_SIDE_MM = 30.0
#: a neck cut axially is about 115 cm^2 (38 cm around); an adult abdomen is over 300 cm^2
NECK_CM2 = 150.0


def canonical_axes(direction) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """``(perm, flips)`` that bring an array with direction cosines ``direction`` (z, y, x columns) to the
    canonical orientation: ``np.transpose(arr, perm)``, then flip the axes where ``flips`` is True. Oblique scans
    take their nearest axis."""
    d = np.abs(np.asarray(direction, dtype=float))
    perm = [-1, -1, -1]
    for k in np.argsort(-d.max(axis=0)):  # the most axis-aligned array axes choose first
        for p in np.argsort(-d[:, k]):
            if perm[p] < 0:
                perm[p] = int(k)
                break
    flips = tuple(bool(np.asarray(direction)[p, perm[p]] < 0) for p in range(3))
    return tuple(perm), flips  # type: ignore[return-value]


@dataclass
class Landmarks:
    """Landmarks on the coarse canonical grid (see the module docstring); made by :func:`find_landmarks`."""

    shape: tuple[int, int, int]          # the scan's shape (array axes as stored)
    factors: tuple[int, int, int]        # subsampling factors of the scan's array axes
    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    spacing: tuple[float, float, float]  # coarse canonical voxel size (mm)
    body: np.ndarray                     # bool (Z, Y, X)
    lungs: np.ndarray                    # bool
    bone: np.ndarray                     # bool
    body_cm2: np.ndarray                 # (Z,) body cross-section
    spine: np.ndarray                    # (Z, 2) row, column of the spine's middle; NaN where not found
    lung_base: np.ndarray                # (Y, X) lowest lung slice per column; Z (above the scan) where none
    dome: int | None                     # top slice of the right hemidiaphragm; -1: lungs down to slice 0
    pelvis: np.ndarray                   # (Z,) bool: slices of the bony pelvis
    pelvis_footprint: np.ndarray         # (Y, X) bool
    head: np.ndarray                     # (Z,) bool: slices through the skull
    neck: np.ndarray                     # (Z,) bool: slices with an airway in front of the spine and no lungs
    near_body: np.ndarray                # bool: the body grown by 6 mm (partial volume at the skin)

    @property
    def pelvis_range(self) -> tuple[int, int] | None:
        """First and last slice of the bony pelvis, or None when it is not in view."""
        z = np.flatnonzero(self.pelvis)
        return (int(z[0]), int(z[-1])) if z.size else None

    def mm(self, distance: float, axis: int = 0) -> int:
        """A distance in mm as a whole number of coarse voxels along ``axis``."""
        return int(round(distance / self.spacing[axis]))

    def to_canonical(self, arr: np.ndarray, *, subsample: bool = True) -> np.ndarray:
        """A scan-grid array on the coarse canonical grid (a view)."""
        if subsample:
            arr = arr[tuple(slice(None, None, f) for f in self.factors)]
        arr = np.transpose(arr, self.perm)
        return arr[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def scan_index(self, axis: int, start: int, stop: int) -> np.ndarray:
        """Coarse canonical index, along canonical ``axis``, of the scan indices ``start..stop-1`` of the array
        axis that maps to it."""
        k = self.perm[axis]
        f, n = self.factors[k], self.body.shape[axis]
        idx = np.minimum((np.arange(start, stop) + f // 2) // f, n - 1)
        return n - 1 - idx if self.flips[axis] else idx


def spans(mask: np.ndarray) -> np.ndarray:
    """Per axial slice, every voxel between two voxels of ``mask`` on the same row or on the same column: a
    cheap stand-in for the convex hull of each slice (a ring of ribs or a pelvis comes out filled)."""
    def between(m, axis):
        fwd = np.maximum.accumulate(m, axis=axis)
        back = np.flip(np.maximum.accumulate(np.flip(m, axis=axis), axis=axis), axis=axis)
        return fwd & back

    return between(mask, -1) | between(mask, -2)


def _coarse(volume: Volume, work_mm: float):
    from .labelers._common import strides

    f = strides(volume.spacing, work_mm)
    sub = volume.array[tuple(slice(None, None, k) for k in f)]
    try:  # padding outside the reconstruction field reads as air
        from .padding import fill_padding, padding_range

        sub = fill_padding(sub, padding=padding_range(volume))
    except ImportError:  # pragma: no cover
        pass
    perm, flips = canonical_axes(volume.direction)
    sp = tuple(float(volume.spacing[perm[a]] * f[perm[a]]) for a in range(3))
    arr = np.transpose(sub, perm)[tuple(slice(None, None, -1) if fl else slice(None) for fl in flips)]
    return f, perm, flips, np.ascontiguousarray(arr), sp


def find_landmarks(volume: Volume, *, work_mm: float = 3.0, body: np.ndarray | None = None,
                   lungs: np.ndarray | None = None, bone: np.ndarray | None = None) -> Landmarks:
    """The landmarks of a CT (see the module docstring).

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units.
    work_mm : float
        Spacing (mm) the scan is subsampled to, by integer factors.
    body, lungs, bone : ndarray of bool or int, optional
        Body, lung and bone masks already made on the scan's grid (non-zero inside; e.g. :func:`ct.auto_label`'s
        3 and 5), used instead of running the labellers again.

    Returns
    -------
    Landmarks
    """
    from .labelers.body import label_body
    from .labelers.bones import label_bones
    from .labelers.lungs import label_lungs

    f, perm, flips, arr, sp = _coarse(volume, work_mm)
    lm = Landmarks(volume.shape, f, perm, flips, sp, *([None] * 12))  # type: ignore[arg-type]
    lm.body = lm.to_canonical(body) != 0 if body is not None else label_body(arr, spacing=sp)
    lm.lungs = (lm.to_canonical(lungs) != 0 if lungs is not None
                else label_lungs(arr, spacing=sp, body=lm.body) != 0) & lm.body
    lm.bone = (lm.to_canonical(bone) != 0 if bone is not None else label_bones(arr, spacing=sp, body=lm.body))
    grow = 2 * max(1, lm.mm(6.0, 1)) + 1
    lm.near_body = ndi.maximum_filter(lm.body, size=(3, grow, grow))
    lm.body_cm2 = lm.body.sum(axis=(1, 2)) * sp[1] * sp[2] / 100.0
    lm.spine = _spine(lm)
    lm.lung_base, lm.dome = _diaphragm(lm)
    lm.head = _head(lm, arr)
    lm.neck = _neck(lm, arr)
    lm.pelvis, lm.pelvis_footprint = _pelvis(lm)
    return lm


def _spine(lm: Landmarks) -> np.ndarray:
    """Per slice (row, column) of the spine's middle: bone within 30 mm of the body's midline in its back half."""
    nz = lm.body.shape[0]
    out = np.full((nz, 2), np.nan)
    half = 30.0 / lm.spacing[2]
    for z in range(nz):
        rows, cols = np.nonzero(lm.body[z])
        if rows.size == 0:
            continue
        mid_r, mid_c = rows.mean(), cols.mean()
        br, bc = np.nonzero(lm.bone[z])
        near = (np.abs(bc - mid_c) <= half) & (br >= mid_r)
        if np.count_nonzero(near) * lm.spacing[1] * lm.spacing[2] >= 150.0:  # 1.5 cm^2: a vertebra's cut
            out[z] = (np.median(br[near]), np.median(bc[near]))
    good = np.flatnonzero(~np.isnan(out[:, 0]))
    if good.size:  # slices between found ones take the nearest found slice's position
        nearest = good[np.abs(np.arange(nz)[:, None] - good[None]).argmin(axis=1)]
        gap = np.abs(np.arange(nz) - nearest) * lm.spacing[0] <= 30.0
        out[gap] = out[nearest[gap]]
    return out


def _diaphragm(lm: Landmarks) -> tuple[np.ndarray, int | None]:
    """Lowest lung slice per column, and the top slice of the right hemidiaphragm (None: no lungs in view)."""
    nz = lm.lungs.shape[0]
    has = lm.lungs.any(axis=0)
    base = np.where(has, lm.lungs.argmax(axis=0), nz)
    if np.count_nonzero(lm.lungs) * np.prod(lm.spacing) < 5_000.0:  # under 5 mL: no lungs in view
        return np.full(has.shape, nz), None
    cols = np.flatnonzero(has.any(axis=0))
    mid = np.nanmedian(lm.spine[:, 1]) if not np.all(np.isnan(lm.spine[:, 1])) else (cols[0] + cols[-1]) / 2
    right = has.copy()
    right[:, int(np.ceil(mid)):] = False  # the patient's right: the lower columns
    if not right.any():
        right = has
    area = (lm.lungs & right[None]).sum(axis=(1, 2))
    if area[0] >= 0.5 * area.max():  # the lungs are as wide at the first slice as anywhere: cut off above the
        return base, -1              # diaphragm, which is below the scan
    # the middle of the right hemithorax: its footprint less a third of its width on every side
    width = max(1, int(np.sqrt(right.sum() / np.pi) * 0.66))
    core = ndi.binary_erosion(right, iterations=width) if width > 1 else right
    if not core.any():
        core = right
    if np.all(base[core] == 0):
        return base, -1  # the lungs run out of the first slice: the diaphragm is below the scan
    return base, int(np.percentile(base[core], 90))


def _head(lm: Landmarks, arr: np.ndarray) -> np.ndarray:
    """Slices through the skull: bone enclosing soft tissue over >= 40 % of the body's cross-section."""
    out = np.zeros(lm.body.shape[0], dtype=bool)
    for z in np.flatnonzero(lm.bone.any(axis=(1, 2)) & ~lm.lungs.any(axis=(1, 2))):
        ring = lm.bone[z]
        inside = ndi.binary_fill_holes(ring) & ~ring
        area = np.count_nonzero(lm.body[z])
        if area and np.count_nonzero(inside) >= 0.4 * area:
            out[z] = np.count_nonzero(arr[z][inside] < -400) < 0.1 * np.count_nonzero(inside)
    return out


def _airway(lm: Landmarks, arr: np.ndarray, z: int) -> bool:
    """Whether slice ``z`` shows an airway: a pocket of air (below -600 HU) of 0.8 to 8 cm^2 inside the body,
    not lung, its middle within 20 mm of the body's midline (the trachea; the larynx)."""
    air = (arr[z] < -600) & lm.body[z] & ~lm.lungs[z]
    lab, n = ndi.label(air)
    if n == 0:
        return False
    px = lm.spacing[1] * lm.spacing[2] / 100.0
    sizes = np.bincount(lab.ravel())[1:] * px
    mid = np.nonzero(lm.body[z])[1].mean()
    for i in np.flatnonzero((sizes >= 0.8) & (sizes <= 8.0)) + 1:
        rows, cols = np.nonzero(lab == i)
        if abs(cols.mean() - mid) * lm.spacing[2] > 20.0:
            continue
        ahead = (lm.spine[z, 0] - rows.mean()) * lm.spacing[1] if not np.isnan(lm.spine[z, 0]) else 40.0
        if 10.0 <= ahead <= 70.0:  # just in front of the spine, not bowel under the belly wall
            return True
    return False


def _neck(lm: Landmarks, arr: np.ndarray) -> np.ndarray:
    """Slices of the neck and the upper thorax: an airway (:func:`_airway`) in at least 70 % of the slices within
    15 mm, with no lungs in the slice."""
    nz = lm.body.shape[0]
    lungs = lm.lungs.any(axis=(1, 2))
    flag = np.array([not lungs[z] and lm.body[z].any() and _airway(lm, arr, z) for z in range(nz)], dtype=float)
    half = lm.mm(15.0)
    share = ndi.uniform_filter1d(flag, 2 * half + 1, mode="nearest") if half else flag
    return (share >= 0.7) & ~lungs


def _pelvis(lm: Landmarks) -> tuple[np.ndarray, np.ndarray]:
    """Slices of the bony pelvis: a bone piece of at least :data:`PELVIS_PIECE_CM2` on each side, more than
    :data:`PELVIS_SIDE_MM` from the spine (the body's midline where no spine is found), at least 50 mm below the
    lungs and not in the head; the longest run of them (at least 30 mm, and less than half of it neck), and the
    convex hull of their bone seen from above."""
    nz = lm.body.shape[0]
    out = np.zeros(nz, dtype=bool)
    lung_z = np.flatnonzero(lm.lungs.any(axis=(1, 2)))
    top = nz if lung_z.size == 0 else int(lung_z[0]) - lm.mm(50.0)
    px = lm.spacing[1] * lm.spacing[2] / 100.0
    side = PELVIS_SIDE_MM / lm.spacing[2]
    for z in range(max(top, 0)):
        if lm.head[z] or lm.body_cm2[z] < NECK_CM2:
            continue
        mid = lm.spine[z, 1] if not np.isnan(lm.spine[z, 1]) else np.nonzero(lm.body[z])[1].mean()
        lab, n = ndi.label(lm.bone[z])
        if n < 2:
            continue
        cols = np.arange(lab.shape[1])
        right = np.bincount(lab[:, cols < mid - side].ravel(), minlength=n + 1)[1:].max() * px
        left = np.bincount(lab[:, cols > mid + side].ravel(), minlength=n + 1)[1:].max() * px
        out[z] = min(right, left) >= PELVIS_PIECE_CM2
    gap = lm.mm(15.0)  # a slice or two where a wing thins out does not split the pelvis
    if gap > 0:
        out = ndi.binary_closing(np.pad(out, gap), np.ones(2 * gap + 1, dtype=bool))[gap:-gap]
    lab, n = ndi.label(out)
    runs = [np.flatnonzero(lab == i) for i in range(1, n + 1)]
    runs = [r for r in runs if r.size * lm.spacing[0] >= 30.0]
    # the shoulders look like a pelvis from bone alone; an airway down most of the run says neck
    runs = [r for r in runs if np.mean(lm.neck[r]) < 0.5]
    keep = np.zeros(nz, dtype=bool)
    foot = np.zeros(lm.body.shape[1:], dtype=bool)
    if runs:
        best = max(runs, key=len)
        keep[best[0]:best[-1] + 1] = True
        from skimage.morphology import convex_hull_image

        seen = lm.bone[keep].any(axis=0)
        foot = convex_hull_image(seen) if np.count_nonzero(seen) >= 3 else seen
    return keep, foot
