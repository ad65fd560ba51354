"""Readers: NIfTI, NRRD, MHA/MHD and DICOM series, returned in the canonical orientation."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..volume import Volume
from ._sitk import LABEL_MAX, SUPPORTED_SUFFIXES, check_geometry, from_sitk, label_dtype, volume_from_array
from ._nifti import array_from_voxels, read_nifti2
from ._verify import Damaged, Scan, scan
from ._verify import is_dicom_file as _is_dicom_file


def _read_dicom(*args):  # the DICOM reader, and pydicom, load on first use: reading NIfTI does not need them
    from ._dicom import _read_dicom as read

    return read(*args)


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; check the path (supported: {', '.join(SUPPORTED_SUFFIXES)}, "
                                "or a DICOM series folder)")
    if not (p.is_file() or p.is_dir()):  # a pipe or a device would block the reader or never end
        raise ValueError(f"{p} is not a regular file or a folder (a pipe, socket or device); give the scan's file "
                         "or its DICOM series folder (copy a stream into a file first)")
    return p


def _check_file(path: Path) -> Scan:
    """Refuse an empty, cut-off or corrupted file, and a NIfTI header whose geometry cannot be used."""
    try:
        found = scan(path, keep_voxels=True)
    except Damaged as exc:
        raise ValueError(
            f"cannot read {path}: it is truncated or damaged ({exc}); copy or download it again "
            "(an interrupted transfer or a full disk causes this)"
        ) from None
    if found.format == "nifti":
        _check_nifti_header(path, found.header)
    return found


def _check_nifti_spacing(path: Path, hdr: dict, image: sitk.Image) -> None:
    """ITK takes the spacing from pixdim: warn when the sform's own axis lengths disagree (one of them is wrong)."""
    if hdr["sform_code"] <= 0 or image.GetDimension() != 3:
        return
    sform = np.linalg.norm(np.asarray(hdr["srow"]).reshape(3, 4)[:, :3], axis=0)
    used = np.asarray(image.GetSpacing())
    if not np.allclose(sform, used, rtol=1e-3, atol=1e-4):
        used_mm, sform_mm = tuple(used.round(6).tolist()), tuple(sform.round(6).tolist())
        warnings.warn(
            f"{path}: its NIfTI header disagrees with itself: pixdim gives the voxel spacing {used_mm} mm (x, y, z) "
            f"but the sform's axes are {sform_mm} mm long; using {used_mm} mm from pixdim, as ITK does. Check the "
            "voxel size against the scanner's and fix the header",
            UserWarning,
            stacklevel=3,
        )


def _check_nifti_header(path: Path, hdr: dict) -> None:
    spatial = hdr["pixdim"][1 : 1 + min(3, hdr["ndim"])]
    if not all(np.isfinite(p) and p != 0 for p in spatial):
        raise ValueError(
            f"{path} has voxel spacing pixdim[1:4] = {spatial} in its NIfTI header; zero, NaN or infinite spacing "
            "cannot place the voxels in space (ITK would silently assume 1 mm). Set the true voxel size in the "
            "header (e.g. nibabel: img.header.set_zooms(...)) or export the scan again"
        )
    for code, values, names in ((hdr["sform_code"], hdr["srow"], "srow_x/y/z (sform)"),
                                (hdr["qform_code"], hdr["quatern"], "quatern_b/c/d, qoffset_x/y/z (qform)")):
        if code > 0 and not all(np.isfinite(v) for v in values):
            raise ValueError(
                f"{path} has NaN or infinite values in {names} of its NIfTI header, so its position in space is "
                "unknown (ITK would silently use 0). Fix the header or export the scan again"
            )
        if code > 0:
            break  # ITK uses the sform when it is set, else the qform


