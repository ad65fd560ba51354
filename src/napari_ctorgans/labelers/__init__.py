"""Automatic and semi-automatic labelling (SPEC section 3): body, lungs, bone, and seeded region growing."""

from __future__ import annotations

import numpy as np

from ..organs import ORGANS
from .body import label_body
from .bones import label_bones
from .grow import grow_region
from .lungs import label_lungs, split_lungs

__all__ = ["label_body", "label_lungs", "label_bones", "split_lungs", "grow_region", "auto_label", "ORGAN_LABELERS"]

#: organs with an automatic labeler, by CT-ORG name
ORGAN_LABELERS = ("lungs", "bone")


def auto_label(volume, *, organs=ORGAN_LABELERS, backend: str = "auto", lungs: dict | None = None,
               bones: dict | None = None, progress=None, plausible: bool = True) -> np.ndarray:
    """Label lungs and bone of a CT with CT-ORG values (3 lungs, 5 bone, 0 elsewhere).

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units.
    organs : sequence of {"lungs", "bone"}
        Which organs to label.
    backend : {"auto", "cpu", "cuda"}
        Backend of the morphology.
    lungs, bones : dict, optional
        Keyword parameters for :func:`label_lungs` and :func:`label_bones`.
    progress : callable, optional
        Called as ``progress(step, total, message)`` after each stage.
    plausible : bool
        Remove labels where the organ cannot be (:func:`ct.plausible`: gas in a pelvis slab is not lung); each
        removal is issued as an :class:`~napari_ctorgans.plausibility.ImplausibleOrganWarning`.

    Returns
    -------
    ndarray of uint8
        Label map in the volume's grid; bone wins where both labelers claim a voxel.

    Raises
    ------
    NotCTError
        The image is not a CT in Hounsfield units (:func:`ct.check_ct`); nothing is computed.
    """
    if isinstance(organs, str):
        organs = [o.strip() for o in organs.split(",") if o.strip()]
    organs = list(organs)
    for o in organs:
        if o not in ORGAN_LABELERS:
            raise ValueError(f"organs must be among {ORGAN_LABELERS}, got {o!r}; other organs need grow_region")
    from ..ctcheck import check_ct

    check_ct(volume)  # a 2D, colour, microscopy, MR, 0..1 or noise image is refused before any work
    return label_checked(volume, organs, backend=backend, lungs=lungs, bones=bones, progress=progress,
                         plausible=plausible)


def label_checked(volume, organs, *, backend="auto", lungs=None, bones=None, progress=None, plausible=True):
    """:func:`auto_label` of a CT that already passed :func:`~napari_ctorgans.ctcheck.check_ct` (``organs``: a
    list of valid names), so that ``ct.predict`` checks the scan once."""
    from ._common import as_ct

    arr, sp = as_ct(volume)
    total = len(organs) + 1
    body = label_body(arr, spacing=sp, backend=backend)
    if progress:
        progress(1, total, "body")
    out = np.zeros(arr.shape, dtype=np.uint8)
    value = {o.name: o.value for o in ORGANS.values()}
    step = 1
    if "lungs" in organs:
        out[label_lungs(arr, spacing=sp, body=body, backend=backend, **(lungs or {}))] = value["lungs"]
        step += 1
        if progress:
            progress(step, total, "lungs")
    if "bone" in organs:
        out[label_bones(arr, spacing=sp, body=body, backend=backend, **(bones or {}))] = value["bone"]
        step += 1
        if progress:
            progress(step, total, "bone")
    if plausible and out.any():
        from ..landmarks import find_landmarks
        from ..plausibility import plausible as make_plausible
        from ..plausibility import warn_removals

        vol = _as_volume(arr, sp, volume)
        lm = find_landmarks(vol, body=body, lungs=out == value["lungs"] if "lungs" in organs else None,
                            bone=out == value["bone"] if "bone" in organs else None)
        warn_removals(make_plausible(out, vol, landmarks=lm, inplace=True)[1])
    return out


def _as_volume(arr, sp, volume=None):
    """``volume`` when it is a Volume, else the array with its spacing as one (canonical orientation)."""
    from ..volume import Volume

    return volume if isinstance(volume, Volume) else Volume(arr, spacing=sp)
