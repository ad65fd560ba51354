"""The CT check: is this image a CT in Hounsfield units? Decided from its content, before any work.

One place for the facts every tool relies on. :func:`hu_problem` holds the range facts (values no CT in HU can
have) that every labeller checks; :func:`check_ct` adds the content: the shape of a volume, the air and
soft-tissue values of a body, the structure of an image rather than noise, and a plausible voxel size.
``ct.predict``, ``ct.auto_label``, ``ctorgans label`` and ``ctorgans predict`` run it first and refuse with a
:class:`NotCTError` (a ``ValueError``) whose message says what was found, why it cannot be a CT and what to do.

The padding outside the reconstruction field (:mod:`napari_ctorgans.padding`) is left out of every statistic.
A constant volume (all air, an empty test volume) carries nothing to judge and passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .padding import AIR_HU, padding_mask, padding_range
from .volume import CT_SPACING_RANGE_MM

__all__ = ["check_ct", "hu_problem", "NotCTError", "HU_MAX", "SOFT_TISSUE_HU"]

#: values above this are not Hounsfield units (dense metal reaches about 30,000 on extended scales)
HU_MAX = 40000.0
#: soft tissue and fat: every CT of a body has some
SOFT_TISSUE_HU = (-200.0, 250.0)
_MIN_SOFT_FRACTION = 0.01
#: variance of 4 x 4 in-plane block means over the variance of the voxels: about 1 for an image (its structure
#: is larger than a voxel), 1/16 for noise (every voxel on its own)
_MIN_STRUCTURE = 0.25
_SAMPLE_VOXELS = 2_000_000
_OPEN_THE_CT = "open the CT scan itself (NIfTI, NRRD, MHA or a DICOM series folder) with ct.read_volume"


class NotCTError(ValueError):
    """The image given as a CT is not a CT in Hounsfield units (the message says why and what to do)."""


def hu_problem(arr: np.ndarray, name: str = "volume") -> str | None:
    """Why the values of ``arr`` cannot be a CT in HU (an 8-bit picture, a 0..1-scaled image, values above
    :data:`HU_MAX`), or None. Values far below air are padding, never a reason (:mod:`~napari_ctorgans.padding`)."""
    if arr.dtype == np.bool_:
        return f"{name} is a boolean mask, not a CT; pass the CT image in Hounsfield units"
    if not arr.size:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    if hi > HU_MAX:
        return (f"{name} has values up to {hi:g}, above {HU_MAX:g}, the top of the Hounsfield scale of any CT, so "
                f"it is not a CT in HU (values from {lo:g}): a raw or rescaled image. Pass the CT as read (HU): "
                f"{_OPEN_THE_CT}")
    if lo == hi:
        return None
    if lo >= 0.0 and hi <= 1.0:
        return (f"{name} has values from {lo:g} to {hi:g}: it is scaled to 0..1 (normalised), while a CT in Hounsfield "
                "units runs from about -1000 (air) through 0 (water) to over 1000 (bone), and every HU threshold and "
                f"model here needs those values. Use the scan as read, not a normalised copy: {_OPEN_THE_CT}")
    if arr.dtype == np.uint8:
        return (f"{name} is an 8-bit image (values {lo:g} to {hi:g}), like a picture or a screenshot; an 8-bit value "
                "cannot hold Hounsfield units (air is -1000 HU). Use the scan as read, not an exported picture: "
                f"{_OPEN_THE_CT}")
    return None


def _shape_problem(shape: tuple[int, ...], name: str) -> str | None:
    if len(shape) == 2:
        return (f"{name} is a single 2D image (shape {shape}), not a CT volume: a CT is a 3D stack of slices. "
                f"Load the whole series (its folder) or the 3D file: {_OPEN_THE_CT}")
    if len(shape) > 3:
        return (f"{name} has {len(shape)} dimensions (shape {shape}), like a multi-channel microscopy stack, a colour "
                "movie or a time series; a CT is one 3D volume of grey values in Hounsfield units. "
                f"{_OPEN_THE_CT[0].upper()}{_OPEN_THE_CT[1:]}")
    if len(shape) < 2:
        return f"{name} has shape {shape}; a CT is a 3D (z, y, x) volume"
    if shape[-1] in (3, 4) and min(shape[:2]) >= 16 * shape[-1]:
        return (f"{name} looks like a colour (RGB) picture: shape {shape}, with {shape[-1]} colour channels last. A CT "
                f"is a stack of grey-value slices in Hounsfield units; {_OPEN_THE_CT}")
    return None


def _sample(arr: np.ndarray) -> np.ndarray:
    """The volume subsampled by integer strides to at most about :data:`_SAMPLE_VOXELS` voxels (a view)."""
    f = max(1, int(np.ceil((arr.size / _SAMPLE_VOXELS) ** (1 / 3))))
    return arr[::f, ::f, ::f]


def _structure(arr: np.ndarray, pad: np.ndarray) -> float | None:
    """Variance of 4 x 4 in-plane block means over the voxel variance, on up to 8 axial slices (padding as air)."""
    ny, nx = (arr.shape[1] // 4) * 4, (arr.shape[2] // 4) * 4
    if ny < 16 or nx < 16:
        return None
    ratios = []
    for z in np.unique(np.linspace(0, arr.shape[0] - 1, 8).round().astype(int)):
        plane = arr[z, :ny, :nx].astype(np.float32)
        plane[pad[z, :ny, :nx]] = AIR_HU
        var = float(plane.var())
        if var > 1.0:
            blocks = plane.reshape(ny // 4, 4, nx // 4, 4).mean(axis=(1, 3))
            ratios.append(float(blocks.var()) / var)
    return float(np.median(ratios)) if ratios else None


def _content_problem(arr: np.ndarray, pad_range, name: str) -> str | None:
    sample = _sample(arr)
    pad = padding_mask(sample, padding=pad_range)
    values = sample[~pad]
    if values.size == 0 or values.min() == values.max():
        return None  # all padding, or constant (an empty scan): nothing to judge
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0:
        return (f"{name} has no negative values (from {lo:g} to {hi:g}), so it is not a CT in Hounsfield units, where "
                "air is -1000 and fat -100: it looks like a microscopy, MR or 8-bit image, or a CT stored without its "
                "rescale intercept. Open the CT scan as read (the DICOM reader applies the intercept); for a CT "
                "stored as raw values, subtract the intercept (usually 1024) first")
    p_lo, p_hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if p_hi - p_lo < 100.0:
        return (f"{name} spans only {p_lo:.3g} to {p_hi:.3g} (99% of its voxels), while a CT in Hounsfield units spans "
                "about 1000 from air (-1000) to soft tissue (0 to 100): it looks normalised or is not a CT. "
                f"Use the scan as read: {_OPEN_THE_CT}")
    if values.size >= 32_768:
        soft = float(np.mean((values >= SOFT_TISSUE_HU[0]) & (values <= SOFT_TISSUE_HU[1])))
        if soft < _MIN_SOFT_FRACTION:
            return (f"{name} has almost no soft tissue: {100 * soft:.2g}% of its voxels lie between "
                    f"{SOFT_TISSUE_HU[0]:g} and {SOFT_TISSUE_HU[1]:g} HU (fat, muscle, organs), where every CT of a "
                    f"body has many (values from {lo:g} to {hi:g}). It is not a CT in HU; {_OPEN_THE_CT}")
    structure = _structure(sample, pad)
    if structure is not None and structure < _MIN_STRUCTURE:
        return (f"{name} looks like noise: neighbouring voxels are no more alike than distant ones (4 x 4 block means "
                f"keep {100 * structure:.2g}% of the variance; a CT image keeps most of it, since its organs are many "
                f"voxels wide). {_OPEN_THE_CT[0].upper()}{_OPEN_THE_CT[1:]}")
    return None


def _spacing_problem(spacing, name: str) -> str | None:
    lo, hi = CT_SPACING_RANGE_MM
    if spacing is None or all(lo <= float(s) <= hi for s in spacing):
        return None
    sp = ", ".join(f"{float(s):.4g}" for s in spacing)
    return (f"{name} has voxel spacing ({sp}) mm (z, y, x); a CT's voxels are {lo:g} to {hi:g} mm on every axis. "
            "Fix the voxel size in the file header (or pass spacing= in mm); a stack measured in micrometres, such "
            "as microscopy, is not a CT")


def check_ct(volume: Any, *, name: str | None = None) -> None:
    """Refuse anything that is not a CT in Hounsfield units, from its content, before any work.

    Refused: a 2D image, a colour (RGB) picture, a stack with more than 3 dimensions (microscopy channels, time
    series), a boolean mask, 8-bit or 0..1-scaled values, values above :data:`HU_MAX`, an image without negative
    values (microscopy, MR, a CT without its rescale intercept), a normalised image spanning less than 100 units,
    almost no soft tissue (:data:`SOFT_TISSUE_HU`), noise (no structure larger than a voxel), and a voxel size
    outside :data:`~napari_ctorgans.volume.CT_SPACING_RANGE_MM`. Padding outside the reconstruction field is left
    out; a constant volume passes. Every real scan of the test data passes, padded or not (tests/test_real_ct.py).

    Parameters
    ----------
    volume : Volume or ndarray
        The image to check (an ndarray is checked without a voxel size).
    name : str, optional
        How the messages name the image (default: the file it was read from, else "the image").

    Raises
    ------
    NotCTError
        A ``ValueError`` whose one-line message says what was found, why it cannot be a CT and what to do.

    Examples
    --------
    >>> import numpy as np, napari_ctorgans as ct
    >>> ct.check_ct(np.random.default_rng(0).random((64, 64, 64)))
    Traceback (most recent call last):
    ...
    napari_ctorgans.ctcheck.NotCTError: the image has values from ... to ...: it is scaled to 0..1 ...
    """
    arr = np.asarray(getattr(volume, "array", volume))
    if name is None:
        path = getattr(volume, "path", None)
        name = str(path) if path else "the image"
    problem = _shape_problem(arr.shape, name)
    if problem is None and arr.dtype.kind not in "biuf":
        problem = f"{name} has values of type {arr.dtype}, not numbers; a CT holds Hounsfield units"
    problem = problem or hu_problem(arr, name)
    if problem is None and arr.ndim == 3 and arr.size:
        problem = _spacing_problem(getattr(volume, "spacing", None), name) or \
            _content_problem(arr, padding_range(volume), name)
    if problem:
        raise NotCTError(problem)
