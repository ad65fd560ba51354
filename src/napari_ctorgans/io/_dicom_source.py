"""What DICOM-SEG and RTSTRUCT need from the CT series a label map belongs to, and the grid they share.

A :class:`~napari_ctorgans.volume.Volume` holds the CT in the canonical (z, y, x) orientation; DICOM objects
describe planes by Image Position and Orientation (Patient). :func:`plane_indices` is the one mapping between a
DICOM plane's pixels and the Volume's voxels, used in both directions by the writers and readers.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np

from ..organs import IGNORE_LABEL
from ..volume import Volume
from ._dicom import _is_dicom_file as _is_dicom
from ._verify import Damaged
from ._write import atomic_output

_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
}


def _needs_series(like: Volume, what: str, why: str) -> ValueError:
    return ValueError(
        f"{what} needs the source DICOM series, but the CT {like.path or '(made in memory)'} {why}; read the CT "
        "from its DICOM series folder (ct.read_volume(folder), or open the folder in napari) and write again, "
        "or write the labels as NIfTI (--format nifti)"
    )


def _candidate_files(like: Volume, what: str) -> list[Path]:
    files = like.metadata.get("dicom_files")
    if isinstance(files, (list, tuple)) and files:
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(files)} instances of the DICOM series {like.path} are missing "
                f"(e.g. {missing[0]}); {what} must reference every slice: restore the complete series and read it "
                "again. Nothing was written."
            )
        return [Path(f) for f in files]
    if not like.path:
        raise _needs_series(like, what, "was not read from a file")
    p = Path(like.path)
    folder = p if p.is_dir() else p.parent
    if not p.exists():
        raise FileNotFoundError(f"the DICOM series {p} of the CT no longer exists; {what} must reference it. "
                                "Restore the series and read it again. Nothing was written.")
    if not (p.is_dir() or _is_dicom(p)):
        raise _needs_series(like, what, f"was read from {p.name}, not from a DICOM series")
    return sorted(f for f in folder.iterdir() if f.is_file() and _is_dicom(f))


def _normal(ds) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(iop[:3], iop[3:])


def _repair_uids(datasets: list, folder: str) -> None:
    """Fill identifying attributes that an anonymiser emptied, from the file meta or derived deterministically."""
    from pydicom.uid import generate_uid

    for ds in datasets:
        meta = getattr(ds, "file_meta", None)
        if not ds.get("SOPInstanceUID") and meta is not None:
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        if not ds.get("SOPClassUID") and meta is not None:
            ds.SOPClassUID = meta.MediaStorageSOPClassUID
    seed = [str(datasets[0].get("FrameOfReferenceUID", "")), *(str(ds.SOPInstanceUID) for ds in datasets)]
    derived = []
    for key in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not datasets[0].get(key):
            uid = generate_uid(entropy_srcs=[key, *seed])
            for ds in datasets:
                setattr(ds, key, uid)
            derived.append(key)
    if derived:
        warnings.warn(
            f"the DICOM series {folder} has empty {' and '.join(derived)} (an anonymiser removed them); the "
            "written object refers to UIDs derived from its instances, the same each time",
            UserWarning,
            stacklevel=4,
        )


def source_series(like: Volume, what: str = "DICOM-SEG", *, resampled_ok: bool = False) -> list:
    """The CT's DICOM instances (headers only) in stacking order, checked against the CT's grid.

    Parameters
    ----------
    like : Volume
        A CT read from a DICOM series (``volume.metadata["dicom_files"]`` when the reader gives it, otherwise the
        series in ``volume.path``).
    what : str
        The object being made, for messages.
    resampled_ok : bool
        Accept a CT that the reader resampled from a gantry-tilted or unevenly spaced series (its voxels are not
        the source pixels; the caller places its frames by their own positions).

    Raises
    ------
    ValueError
        The CT did not come from DICOM, or the series on disk no longer matches the CT.
    FileNotFoundError
        Instances of the series are missing.
    """
    import pydicom

    resampled = bool(like.metadata.get("dicom_resampled"))
    if resampled and not resampled_ok:
        raise ValueError(
            f"the CT {like.path} was resampled when read (a gantry-tilted or unevenly spaced series), so its voxels "
            f"are not the source slices a {what} must lie on; write the labels as NIfTI (--format nifti), or "
            "resample them onto the scanner's slices in the planning system (DICOM-SEG can hold them as they are)"
        )
    datasets = []
    series = like.metadata.get("dicom_series")
    for f in _candidate_files(like, what):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        sop_class = str(ds.get("SOPClassUID") or getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
        if sop_class not in _IMAGE_SOP_CLASSES or "ImagePositionPatient" not in ds:
            continue  # a SEG or RTSTRUCT saved next to the slices, a scout, ...
        if series and str(ds.get("SeriesInstanceUID", "")).strip() != str(series).strip():
            continue
        datasets.append(ds)
    n = like.shape[_slice_axis(like, datasets)] if datasets else 0
    if not datasets:
        raise _needs_series(like, what, "has no CT image files in its folder")
    if len(datasets) != n and not (resampled and "dicom_files" in like.metadata):
        raise FileNotFoundError(
            f"the DICOM series {like.path} now holds {len(datasets)} CT instances but the CT has {n} slices: "
            f"instances are missing or were added; {what} must reference exactly the slices labelled. Restore the "
            "series as it was read (or read it again and label that). Nothing was written."
        )
    normal = _normal(datasets[0])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    _repair_uids(datasets, str(like.path))
    return datasets


def _slice_axis(like: Volume, datasets: list) -> int:
    """The Volume axis along the series' slice normal."""
    normal_zyx = _normal(datasets[0])[::-1]
    return int(np.argmax(np.abs(np.asarray(like.direction).T @ normal_zyx)))


