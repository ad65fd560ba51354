"""Writers: label maps (and volumes) in the geometry of the file they belong to, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..volume import Volume
from ._sitk import SUPPORTED_SUFFIXES, to_sitk

_WRITABLE = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _atomic_write(image: sitk.Image, path: Path, *, overwrite: bool, compress: bool) -> Path:
    suffix = _suffix(path)
    if suffix not in _WRITABLE:
        raise ValueError(
            f"cannot write {path.name}: use one of {', '.join(_WRITABLE)} (DICOM output is not supported; "
            "write NIfTI next to the series instead)"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    # write everything into a temporary folder next to the target, then move into place: a crash or a full
    # disk never leaves a half-written file under the final name.
    tmpdir = Path(tempfile.mkdtemp(prefix=".ctorgans-", dir=path.parent))
    try:
        tmp = tmpdir / path.name
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as exc:
            free = shutil.disk_usage(path.parent).free
            raise OSError(
                f"could not write {path} ({str(exc).strip().splitlines()[-1]}); {free / 1e6:.0f} MB free in "
                f"{path.parent}: free some space or choose another folder. Nothing was overwritten."
            ) from None
        if suffix == ".mhd":  # the header names its data file: move the data first, then the header
            for extra in tmpdir.iterdir():
                if extra.name != path.name:
                    os.replace(extra, path.parent / extra.name)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return path


def write_labels(
    path: str | os.PathLike,
    labels: np.ndarray,
    like: Volume,
    *,
    overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Write a label map in the geometry (and orientation) of the file ``like`` was read from.

    Parameters
    ----------
    path : str or path
        ``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha`` or ``.mhd``.
    labels : ndarray (Z, Y, X), integer
        In the canonical orientation, on the grid of ``like``.
    like : Volume
        The image the labels belong to.
    overwrite : bool
        Replace an existing file (never done silently).

    Raises
    ------
    ValueError
        Shape mismatch, non-integer labels, or an unsupported suffix.
    FileExistsError
        The file exists and ``overwrite`` is False.
    """
    arr = np.asarray(labels)
    if arr.shape != like.shape:
        raise ValueError(f"labels shape {arr.shape} does not match the image shape {like.shape}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}; use labels.astype(np.uint8)")
    if arr.size and arr.min() < 0:
        raise ValueError("labels must be >= 0")
    top = int(arr.max()) if arr.size else 0
    arr = arr.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32, copy=False)
    image = to_sitk(arr, like, orientation=like.source_orientation)
    return _atomic_write(image, Path(path), overwrite=overwrite, compress=compress)


def write_volume(path: str | os.PathLike, volume: Volume, *, overwrite: bool = False, compress: bool = True) -> Path:
    """Write a volume (e.g. a phantom or a resampled CT) in its source orientation, atomically."""
    image = to_sitk(volume.array, volume, orientation=volume.source_orientation)
    return _atomic_write(image, Path(path), overwrite=overwrite, compress=compress)


__all__ = ["write_labels", "write_volume", "SUPPORTED_SUFFIXES"]
