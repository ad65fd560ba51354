"""Readers: NIfTI, NRRD, MHA/MHD and DICOM series, returned in the canonical orientation."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..volume import Volume
from ._sitk import LABEL_MAX, SUPPORTED_SUFFIXES, from_sitk, label_dtype
from ._verify import Damaged, scan

_SERIES_UID = "0020|000e"
_SERIES_DESCRIPTION = "0008|103e"


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def list_dicom_series(folder: str | os.PathLike) -> list[dict]:
    """List the DICOM series in a folder.

    Returns
    -------
    list of dict
        One dict per series with ``uid``, ``files`` (sorted by slice position), ``n_slices`` and ``description``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    reader = sitk.ImageSeriesReader()
    series = []
    for uid in reader.GetGDCMSeriesIDs(str(folder)):
        files = list(reader.GetGDCMSeriesFileNames(str(folder), uid))
        description = ""
        try:
            info = sitk.ImageFileReader()
            info.SetFileName(files[0])
            info.ReadImageInformation()
            if info.HasMetaDataKey(_SERIES_DESCRIPTION):
                description = info.GetMetaData(_SERIES_DESCRIPTION).strip()
        except RuntimeError:
            pass
        series.append({"uid": uid, "files": files, "n_slices": len(files), "description": description})
    return series


def _series_of_file(path: Path) -> str:
    info = sitk.ImageFileReader()
    info.SetFileName(str(path))
    info.ReadImageInformation()
    return info.GetMetaData(_SERIES_UID).strip() if info.HasMetaDataKey(_SERIES_UID) else ""


def _read_dicom(folder: Path, series: str | None, file_hint: Path | None) -> Volume:
    found = list_dicom_series(folder)
    if not found:
        raise ValueError(
            f"no DICOM series found in {folder}; point to a folder of DICOM slices or to a NIfTI/NRRD/MHA file"
        )
    if series is None and file_hint is not None:
        series = _series_of_file(file_hint)
    if series is None:
        if len(found) > 1:
            listing = "\n".join(f"  {s['uid']!r}: {s['n_slices']} slices {s['description']}" for s in found)
            raise ValueError(
                f"{folder} holds {len(found)} DICOM series; choose one with "
                f"read_volume(path, series=<uid>) (CLI: --series <uid>) or open one of its files:\n{listing}"
            )
        chosen = found[0]
    else:
        matches = [s for s in found if s["uid"] == series or (s["uid"].strip() == str(series).strip())]
        if not matches:
            known = ", ".join(repr(s["uid"]) for s in found)
            raise ValueError(f"DICOM series {series!r} is not in {folder}; series found: {known}")
        chosen = matches[0]
    if chosen["n_slices"] < 2:
        raise ValueError(
            f"DICOM series {chosen['uid']!r} in {folder} has a single slice; a CT volume needs the whole series"
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(chosen["files"])
    image = reader.Execute()  # rescale slope/intercept are applied by GDCM
    modality = ""
    try:
        info = sitk.ImageFileReader()
        info.SetFileName(chosen["files"][0])
        info.ReadImageInformation()
        modality = info.GetMetaData("0008|0060").strip() if info.HasMetaDataKey("0008|0060") else ""
    except RuntimeError:
        pass
    if modality and modality.upper() != "CT":
        warnings.warn(
            f"DICOM series in {folder} has modality {modality!r}, not CT; HU thresholds and models assume CT "
            "in Hounsfield units, so results on it are meaningless",
            UserWarning,
            stacklevel=3,
        )
    return from_sitk(image, path=str(folder), dicom_series=chosen["uid"], dicom_files=len(chosen["files"]),
                     modality=modality or "CT")


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; check the path (supported: {', '.join(SUPPORTED_SUFFIXES)}, "
                                "or a DICOM series folder)")
    return p


def _check_file(path: Path) -> None:
    """Refuse an empty, cut-off or corrupted file, and a NIfTI header whose geometry cannot be used."""
    try:
        found = scan(path)
    except Damaged as exc:
        raise ValueError(
            f"cannot read {path}: it is truncated or damaged ({exc}); copy or download it again "
            "(an interrupted transfer or a full disk causes this)"
        ) from None
    if found.format == "nifti":
        _check_nifti_header(path, found.header)


def _check_nifti_header(path: Path, hdr: dict) -> None:
    if hdr["version"] == 2:
        raise ValueError(
            f"{path} is a NIfTI-2 file, which the ITK reader used here cannot open; save it as NIfTI-1, e.g. "
            "with nibabel: nib.save(nib.Nifti1Image.from_image(nib.load(path)), 'scan_nifti1.nii.gz')"
        )
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


def read_volume(path: str | os.PathLike, *, series: str | None = None) -> Volume:
    """Read a CT volume in Hounsfield units, reoriented so axis 0 runs inferior -> superior.

    Parameters
    ----------
    path : str or path
        NIfTI (``.nii``, ``.nii.gz``), NRRD, MHA/MHD, a DICOM series folder, or any file of a DICOM series.
    series : str, optional
        DICOM series instance UID, needed when a folder holds several series.

    Returns
    -------
    Volume
        ``array`` as stored (rescale slope and intercept applied, e.g. int16 HU), with spacing, origin,
        direction in (z, y, x) order and the file's orientation in ``source_orientation``.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        The file is not a readable 3D image, or a folder holds several DICOM series and none was chosen.

    Examples
    --------
    >>> import napari_ctorgans as ct
    >>> vol = ct.read_volume("scan.nii.gz")  # doctest: +SKIP
    >>> vol.array[vol.shape[0] // 2]  # an axial slice  # doctest: +SKIP
    """
    p = _check_path(path)
    if p.is_dir():
        return _read_dicom(p, series, None)
    if _is_dicom_file(p) or p.suffix.lower() == ".dcm":
        return _read_dicom(p.parent, series, p)
    _check_file(p)
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise ValueError(
            f"cannot read {p} as a CT volume ({first}); supported: {', '.join(SUPPORTED_SUFFIXES)} "
            "or a DICOM series folder"
        ) from None
    return from_sitk(image, path=str(p))


def read_labels(path: str | os.PathLike) -> Volume:
    """Read a label map (integer values, CT-ORG convention) in the canonical orientation.

    Raises
    ------
    ValueError
        The file holds non-integer values (it is probably an image, not a label map), negative labels, or labels
        above :data:`~napari_ctorgans.io._sitk.LABEL_MAX`.
    """
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