def plane_indices(like: Volume, position, orientation, pixel_spacing, rows: int, cols: int) -> tuple | None:
    """Voxel indices (k, j, i), each ``(rows, cols)``, of the pixels of a DICOM plane in ``like``.

    Returns None when the plane is not a plane of the grid of ``like`` (other spacing, orientation or position).
    """
    a = np.asarray(like.direction) @ np.diag(like.spacing)  # (z, y, x) mm per (z, y, x) index step
    inv = np.linalg.inv(a)
    iop = np.asarray(orientation, dtype=float)
    dr, dc = (float(v) for v in pixel_spacing)
    base = inv @ (np.asarray(position, dtype=float)[::-1] - np.asarray(like.origin))
    step_c = inv @ (iop[:3][::-1] * dc)  # along a row: next column
    step_r = inv @ (iop[3:][::-1] * dr)  # down a column: next row
    r = np.arange(rows, dtype=float)[:, None]
    c = np.arange(cols, dtype=float)[None, :]
    out = []
    for axis in range(3):
        cont = base[axis] + step_r[axis] * r + step_c[axis] * c
        idx = np.rint(cont)
        if np.abs(cont - idx).max() > 0.05 or idx.min() < 0 or idx.max() > like.shape[axis] - 1:
            return None
        out.append(idx.astype(np.intp))
    return tuple(out)


