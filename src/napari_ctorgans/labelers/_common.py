"""Input checks and small helpers shared by the labelers."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

from ..volume import Volume, as_spacing, check_ct_spacing, check_volume_array


def as_ct(volume, spacing=None, *, name: str = "volume") -> tuple[np.ndarray, tuple[float, float, float]]:
    """Return ``(array, spacing)`` of a CT given as a :class:`Volume` or an array plus ``spacing``.

    Values that cannot be HU are refused (:func:`~napari_ctorgans.ctcheck.hu_problem`: 8-bit or 0..1 images,
    values above 40,000). Padding outside the reconstruction field (values far below air, the DICOM padding tags,
    a constant non-air border: :mod:`napari_ctorgans.padding`) reads as air in the returned array, a copy made only
    when there is padding; the caller's array is never changed.
    """
    from ..ctcheck import hu_problem
    from ..padding import fill_padding, padding_range

    tags = None
    if isinstance(volume, Volume):
        arr, sp = volume.array, volume.spacing
        tags = padding_range(volume)
        if spacing is not None:
            sp = as_spacing(spacing)
    elif isinstance(volume, np.ndarray):
        if spacing is None:
            raise TypeError(
                f"{name} is a bare array; pass spacing=(sz, sy, sx) in mm too, or a napari_ctorgans.Volume"
            )
        arr, sp = volume, as_spacing(spacing)
    else:
        raise TypeError(f"{name} must be a napari_ctorgans.Volume (or an ndarray with spacing=), got {type(volume)!r}")
    sp = check_ct_spacing(sp, f"the spacing of {name}")  # 1e-30 mm would overflow the filters' sizes
    arr = check_volume_array(arr, name)
    if arr.dtype == np.bool_:
        raise TypeError(f"{name} must be a CT in Hounsfield units, got a boolean mask")
    problem = hu_problem(arr, name)
    if problem:
        raise ValueError(problem)
    return fill_padding(arr, padding=tags), sp


def looks_like_ct(arr: np.ndarray, *, what: str) -> bool:
    """Warn and return False when the image has no air at all (a CT always shows some air outside the body)."""
    if float(arr.min()) > -500:
        warnings.warn(
            f"the image has no value below -500 HU (minimum {float(arr.min()):g}): it does not look like a CT in "
            f"Hounsfield units; {what} is empty",
            UserWarning,
            stacklevel=3,
        )
        return False
    return True


def check_range(value, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be two numbers (low, high) in HU, got {value!r}") from None
    if not lo < hi:
        raise ValueError(f"{name} must be (low, high) with low < high, got {value!r}")
    return lo, hi


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = "zero or positive" if allow_zero else "positive"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return v


def check_mask_like(mask, shape, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have the volume's shape {tuple(shape)}, got {m.shape}")
    if m.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean mask, got dtype {m.dtype}")
    return m


def label_sizes(lab: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Voxel count of each label 0..n of a label image (only where ``where`` is True, when given), in z-slabs
    (bincount copies its input to int64)."""
    sizes = np.zeros(n + 1, dtype=np.int64)
    step = max(1, (1 << 22) // max(1, lab[0].size)) if lab.ndim == 3 else lab.shape[0]
    for z in range(0, lab.shape[0], step):
        part = lab[z : z + step] if where is None else lab[z : z + step][where[z : z + step]]
        sizes += np.bincount(part.ravel(), minlength=n + 1)
    return sizes


def border_labels(lab: np.ndarray) -> np.ndarray:
    """The labels (> 0) of a 3D label image found on any of its six faces."""
    faces = [lab[0], lab[-1], lab[:, 0], lab[:, -1], lab[:, :, 0], lab[:, :, -1]]
    ids = np.unique(np.concatenate([f.ravel() for f in faces]))
    return ids[ids > 0]


def largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = label_sizes(lab, n)
    sizes[0] = 0
    return lab == int(sizes.argmax())


def axial_boxes(mask: np.ndarray):
    """Yield ``(z, (rows, cols))``: the bounding box, as slices, of every axial slice of ``mask`` that is not empty."""
    for z in range(mask.shape[0]):
        rows = np.flatnonzero(mask[z].any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(mask[z].any(axis=0))
        yield z, (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def fill_holes_axial(mask: np.ndarray) -> np.ndarray:
    """Fill, in every axial slice ``mask[z]``, the holes not connected to the slice border."""
    out = np.zeros(mask.shape, dtype=bool)
    for z, sl in axial_boxes(mask):
        out[z][sl] = ndi.binary_fill_holes(mask[z][sl])
    return out


def bbox(mask: np.ndarray, margin=(0, 0, 0)) -> tuple[slice, ...] | None:
    """Bounding box of a mask as slices, grown by ``margin`` voxels per axis (None when the mask is empty)."""
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(idx[0]) - margin[ax], 0), min(int(idx[-1]) + 1 + margin[ax], mask.shape[ax])))
    return tuple(out)


def strides(spacing, work_mm: float) -> tuple[int, int, int]:
    """Integer subsampling factors that bring ``spacing`` close to (not above) ``work_mm`` on every axis."""
    if not work_mm or work_mm <= 0:
        return (1, 1, 1)
    return tuple(max(1, int(work_mm // s + 1e-9)) for s in spacing)  # type: ignore[return-value]


def upsample(mask: np.ndarray, factors, shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a subsampled mask (``full[::f]``) back to ``shape``."""
    out = mask
    for ax, f in enumerate(factors):
        if f > 1:
            out = np.repeat(out, f, axis=ax)
    return out[tuple(slice(0, n) for n in shape)]
