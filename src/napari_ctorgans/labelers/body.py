"""The body mask: everything inside the patient's skin, without the air around it and without the exam couch.

Outside air is the air connected to the outside of the patient, not all the air at the border of the field of view:
a tight thorax crop (cardiac or mediastinal reconstruction) shows the lungs cut by the field of view on both sides
and no outside air at all. Non-tissue reaching the border counts as outside only when most of it is as dark as
real air (median near -1000 HU); lung cut by the border (median near -820 HU) stays inside the body.
"""

from __future__ import annotations

import numpy as np

from scipy import ndimage as ndi

from ._common import as_ct, border_labels, check_positive, fill_holes_axial, label_sizes, looks_like_ct, strides


#: the floor of the HU scale: air clipped there, or padding below it outside the reconstruction circle
FLOOR_HU = -1024.0


def cut_air(arr: np.ndarray, tissue: np.ndarray, parts: np.ndarray, outside_hu: float) -> np.ndarray:
    """Non-tissue reaching the border of the volume that is not outside air: lungs cut by the field of view.

    A connected piece of ``~tissue`` that touches one of the six faces is inside the patient when fewer than half
    of its voxels lie below ``outside_hu`` (its median is not air: lung parenchyma, median near -820 HU, against
    -1000 HU), is walled by tissue more than by voxels at the floor of the HU scale, at least half of that tissue
    belongs to the body's ``parts`` (the air inside a couch or a cushion is walled by the couch, not by the
    patient), and it holds at least twice as many voxels as its one-voxel surroundings (not a thin rim of
    partial-volume air next to air clipped at the floor). Pieces that do not reach the border are left to the
    axial hole filling. Voxels at or below :data:`FLOOR_HU` are never inside.
    """
    out = np.zeros(arr.shape, dtype=bool)
    # voxels at the floor of the HU scale (clipped air, padding outside the reconstruction circle) are outside:
    # padding in the corners of a tight crop touches the lungs where the circle cuts them
    lab, n = ndi.label(~tissue & (arr > FLOOR_HU))
    ids = border_labels(lab)
    if ids.size == 0:
        return out
    sizes = label_sizes(lab, n)
    dark = label_sizes(lab, n, where=arr < outside_hu)
    ids = ids[2 * dark[ids] < sizes[ids]]
    boxes = ndi.find_objects(lab)
    for i in ids:
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in boxes[i - 1])
        piece = lab[box] == i
        ring = ndi.binary_dilation(piece) & ~piece
        walls = ring & tissue[box]
        n_walls, n_floor = np.count_nonzero(walls), np.count_nonzero(ring & (arr[box] <= FLOOR_HU))
        # lung is walled by the patient more than by the floor and thick (at 3 mm about 6 voxels per voxel of its
        # surroundings); partial-volume air next to air clipped at the floor is a shell about as thin as its
        # surroundings
        thick = sizes[i] >= 2 * np.count_nonzero(ring)
        if thick and n_walls > n_floor and 2 * np.count_nonzero(walls & parts[box]) >= n_walls:
            out[box] |= piece
    return out


def label_body(volume, *, threshold_hu: float = -300.0, thickness_mm: float = 10.0, min_part_ml: float = 20.0,
               outside_hu: float = -950.0, work_mm: float = 3.0, backend: str = "auto", spacing=None) -> np.ndarray:
    """Body mask: the parts of the patient above ``threshold_hu``, holes filled in every axial slice.

    The trunk and the arms beside it are separate connected parts; a part belongs to the body when it holds at
    least ``min_part_ml`` millilitres that survive an opening with a ball of ``thickness_mm`` (the couch, its
    shell and blankets are thinner and vanish). The largest part is always kept. Non-tissue that reaches the
    border of the volume, is not mostly darker than ``outside_hu`` and is walled by the body (lungs cut by a
    tight field of view) is inside the body, so a crop with no outside air in view keeps its lungs
    (:func:`cut_air`).

    Padding outside the reconstruction field (-3024, -2048, -2000 HU, the DICOM padding tags, a constant non-air
    border: :func:`ct.padding_mask`) reads as air at the floor of the HU scale, so it is never body.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units (or an ndarray together with ``spacing``).
    threshold_hu : float
        Tissue threshold; air outside the patient and inside the couch lies below it.
    thickness_mm : float
        Diameter (mm) of the opening ball that thin objects (couch shell, cables, blankets) do not survive.
    min_part_ml : float
        Smallest thick volume for a part other than the largest to count as body (arms, head, legs).
    outside_hu : float
        Outside air: non-tissue connected to the border of the volume with at least half of its voxels below this
        value (real air is near -1000 HU, lung parenchyma near -820 HU), or walled by something other than the
        body (the couch).
    work_mm : float
        The thickness test runs on the volume subsampled by integer factors to about this spacing (0: full grid).
    backend : {"auto", "cpu", "cuda"}
        Backend of the morphology.
    spacing : 3 floats, optional
        Voxel size when ``volume`` is a bare array.

    Returns
    -------
    ndarray of bool
        True inside the body (lungs, airways and bowel gas included, as they are enclosed in the axial slice).
    """
    arr, sp = as_ct(volume, spacing)
    threshold_hu = float(threshold_hu)
    thickness_mm = check_positive(thickness_mm, "thickness_mm", allow_zero=True)
    min_part_ml = check_positive(min_part_ml, "min_part_ml", allow_zero=True)
    try:
        outside_hu = float(outside_hu)
    except (TypeError, ValueError):
        raise TypeError(f"outside_hu must be a number of HU, got {outside_hu!r}") from None
    if not np.isfinite(outside_hu):
        raise ValueError(f"outside_hu must be a finite number of HU, got {outside_hu!r}")
    if not looks_like_ct(arr, what="the body mask"):
        return np.zeros(arr.shape, dtype=bool)
    tissue = arr > threshold_hu
    lab, n = ndi.label(tissue)
    if n == 0:
        return np.zeros(arr.shape, dtype=bool)
    sizes = label_sizes(lab, n)
    sizes[0] = 0
    keep = {int(sizes.argmax())}
    if thickness_mm > 0 and n > 1:
        from .. import morphology

        f = strides(sp, work_mm)
        sub = tuple(slice(None, None, fi) for fi in f)
        csp = tuple(s * fi for s, fi in zip(sp, f))
        thick = morphology.opening(tissue[sub], thickness_mm, csp, backend=backend)
        thick_ml = np.bincount(lab[sub][thick], minlength=n + 1) * float(np.prod(csp)) / 1000.0
        thick_ml[0] = 0
        keep |= {int(i) for i in np.flatnonzero(thick_ml >= min_part_ml)}
    table = np.zeros(n + 1, dtype=bool)
    table[sorted(keep)] = True
    body = table[lab]  # a lookup table: no sorted or int64 temporaries of the label image
    del lab
    body |= cut_air(arr, tissue, body, outside_hu)
    return fill_holes_axial(body)
