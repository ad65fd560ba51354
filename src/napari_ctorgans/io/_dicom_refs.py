"""What a DICOM-SEG or RTSTRUCT says about the CT series it belongs to, written and checked in one place.

Writing: the spacing between the source slices measured from their positions (not the CT's own Spacing Between
Slices tag, which can contradict them), and a Specific Character Set that highdicom accepts. Reading: the referenced
Series, Study and Frame of Reference UIDs must be those of the CT given, as well as the geometry.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..volume import Volume


def measure_slice_spacing(datasets: list) -> None:
    """Drop Spacing Between Slices from the in-memory headers of the source slices (never the files), so that
    highdicom writes the spacing it measures from their positions.

    The CT's own tag can contradict its positions (a helical scan reconstructed with overlap says 6.5 mm where the
    slices are 2.5 mm apart); highdicom copies it when the pixel spacing is unchanged, and readers that trust the
    SEG's tag put its frames elsewhere.
    """
    for ds in datasets:
        if "SpacingBetweenSlices" in ds:
            del ds.SpacingBetweenSlices


def clean_character_set(datasets: list) -> None:
    """Mend an empty Specific Character Set in the in-memory headers (never the files): empty means the default
    repertoire, which highdicom refuses to copy as ``''``; with code extensions it is ``ISO 2022 IR 6``."""
    from pydicom.multival import MultiValue

    for ds in datasets:
        value = ds.get("SpecificCharacterSet")
        values = [str(v).strip() for v in (value if isinstance(value, (list, tuple, MultiValue)) else [value])]
        if "SpecificCharacterSet" not in ds or all(values):
            continue
        if not any(values):
            del ds.SpecificCharacterSet
        else:
            ds.SpecificCharacterSet = [v or "ISO 2022 IR 6" for v in values]


def _uid(value) -> str:
    return str(value or "").strip()


def seg_references(ds) -> dict[str, set[str]]:
    """The Series, Study and Frame of Reference UIDs a DICOM-SEG refers to."""
    return {"Series": {_uid(s.get("SeriesInstanceUID")) for s in ds.get("ReferencedSeriesSequence", [])},
            "Study": {_uid(ds.get("StudyInstanceUID"))},
            "Frame of Reference": {_uid(ds.get("FrameOfReferenceUID"))}}


def rtstruct_references(ds) -> dict[str, set[str]]:
    """The Series, Study and Frame of Reference UIDs an RTSTRUCT refers to."""
    refs: dict[str, set[str]] = {"Series": set(), "Study": {_uid(ds.get("StudyInstanceUID"))},
                                 "Frame of Reference": set()}
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        refs["Frame of Reference"].add(_uid(frame.get("FrameOfReferenceUID")))
        for study in frame.get("RTReferencedStudySequence", []):
            refs["Study"].add(_uid(study.get("ReferencedSOPInstanceUID")))
            refs["Series"] |= {_uid(s.get("SeriesInstanceUID")) for s in study.get("RTReferencedSeriesSequence", [])}
    return refs


def ct_uids(like: Volume) -> dict[str, str] | None:
    """The Series, Study and Frame of Reference UIDs of a CT read from DICOM, as a SEG or RTSTRUCT written from it
    names them (empty ones derived as the writers derive them); None for a CT that did not come from DICOM."""
    from ._dicom_source import source_series

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the writers' warning about derived UIDs: said when writing
            datasets = source_series(like, "the check of its references", resampled_ok=True)
    except (ValueError, FileNotFoundError, OSError):
        return None  # not from DICOM (or no longer on disk): the geometry is all there is to check
    first = datasets[0]
    return {"Series": _uid(first.get("SeriesInstanceUID")), "Study": _uid(first.get("StudyInstanceUID")),
            "Frame of Reference": _uid(first.get("FrameOfReferenceUID"))}


def check_references(path: str | os.PathLike, what: str, refs: dict[str, set[str]], like: Volume) -> None:
    """Refuse a SEG or RTSTRUCT whose referenced UIDs are not those of the CT ``like``, naming both UIDs.

    Raises
    ------
    ValueError
        The object was made on another series, study or frame of reference (even one with the same grid).
    """
    own = ct_uids(like)
    if own is None:
        return
    wrong = []
    for name in ("Series", "Study", "Frame of Reference"):
        theirs = {u for u in refs.get(name, set()) if u}
        if theirs and own[name] and own[name] not in theirs:
            wrong.append(f"the {name} UID {', '.join(sorted(theirs))} where the CT has {own[name]}")
    if wrong:
        raise ValueError(
            f"the {what} {path} was made on another series: it refers to {'; '.join(wrong)} (the CT {like.path}). Its "
            "voxels would be put on a scan they were not drawn on, even on the same grid; give the CT series it was "
            "made for"
        )
