"""Padding: the voxels outside a CT's reconstruction field, which hold no measurement of the patient.

Many scanners store the region outside the reconstruction circle as a value far below air (-3024, -2048 or -2000
HU; GE, Siemens, Toshiba), some name it in the DICOM tags Pixel Padding Value (0028,0120) and Pixel Padding Range
Limit (0028,0121), and scans resampled by other software often carry a constant (often 0) in the corners. Padding
is recognised from:

1. every value below :data:`PADDING_BELOW_HU` (nothing in a patient is darker than air, -1000 HU);
2. the DICOM padding tags, converted to HU by the DICOM reader into ``volume.metadata["pixel_padding_hu"]``
   (``(low, high)``); values in that range count where they are connected to the edge of their axial slice;
3. a constant value that is not air (above :data:`AIR_LIKE_HU`) in all four corners of the axial slices: the
   region of that exact value connected to the slice edge.

Padding that already has the value of air (-1024 or -1000) looks like the air it stands in for, so nothing needs
masking. The stored HU are never changed: :func:`fill_padding` returns a copy in which padding reads as air
(:data:`AIR_HU`), in the array's own dtype, made only when there is padding to fill.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["padding_mask", "fill_padding", "padding_range", "may_have_padding", "AIR_HU", "PADDING_BELOW_HU",
           "AIR_LIKE_HU"]

#: the value padding takes when it is treated as outside the patient: air at the floor of the HU scale
AIR_HU = -1024
#: values below this are padding (or carry no measurement): air is -1000 HU, the noise of air rarely -1200
PADDING_BELOW_HU = -1500.0
#: a constant border value at or below this already reads as air; above it, it is masked as padding
AIR_LIKE_HU = -900.0
_SLAB = 16  # axial slices per step: masks are built slab by slab, without full-size temporaries of the HU


def padding_range(volume: Any) -> tuple[float, float] | None:
    """The HU range ``(low, high)`` that the DICOM padding tags name (``metadata["pixel_padding_hu"]``), or None."""
    meta = getattr(volume, "metadata", None) or {}
    value = meta.get("pixel_padding_hu")
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"metadata['pixel_padding_hu'] must be (low, high) in HU, got {value!r}") from None
    return (min(lo, hi), max(lo, hi))


def _array(volume: Any) -> np.ndarray:
    arr = np.asarray(getattr(volume, "array", volume))
    if arr.ndim != 3:
        raise ValueError(f"padding is found in a 3D (z, y, x) CT, got an array of shape {arr.shape}")
    return arr


def _edge_connected(mask2d: np.ndarray) -> np.ndarray:
    """The parts of a 2D mask connected to the edge of the slice."""
    lab, n = ndi.label(mask2d)
    if n == 0:
        return mask2d
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    keep = np.zeros(n + 1, dtype=bool)
    keep[edge[edge > 0]] = True
    return keep[lab]


def _corner_constant(arr: np.ndarray) -> float | None:
    """The value shared by the four corners of the first, middle and last axial slices, when it is not air-like
    and the centre of those slices (inside the reconstruction field) holds another value."""
    zs = sorted({0, arr.shape[0] // 2, arr.shape[0] - 1})
    corners = arr[zs][:, [0, 0, -1, -1], [0, -1, 0, -1]]
    value = corners.flat[0]
    if not np.all(corners == value) or not np.isfinite(value) or float(value) <= AIR_LIKE_HU:
        return None
    if np.any(arr[zs, arr.shape[1] // 2, arr.shape[2] // 2] == value):
        return None  # a constant image, or one whose centre has the border's value: not a field with padding
    return float(value)


def padding_mask(volume: Any, *, padding: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean mask of the padding of a CT: the voxels outside its reconstruction field (module docstring).

    Parameters
    ----------
    volume : Volume or ndarray (Z, Y, X)
        CT in Hounsfield units, as read.
    padding : (low, high), optional
        HU range named by the DICOM padding tags (default: ``volume.metadata["pixel_padding_hu"]`` when present).

    Returns
    -------
    ndarray of bool, the volume's shape
        True on padding. Treated as outside the patient by the body mask, the labellers, prediction and the
        statistics; the HU values themselves are left as stored.

    Examples
    --------
    >>> import numpy as np, napari_ctorgans as ct
    >>> a = np.full((4, 32, 32), -1000, np.int16); a[:, :4] = -3024
    >>> int(ct.padding_mask(ct.Volume(a)).sum())
    512
    """
    arr = _array(volume)
    tags = padding if padding is not None else padding_range(volume)
    mask = np.zeros(arr.shape, dtype=bool)
    if arr.dtype.kind == "u":  # unsigned values hold no HU below 0: the CT check refuses them as not HU
        return mask
    for s, part in _slab_masks(arr, tags, _corner_constant(arr)):
        mask[s] = part
    return mask


def _slab_masks(arr: np.ndarray, tags, constant):
    """Yield ``(slice, mask)`` of the padding, :data:`_SLAB` axial slices at a time (no full-size temporaries)."""
    for z0 in range(0, arr.shape[0], _SLAB):
        s = slice(z0, z0 + _SLAB)
        part = arr[s]
        mask = part < PADDING_BELOW_HU
        if tags is not None or constant is not None:
            for k in range(part.shape[0]):
                plane = part[k]
                candidates = np.zeros(plane.shape, dtype=bool)
                if tags is not None:
                    candidates |= (plane >= tags[0]) & (plane <= tags[1])
                if constant is not None:
                    candidates |= plane == constant
                if candidates.any():
                    mask[k] |= _edge_connected(candidates)
        yield s, mask


def may_have_padding(volume: Any, *, padding: tuple[float, float] | None = None) -> bool:
    """False when the CT certainly holds no padding (no padding tags, no value below :data:`PADDING_BELOW_HU`, no
    constant non-air border): one pass over the values, no mask. True means :func:`padding_mask` is worth making."""
    arr = _array(volume)
    if arr.dtype.kind == "u" or not arr.size:
        return False
    tags = padding if padding is not None else padding_range(volume)
    return tags is not None or _corner_constant(arr) is not None or float(arr.min()) < PADDING_BELOW_HU


def fill_padding(volume: Any, mask: np.ndarray | None = None, *, padding: tuple[float, float] | None = None
                 ) -> np.ndarray:
    """The CT array with its padding read as air (:data:`AIR_HU`): the array itself when there is no padding,
    otherwise a copy in the same dtype (the stored values are never changed).

    Parameters
    ----------
    volume : Volume or ndarray (Z, Y, X)
    mask : ndarray of bool, optional
        The padding (default: :func:`padding_mask`).
    padding : (low, high), optional
        HU range of the DICOM padding tags, for :func:`padding_mask`.
    """
    arr = _array(volume)
    if mask is None:
        if arr.dtype.kind == "u" or not arr.size:
            return arr
        tags = padding if padding is not None else padding_range(volume)
        if not may_have_padding(arr, padding=tags):
            return arr  # the usual case: one pass over the values, no mask and no copy
        slabs = _slab_masks(arr, tags, _corner_constant(arr))
    else:
        slabs = ((slice(z0, z0 + _SLAB), mask[z0 : z0 + _SLAB]) for z0 in range(0, arr.shape[0], _SLAB))
    out = None
    air = np.asarray(AIR_HU, dtype=arr.dtype)
    for s, part in slabs:
        if out is None and part.any():
            out = np.array(arr, copy=True)  # the first padding found: copy once, fill slab by slab
        if out is not None:
            np.copyto(out[s], air, where=part)
    return arr if out is None else out