def read_volume(path: str | os.PathLike, *, series: str | None = None, resample_irregular: bool = False) -> Volume:
    """Read a CT volume in Hounsfield units, reoriented so axis 0 runs inferior -> superior.

    Parameters
    ----------
    path : str or path
        NIfTI (``.nii``, ``.nii.gz``), NRRD, MHA/MHD, a DICOM series folder, or any file of a DICOM series.
    series : str, optional
        DICOM series instance UID, needed when a folder holds several series.
    resample_irregular : bool
        Read an unevenly spaced DICOM series by interpolating onto an even grid between the true slice positions
        (with a warning). By default such a series is refused, because missing or displaced slices look the same.
        A gantry-tilted series is always resampled onto an orthogonal grid, with a warning.

    Returns
    -------
    Volume
        ``array`` as stored (rescale slope and intercept applied, e.g. int16 HU), with spacing, origin,
        direction in (z, y, x) order and the file's orientation in ``source_orientation``. From a DICOM series,
        ``metadata`` holds ``dicom_series`` (the UID), ``dicom_files`` and ``dicom_sop_uids`` (the source slices
        along the array's slice axis ``dicom_slice_axis``: one per array slice unless ``dicom_resampled``).

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        The file is not a readable 3D image, a folder holds several DICOM series and none was chosen, or a DICOM
        series has damaged, duplicated, missing, displaced, re-oriented or resized slices (each named).

    Examples
    --------
    >>> import napari_ctorgans as ct
    >>> vol = ct.read_volume("scan.nii.gz")  # doctest: +SKIP
    >>> vol.array[vol.shape[0] // 2]  # an axial slice  # doctest: +SKIP
    """
    p = _check_path(path)
    if p.is_dir():
        return _read_dicom(p, series, None, resample_irregular)
    if _is_dicom_file(p) or p.suffix.lower() == ".dcm":
        return _read_dicom(p.parent, series, p, resample_irregular)
    found = _check_file(p)
    nifti = found.header if found.format == "nifti" else None
    fast = None  # (array, ITK's reading of the header) of a NIfTI-1 read from its voxel bytes
    try:
        image = None
        if nifti and nifti["version"] == 2:
            image = read_nifti2(p, nifti)
        elif nifti and (found.voxels is not None or not p.name.lower().endswith(".gz")):
            fast = array_from_voxels(p, nifti, found.voxels)
        found.voxels = None
        if image is None and fast is None:
            image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise ValueError(
            f"cannot read {p} as a CT volume ({first}); supported: {', '.join(SUPPORTED_SUFFIXES)} "
            "or a DICOM series folder"
        ) from None
    geometry = image if fast is None else fast[1]
    if nifti:
        check_geometry(geometry, str(p))  # refuse before warning about it
        _check_nifti_spacing(p, nifti, geometry)
    if fast is not None:
        return volume_from_array(fast[0], fast[1], path=str(p))
    return from_sitk(image, path=str(p))


def read_labels(path: str | os.PathLike, *, like: Volume | str | os.PathLike | None = None) -> Volume:
    """Read a label map (integer values, CT-ORG convention) in the canonical orientation.

    Parameters
    ----------
    path : str or path
        A label image (NIfTI, NRRD, MHA/MHD), a DICOM-SEG file, or an RTSTRUCT file.
    like : Volume or path, optional
        For DICOM-SEG and RTSTRUCT: the CT they belong to (or its series folder); the labels come on its grid.
        Without it the CT is looked for next to the file; an RTSTRUCT needs it, a DICOM-SEG otherwise comes on
        the grid of its own frames. Segment names are in ``metadata["segment_names"]``.

    Raises
    ------
    ValueError
        The file holds non-integer values (it is probably an image, not a label map), negative labels, or labels
        above :data:`~napari_ctorgans.io._sitk.LABEL_MAX`.
    """
    from .dicom_seg import dicom_kind, read_dicom_labels

    kind = dicom_kind(path)
    if kind is not None:
        return read_dicom_labels(path, like, kind)
    return as_labels(read_volume(path), path)


def as_labels(vol: Volume, path: str | os.PathLike | None = None) -> Volume:
    """Check that a volume read from ``path`` holds labels (integers 0..LABEL_MAX); store them compactly."""
    arr = vol.array
    name = path or vol.path or "the label map"
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr))):
        raise ValueError(f"{name} holds non-integer values; it looks like an image, not a label map")
    lo, hi = (arr.min().item(), arr.max().item()) if arr.size else (0, 0)
    if lo < 0:
        raise ValueError(f"{name} holds negative values (min {lo:g}); label maps need values >= 0 "
                         "(it is probably a CT image: open it with read_volume)")
    if hi > LABEL_MAX:
        raise ValueError(f"{name} holds the label value {hi:g}, above the largest supported label {LABEL_MAX}; "
                         "it is probably an image or damaged, not a label map")
    vol.array = arr.astype(label_dtype(int(hi)), copy=False)
    return vol


def looks_like_labels(vol: Volume, max_labels: int = 32) -> bool:
    """Decide from the content: whole numbers 0..255 with few distinct values are a label map, not CT."""
    arr = vol.array
    if arr.dtype.kind not in "biuf" or not arr.size:
        return False
    sample = arr[:: max(1, arr.shape[0] // 8)]
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(sample)) or not np.array_equal(sample, np.round(sample))):
        return False
    if arr.min() < 0 or arr.max() > 255:
        return False
    return len(np.unique(sample)) <= max_labels
