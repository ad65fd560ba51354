"""The one type that flows everywhere: a 3D array in (z, y, x) with its physical geometry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


def as_spacing(spacing: Any, name: str = "spacing") -> tuple[float, float, float]:
    """Validate a spacing given as one number (isotropic) or three numbers in (z, y, x) order."""
    if np.isscalar(spacing):
        values = (float(spacing),) * 3
    else:
        try:
            values = tuple(float(s) for s in spacing)
        except TypeError:
            raise TypeError(f"{name} must be a number or 3 numbers (z, y, x) in mm, got {spacing!r}") from None
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"{name} must have 3 positive finite values (z, y, x) in mm, got {spacing!r}; "
            "pass e.g. spacing=(2.0, 0.8, 0.8) or one number for isotropic voxels"
        )
    return values  # type: ignore[return-value]


#: plausible voxel size of a CT in mm (micro-CT to the coarsest clinical slices), as computations take it
CT_SPACING_RANGE_MM = (0.01, 50.0)


def check_ct_spacing(spacing: Any, name: str = "spacing") -> tuple[float, float, float]:
    """:func:`as_spacing`, also refusing voxel sizes no CT has (outside :data:`CT_SPACING_RANGE_MM`)."""
    values = as_spacing(spacing, name)
    lo, hi = CT_SPACING_RANGE_MM
    if not all(lo <= v <= hi for v in values):
        raise ValueError(
            f"{name} {tuple(float(f'{v:.6g}') for v in values)} mm (z, y, x) is not a CT voxel size: each value must "
            f"lie between {lo:g} and {hi:g} mm; check the file's header or the spacing= given (it is in mm, e.g. "
            "spacing=(2.0, 0.8, 0.8))"
        )
    return values


def check_volume_array(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Check that an array is a non-empty 3D (z, y, x) volume without NaN; return it as an ndarray."""
    arr = np.asarray(array)
    if arr.ndim != 3:
        hint = (
            "a single slice cannot be processed as a volume; load the whole series"
            if arr.ndim == 2
            else "select one channel or time point first, e.g. array[0]"
        )
        raise ValueError(f"{name} must be a 3D (z, y, x) volume, got {arr.ndim}D with shape {arr.shape}: {hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); a CT volume needs at least one voxel per axis")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n} NaN or infinite values; replace them first, e.g. np.nan_to_num(array, nan=-1024)"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


@dataclass
class Volume:
    """A CT volume (or label map) with its geometry.

    Attributes
    ----------
    array : ndarray, shape (Z, Y, X)
        Voxel values; CT in Hounsfield units as read (never rescaled), labels as integers.
    spacing : tuple of 3 float
        Voxel size in mm, (z, y, x) order.
    origin : tuple of 3 float
        Physical position (mm) of the centre of voxel (0, 0, 0), (z, y, x) order in the canonical frame.
    direction : ndarray, shape (3, 3)
        Direction cosines in (z, y, x) order: column k is the physical direction of array axis k.
        Identity for an axis-aligned scan in the canonical orientation (axis 0 inferior -> superior,
        axis 1 anterior -> posterior, axis 2 right -> left; DICOM "LPS").
    source_orientation : str or None
        Orientation code (DICOM convention, e.g. "RAS", "LPS") of the file the volume was read from; label maps
        are written back in it.
    path : str or None
        The file or folder the volume was read from.
    metadata : dict
        Anything else worth carrying (e.g. DICOM series UID; ``pixel_padding_hu``, the HU range that the DICOM
        padding tags name, :func:`napari_ctorgans.padding_mask`).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    source_orientation: str | None = None
    path: str | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = check_volume_array(self.array)
        self.spacing = as_spacing(self.spacing)
        origin = tuple(float(o) for o in np.asarray(self.origin, dtype=float).ravel())
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise ValueError(f"origin must have 3 finite values (z, y, x) in mm, got {self.origin!r}")
        self.origin = origin  # type: ignore[assignment]
        direction = np.asarray(self.direction, dtype=float)
        if direction.shape != (3, 3):
            raise ValueError(f"direction must be a 3x3 matrix, got shape {direction.shape}")
        self.direction = direction

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    def with_array(self, array: np.ndarray, **changes: Any) -> "Volume":
        """A Volume with the same geometry and a new array (of the same shape unless geometry changes too)."""
        arr = np.asarray(array)
        if arr.shape != self.array.shape and "spacing" not in changes:
            raise ValueError(f"array shape {arr.shape} does not match the volume's shape {self.array.shape}")
        return replace(self, array=arr, metadata=dict(self.metadata), **changes)

    def same_grid(self, other: "Volume", atol: float = 1e-3) -> bool:
        """True when both volumes have the same shape, spacing, origin and direction."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def napari_kwargs(self) -> dict:
        """``scale`` and ``translate`` for a napari layer so the volume shows in physical proportions."""
        return {"scale": tuple(self.spacing), "translate": tuple(self.origin)}

    def geometry(self) -> dict:
        """Plain-data geometry (for layer metadata and checkpoints); with ``pixel_padding_hu`` when the DICOM
        padding tags named the padding outside the reconstruction field (:mod:`napari_ctorgans.padding`)."""
        out = {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": self.direction.tolist(),
            "source_orientation": self.source_orientation,
            "shape": list(self.shape),
            "path": self.path,
        }
        if self.metadata.get("pixel_padding_hu") is not None:
            out["pixel_padding_hu"] = [float(v) for v in self.metadata["pixel_padding_hu"]]
        return out

    @classmethod
    def from_geometry(cls, array: np.ndarray, geometry: dict) -> "Volume":
        """Rebuild a Volume from an array and the dict made by :meth:`geometry`."""
        return cls(
            array=array,
            spacing=tuple(geometry["spacing"]),
            origin=tuple(geometry["origin"]),
            direction=np.asarray(geometry.get("direction", np.eye(3))),
            source_orientation=geometry.get("source_orientation"),
            path=geometry.get("path"),
            metadata={"pixel_padding_hu": tuple(geometry["pixel_padding_hu"])}
            if geometry.get("pixel_padding_hu") is not None else {},
        )

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing=({sp}) mm, "
            f"orientation={self.source_orientation or 'canonical'})"
        )
