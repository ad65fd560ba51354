"""The output formats of a label map (CLI ``--format``, cohorts, the napari writer): one table, one writer."""

from __future__ import annotations

import os
from pathlib import Path

from ..volume import Volume

#: format name -> file suffix of a label map written in it.
LABEL_FORMATS: dict[str, str] = {
    "nifti": ".nii.gz",
    "nrrd": ".nrrd",
    "mha": ".mha",
    "dicom-seg": ".dcm",
    "rtstruct": ".rtstruct.dcm",
}

#: the formats that reference the CT's DICOM series (and need it).
DICOM_FORMATS = ("dicom-seg", "rtstruct")

_BY_SUFFIX = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".mha": "mha", ".mhd": "mha",
              ".rtstruct.dcm": "rtstruct", ".dcm": "dicom-seg"}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for compound in (".nii.gz", ".rtstruct.dcm"):
        if name.endswith(compound):
            return compound
    return path.suffix.lower()


def label_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format to write ``path`` in: ``format`` when given (checked against the suffix), else from the suffix.

    Raises
    ------
    ValueError
        Unknown format, a suffix that is no label format, or a suffix that contradicts ``format``.
    """
    suffix = _suffix(Path(path))
    if format is None:
        if suffix not in _BY_SUFFIX:
            raise ValueError(f"cannot tell the format of {path}: use a suffix among {', '.join(_BY_SUFFIX)} or give "
                             f"--format among {', '.join(LABEL_FORMATS)}")
        return _BY_SUFFIX[suffix]
    fmt = str(format).lower()
    if fmt not in LABEL_FORMATS:
        raise ValueError(f"unknown label format {format!r}; choose one of {', '.join(LABEL_FORMATS)}")
    if suffix in _BY_SUFFIX and _BY_SUFFIX[suffix] != fmt and not (suffix == ".dcm" and fmt == "rtstruct"):
        raise ValueError(f"{Path(path).name} has the suffix {suffix} but the format asked for is {fmt}: give the "
                         f"output the suffix {LABEL_FORMATS[fmt]}, or drop --format")
    return fmt


def with_format_suffix(path: str | os.PathLike, format: str) -> Path:
    """``path`` with the suffix of ``format`` in place of a label-image suffix (``scan_labels.nii.gz`` ->
    ``scan_labels.dcm``)."""
    if format not in LABEL_FORMATS:
        raise ValueError(f"unknown label format {format!r}; choose one of {', '.join(LABEL_FORMATS)}")
    p = Path(path)
    suffix = _suffix(p)
    stem = p.name[: len(p.name) - len(suffix)] if suffix in _BY_SUFFIX else p.name
    return p.with_name(stem + LABEL_FORMATS[format])


def check_label_output(path: str | os.PathLike, like: Volume, format: str | None = None) -> str:
    """Check, before any work, that labels of ``like`` can be written to ``path`` in ``format``; return the format.

    DICOM-SEG and RTSTRUCT need the CT's DICOM series: a CT from a NIfTI file is refused here, not after a long
    prediction.
    """
    fmt = label_format(path, format)
    if fmt in DICOM_FORMATS:
        from ._dicom_source import source_series

        source_series(like, "DICOM-SEG" if fmt == "dicom-seg" else "RTSTRUCT")
    return fmt


def written_size(path: str | os.PathLike) -> list:
    """What identifies a complete label file on disk: the (x, y, z) size of a label image, or ``["dicom", SOP
    Instance UID]`` of a DICOM-SEG or RTSTRUCT (cohort sidecars record it and compare it on the next run).

    Raises
    ------
    ValueError
        The file cannot be read as the format its name says.
    """
    fmt = label_format(path)
    if fmt in DICOM_FORMATS:
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            return ["dicom", str(ds.SOPInstanceUID)]
        except Exception as exc:  # noqa: BLE001 - pydicom raises several types for damaged files
            raise ValueError(f"{path} is not a readable DICOM file ({exc})") from None
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"{path} is not a readable label image ({str(exc).strip().splitlines()[-1]})") from None
    return list(reader.GetSize())


def write_label_file(
    path: str | os.PathLike,
    labels,
    like: Volume,
    format: str | None = None,
    *,
    overwrite: bool = False,
    manual_edits: bool = False,
) -> Path:
    """Write a label map of ``like`` in a format of :data:`LABEL_FORMATS` (from the suffix when not given).

    DICOM-SEG and RTSTRUCT need a CT read from its DICOM series; ``manual_edits`` flags their segments
    SEMIAUTOMATIC. The other formats go through :func:`napari_ctorgans.io.write_labels`.
    """
    fmt = label_format(path, format)
    if fmt == "dicom-seg":
        from .dicom_seg import write_dicom_seg

        return write_dicom_seg(path, labels, like, manual_edits=manual_edits, overwrite=overwrite)
    if fmt == "rtstruct":
        from .rtstruct import write_rtstruct

        return write_rtstruct(path, labels, like, manual_edits=manual_edits, overwrite=overwrite)
    from ._write import write_labels

    return write_labels(path, labels.array if isinstance(labels, Volume) else labels, like, overwrite=overwrite)


__all__ = ["DICOM_FORMATS", "LABEL_FORMATS", "check_label_output", "label_format", "with_format_suffix",
           "write_label_file", "written_size"]
