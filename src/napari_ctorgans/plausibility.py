"""Anatomically possible label maps: organ voxels where the organ cannot be are removed, and reported.

:func:`plausible` asks the landmarks of :mod:`napari_ctorgans.landmarks` (body, lungs, diaphragm, spine, rib
cage, bony pelvis, skull) where each CT-ORG organ can lie, and removes the voxels that lie elsewhere:

========== =====================================================================================================
organ      where it cannot be
========== =====================================================================================================
every      outside the body
liver      above the right hemidiaphragm (over its dome, or above the lung base of its own column), on a head or
           neck slice (the skull; an airway in front of the spine without lungs), in the bony pelvis
kidneys    as the liver; more than 130 mm beside the spine, more than 90 mm in front of it (inside the
           peritoneum), in the back muscles (more than 25 mm behind the spine's middle within 40 mm of it, or
           more than 50 mm behind it anywhere)
bladder    on a head or neck slice; on a scan whose bony pelvis is not in view; above the pelvis by more than
           15 mm, or outside the bony pelvis seen from above
lungs      in the bony pelvis, on a head slice; a piece mostly outside the rib cage (the row and column spans of the
           bone within 45 mm above and below, grown by 20 mm; where the field of view cuts the body, its edge
           counts as bone) goes whole
========== =====================================================================================================

A piece of an organ (26-connected on the coarse grid) that loses more than half of its voxels to these rules is
removed whole (a liver drawn in a brain is not kept as a cap). The rib cage rule judges only whole pieces: the
labellers can miss the thin lower ribs at 3 mm, so it never trims a lung that is mostly inside. Every removal is a
:class:`Removal` ("removed 415 mL of bladder outside the bony pelvis"): :func:`plausible` returns them;
:func:`napari_ctorgans.predict` and :func:`napari_ctorgans.auto_label` run it by default (``plausible=False`` turns
it off) and issue each removal as an :class:`ImplausibleOrganWarning`. The rules work on the landmarks' coarse grid
(about 3 mm) with margins of a few voxels, so they cut where an organ cannot be, not along the organ's real border.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .landmarks import NECK_CM2, Landmarks, find_landmarks, spans
from .organs import ORGANS
from .volume import Volume

__all__ = ["plausible", "Removal", "ImplausibleOrganWarning", "warn_removals"]

LIVER, BLADDER, LUNGS, KIDNEYS = 1, 2, 3, 4

#: the reasons, by code (0: possible)
REASONS = {
    1: "outside the body",
    2: "above the diaphragm",
    3: "on a head or neck slice",
    4: "in the bony pelvis",
    5: "away from the spine",
    6: "in front of the retroperitoneum",
    7: "in the back muscles",
    8: "on a scan that does not reach the bony pelvis",
    9: "outside the bony pelvis",
    10: "outside the rib cage",
}
#: reasons that remove only whole pieces (a piece mostly outside), never trim one
SOFT = (10,)


class ImplausibleOrganWarning(UserWarning):
    """Organ voxels were removed where the organ cannot be (:func:`napari_ctorgans.plausible`)."""


@dataclass(frozen=True)
class Removal:
    """Voxels of one organ removed for one reason."""

    value: int
    organ: str
    reason: str
    voxels: int
    volume_ml: float

    def __str__(self) -> str:
        ml = f"{self.volume_ml:.0f}" if self.volume_ml >= 10 else f"{self.volume_ml:.2g}"
        return f"removed {ml} mL of {self.organ} {self.reason}"


def warn_removals(removals, *, stacklevel: int = 3) -> None:
    """Issue every removal as an :class:`ImplausibleOrganWarning`."""
    for r in removals:
        warnings.warn(str(r), ImplausibleOrganWarning, stacklevel=stacklevel)


def _codes(lm: Landmarks, value: int) -> np.ndarray | None:
    """Reason code (uint8, 0: possible) of every coarse voxel for an organ; None when it can be anywhere."""
    nz, ny, nx = lm.body.shape
    code = np.zeros(lm.body.shape, dtype=np.uint8)
    z = np.arange(nz)[:, None, None]

    def put(mask, c):
        code[(code == 0) & mask] = c

    if value in (LIVER, KIDNEYS, BLADDER, LUNGS):
        put(lm.head[:, None, None] & np.ones((1, ny, nx), bool), 3)
    if value in (LIVER, KIDNEYS, BLADDER):
        put(lm.neck[:, None, None] & np.ones((1, ny, nx), bool), 3)
    if value in (LIVER, KIDNEYS):
        put((lm.body_cm2 < NECK_CM2)[:, None, None] & ~lm.lungs.any(axis=(1, 2))[:, None, None]
            & np.ones((1, ny, nx), bool), 3)
        if lm.dome == -1:  # the lungs run out of the first slice: all of the scan is above the diaphragm
            put(np.ones(code.shape, bool), 2)
        elif lm.dome is not None:
            put(z > lm.dome + lm.mm(15.0), 2)
            put(z > lm.lung_base[None] + lm.mm(6.0), 2)
        pr = lm.pelvis_range
        if pr is not None:
            put(np.broadcast_to(z <= pr[1], code.shape), 4)
    if value == KIDNEYS:
        _kidney_codes(lm, code, put)
    if value == BLADDER:
        pr = lm.pelvis_range
        if pr is None:
            put(np.ones(code.shape, bool), 8)
        else:
            put(np.broadcast_to(z > pr[1] + lm.mm(15.0), code.shape), 9)
            grow = 2 * max(1, lm.mm(15.0, 1)) + 1
            foot = ndi.maximum_filter(lm.pelvis_footprint, size=grow)
            put(np.broadcast_to(~foot[None], code.shape), 9)
    if value == LUNGS:
        pr = lm.pelvis_range
        if pr is not None:
            put(np.broadcast_to(z <= pr[1], code.shape), 4)
        put(~_rib_cage(lm), 10)
    put(~lm.near_body, 1)
    return code


def _kidney_codes(lm: Landmarks, code: np.ndarray, put) -> None:
    """Kidneys: beside the spine, behind the peritoneum, in front of the back muscles."""
    spine = lm.spine
    if np.all(np.isnan(spine[:, 0])):
        return
    filled = np.where(np.isnan(spine), np.nanmedian(spine, axis=0), spine)
    ny, nx = lm.body.shape[1:]
    dy = (np.arange(ny)[None, :, None] - filled[:, 0][:, None, None]) * lm.spacing[1]  # + behind the spine
    dx = np.abs(np.arange(nx)[None, None, :] - filled[:, 1][:, None, None]) * lm.spacing[2]
    put(np.broadcast_to(dx > 130.0, code.shape), 5)
    put(np.broadcast_to(dy < -90.0, code.shape), 6)
    put((dx < 40.0) & (dy > 25.0) | (dy > 50.0), 7)


def _rib_cage(lm: Landmarks) -> np.ndarray:
    """Per slice, the :func:`~napari_ctorgans.landmarks.spans` of the bone within 45 mm above and below, grown
    by 20 mm; where the field of view cuts the body, its edge counts as bone (the ribs may be outside it)."""
    half = lm.mm(45.0)
    edge = np.zeros(lm.body.shape, dtype=bool)  # the body cut by the field of view: its ribs may lie outside
    edge[:, [0, -1], :] = lm.body[:, [0, -1], :]
    edge[:, :, [0, -1]] = lm.body[:, :, [0, -1]]
    bone = lm.bone | edge
    bone = ndi.maximum_filter1d(bone, 2 * half + 1, axis=0) if half else bone
    grow = 2 * max(1, lm.mm(20.0, 1)) + 1
    return ndi.maximum_filter(spans(bone), size=(1, grow, grow))


def _organ_boxes(labels: np.ndarray, step: int = 4) -> dict[int, tuple[slice, ...]]:
    """Bounding box of each label value > 0 but the ignore value 255, in increasing order.

    One pass over slabs of ``step`` axial slices, small enough to stay in the cache: each value present in a slab
    is compared there, and its slices and its (row, column) footprint are kept. Numpy reductions only, which
    release the GIL (the viewer stays responsive while a worker thread runs this on a full-size scan), and far
    faster than a full-size mask per organ on a 512 x 512 x 800 scan (docs/benchmarks.md)."""
    zs: dict[int, list[int]] = {}
    feet: dict[int, np.ndarray] = {}
    for z0 in range(0, labels.shape[0], step):
        slab = labels[z0:z0 + step]
        top = slab.max()
        if top <= 0:
            continue
        values = range(1, int(top) + 1) if top <= 16 else [int(v) for v in np.unique(slab) if v > 0]
        for v in values:
            eq = slab == v
            z = np.flatnonzero(eq.any(axis=(1, 2)))
            if z.size == 0:
                continue
            zs.setdefault(v, [z0 + int(z[0]), 0])[1] = z0 + int(z[-1]) + 1
            foot = eq[z[0]:z[-1] + 1].any(axis=0)
            feet[v] = foot | feet[v] if v in feet else foot
    out = {}
    for v in sorted(zs):
        if v == 255:
            continue
        y, x = (np.flatnonzero(feet[v].any(axis=a)) for a in (1, 0))
        out[v] = (slice(*zs[v]), slice(int(y[0]), int(y[-1]) + 1), slice(int(x[0]), int(x[-1]) + 1))
    return out


def plausible(labels, volume: Volume, *, landmarks: Landmarks | None = None, inplace: bool = False
              ) -> tuple[np.ndarray, list[Removal]]:
    """Remove organ voxels where the organ cannot be (module docstring) and say what was removed.

    Parameters
    ----------
    labels : ndarray (Z, Y, X) of int
        CT-ORG label map on the grid of ``volume`` (values without a rule, such as 5 bone, keep only the body
        rule; the ignore value 255 is left alone).
    volume : Volume
        The CT in Hounsfield units.
    landmarks : Landmarks, optional
        :func:`~napari_ctorgans.landmarks.find_landmarks` of ``volume``, when already found.
    inplace : bool
        Change ``labels`` itself instead of a copy.

    Notes
    -----
    The project's own phantoms (:func:`~napari_ctorgans.make_phantom`, :func:`~napari_ctorgans.make_random_phantom`:
    ``volume.metadata["phantom_seed"]``) have a toy anatomy without ribs or a bony pelvis, which the human-anatomy
    rules would misjudge: their labels are returned unchanged, with no removals.

    Returns
    -------
    labels : ndarray
        The label map with the impossible voxels set to 0 (background).
    removals : list of Removal
        What was removed, per organ and reason, largest first; empty when nothing was.

    Raises
    ------
    ValueError
        ``labels`` is not on the grid of ``volume``.

    Examples
    --------
    >>> import napari_ctorgans as ct
    >>> vol = ct.read_volume("scan.nii.gz")  # doctest: +SKIP
    >>> labels, removed = ct.plausible(ct.predict(vol, plausible=False), vol)  # doctest: +SKIP
    >>> print("\\n".join(map(str, removed)))  # doctest: +SKIP
    removed 73 mL of bladder on a scan that does not reach the bony pelvis
    """
    arr = np.asarray(labels)
    if arr.shape != volume.shape:
        raise ValueError(f"labels shape {arr.shape} does not match the CT shape {volume.shape}; "
                         "give the label map made for this CT")
    out = arr if inplace else arr.copy()
    boxes = _organ_boxes(out)
    if not boxes or (volume.metadata or {}).get("phantom_seed") is not None:
        return out, []
    lm = landmarks if landmarks is not None else find_landmarks(volume)
    removals: list[Removal] = []
    coarse = np.ascontiguousarray(lm.to_canonical(out))  # one gather; each organ's removals leave the others
    for value, box in boxes.items():
        code = _codes(lm, value)
        if code is None or not code.any():
            continue
        removals += _apply(out, value, box, code, lm, volume.voxel_volume_ml, coarse == value)
    removals.sort(key=lambda r: -r.voxels)
    return out, removals


def _scan_codes(code: np.ndarray, lm: Landmarks, box: tuple[slice, ...]) -> np.ndarray:
    """The coarse canonical code map on a box of the scan grid (nearest coarse voxel)."""
    idx = [None, None, None]
    for axis in range(3):
        k = lm.perm[axis]
        idx[k] = lm.scan_index(axis, box[k].start, box[k].stop)
    sub = code[np.ix_(idx[lm.perm[0]], idx[lm.perm[1]], idx[lm.perm[2]])]  # canonical axes of the box
    inverse = np.argsort(lm.perm)
    return np.transpose(sub, inverse)


def _whole_pieces(coarse: np.ndarray, code: np.ndarray) -> np.ndarray:
    """The code map with every coarse piece of the organ that loses more than half of itself to the rules taken
    whole (under its most common reason), and the soft reasons kept only inside such pieces (in place)."""
    lab, n = ndi.label(coarse, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return code
    bad = coarse & (code > 0)
    lost = np.bincount(lab[bad], minlength=n + 1)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    whole = np.zeros(n + 1, dtype=bool)
    whole[1:] = 2 * lost[1:] > size[1:]
    in_whole = whole[lab]
    code[np.isin(code, SOFT) & ~in_whole] = 0
    for i in np.flatnonzero(whole):
        piece = lab == i
        reasons = code[piece & (code > 0)]
        if reasons.size:
            code[piece] = np.bincount(reasons).argmax()
    return code


def _apply(out: np.ndarray, value: int, box: tuple[slice, ...], code: np.ndarray, lm: Landmarks,
           voxel_ml: float, coarse: np.ndarray) -> list[Removal]:
    """Remove the voxels of one organ (bounding box ``box`` on the scan; ``coarse``: its mask on the coarse
    canonical grid) whose coarse voxel has a reason; one Removal per reason."""
    cbox = ndi.find_objects(coarse.view(np.uint8))
    if not cbox or cbox[0] is None:
        cbox = [tuple(slice(0, n) for n in coarse.shape)]
    grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in cbox[0])  # one voxel around the organ
    local = _whole_pieces(coarse[grown], code[grown].copy())
    near = ndi.maximum_filter(coarse[grown].view(np.uint8), size=3).view(bool)
    if not (near & (local > 0)).any():
        return []  # nothing of the organ is near a place it cannot be: no work on the scan's grid
    code = np.zeros_like(code)
    code[grown] = local
    sub = out[box]
    organ = sub == value
    codes = _scan_codes(code, lm, box)
    bad = organ & (codes > 0)
    if not bad.any():
        return []
    counts = np.bincount(codes[bad], minlength=len(REASONS) + 1)
    sub[bad] = 0
    name = ORGANS[value].name if value in ORGANS else f"label {value}"
    return [Removal(value, name, REASONS[c], int(counts[c]), float(counts[c] * voxel_ml))
            for c in np.flatnonzero(counts) if c > 0]
