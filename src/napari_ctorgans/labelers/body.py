"""The body mask: everything inside the patient's skin, without the air around it and without the exam couch."""

from __future__ import annotations

import numpy as np

from scipy import ndimage as ndi

from ._common import as_ct, check_positive, fill_holes_axial, label_sizes, looks_like_ct, strides


def label_body(volume, *, threshold_hu: float = -300.0, thickness_mm: float = 10.0, min_part_ml: float = 20.0,
               work_mm: float = 3.0, backend: str = "auto", spacing=None) -> np.ndarray:
    """Body mask: the parts of the patient above ``threshold_hu``, holes filled in every axial slice.

    The trunk and the arms beside it are separate connected parts; a part belongs to the body when it holds at
    least ``min_part_ml`` millilitres that survive an opening with a ball of ``thickness_mm`` (the couch, its
    shell and blankets are thinner and vanish). The largest part is always kept.

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
    return fill_holes_axial(body)