def check_labels(labels, like: Volume, what: str) -> np.ndarray:
    """A label map on the grid of ``like``, as an unsigned integer array (refusing an empty one)."""
    if isinstance(labels, Volume):
        if not labels.same_grid(like):
            raise ValueError(
                f"the label map (shape {labels.shape}, spacing {labels.spacing}, origin {labels.origin}) is not on "
                f"the grid of the CT {like.path or '(made in memory)'} (shape {like.shape}, spacing {like.spacing}, origin {like.origin}); "
                f"{what} must match the source slices: use the labels made for this CT. Nothing was written."
            )
        labels = labels.array
    arr = np.asarray(labels)
    if arr.shape != like.shape:
        raise ValueError(
            f"labels shape {arr.shape} does not match the CT {like.path or '(made in memory)'} of shape {like.shape}; {what} must match "
            "the source slices: use the labels made for this CT. Nothing was written."
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
        raise ValueError(f"labels must be non-negative integers, got dtype {arr.dtype}; use labels.astype(np.uint8)")
    if not np.any((arr != 0) & (arr != IGNORE_LABEL)):
        raise ValueError(
            f"the label map is empty (no organ labelled, only background or the ignore value {IGNORE_LABEL}); a "
            f"{what} without segments is not useful and is not written. Label at least one organ first."
        )
    unlabelled = int(np.count_nonzero(arr == IGNORE_LABEL))
    if unlabelled:  # a reader would take them for background, and the next training would learn them as such
        raise ValueError(
            f"the label map marks {unlabelled} voxels with {IGNORE_LABEL} ('not labelled', the value of partial "
            f"labels); a {what} holds organs only, so they would come back as background. Save partial labels as "
            "NIfTI (--format nifti), or set those voxels to 0 first if they are background. Nothing was written."
        )
    return arr


def frame_indices(like: Volume, datasets: list, what: str) -> list[tuple]:
    """:func:`plane_indices` of every source instance, refusing a series that is not the CT's grid."""
    out = []
    for ds in datasets:
        idx = plane_indices(like, ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing,
                            int(ds.Rows), int(ds.Columns))
        if idx is None:
            raise ValueError(
                f"the DICOM instance {getattr(ds, 'filename', ds.SOPInstanceUID)} does not lie on the grid of the CT "
                f"{like.path}; the series changed since the CT was read. Read the series again and label that; "
                f"no {what} was written."
            )
        out.append(idx)
    return out


def _serialised(dataset) -> bytes:
    """The bytes of ``dataset`` as a DICOM file (preamble, file meta), made in memory."""
    buf = io.BytesIO()
    dataset.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _content(ds) -> tuple[str, str, int]:
    """What a SEG or RTSTRUCT must read back with: its SOP Instance UID, a sha256 of its pixel data, its contours."""
    pixels = hashlib.sha256(bytes(ds.PixelData)).hexdigest() if "PixelData" in ds else ""
    contours = sum(len(roi.get("ContourSequence", [])) for roi in ds.get("ROIContourSequence", []))
    return str(ds.SOPInstanceUID), pixels, contours


def _verify_dicom(tmp: Path, digest: bytes, expected: tuple[str, str, int]) -> None:
    """The temporary file must hold the bytes of ``digest`` and read back with pydicom as written; else Damaged."""
    import pydicom

    data = tmp.read_bytes()
    if hashlib.sha256(data).digest() != digest:
        raise Damaged(f"it reads back as {len(data)} bytes that differ from those written")
    try:
        found = _content(pydicom.dcmread(tmp))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not what was written
        raise Damaged(f"pydicom cannot read it back ({type(exc).__name__}: {exc})") from None
    if found != expected:
        raise Damaged("it does not read back with the SOP Instance UID, pixel data and contours written")


def atomic_save(dataset, path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Save a pydicom dataset (DICOM-SEG, RTSTRUCT) under ``path`` through :func:`~._write.atomic_output`.

    The file is written beside ``path`` under a temporary name, verified (the bytes read back with the same hash,
    and pydicom reads it back with the same SOP Instance UID and pixel or contour data), and only then renamed
    over ``path``: a full disk or a file-size limit leaves the previous file unchanged.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    OSError
        The file could not be written completely; the message names it, the free space and the fix.
    """
    data = _serialised(dataset)
    digest, expected = hashlib.sha256(data).digest(), _content(dataset)
    with atomic_output(path, overwrite=overwrite, verify=lambda tmp: _verify_dicom(tmp, digest, expected)) as tmp:
        tmp.write_bytes(data)
    return Path(path)
