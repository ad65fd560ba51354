"""RT Structure Sets (RTSTRUCT) out of and into CT-ORG label maps, with pydicom and scikit-image.

Written with pydicom, contours traced by marching squares (``skimage.measure.find_contours``): rt-utils would
bring ``opencv-python``, whose bundled Qt plugins clash with PyQt6 in napari's process, and highdicom has no
RTSTRUCT writer. One ROI per organ, one CLOSED_PLANAR contour per outline and slice (holes as inner contours,
filled even-odd on reading, as planning systems do), each referencing its CT instance.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np

from .._version import __version__
from ..organs import ORGANS, SNOMED, SNOMED_OTHER
from ..quality import cut_off_notes
from ..volume import Volume
from ._dicom_refs import check_references, rtstruct_references
from ._dicom_source import atomic_save, check_labels, frame_indices, source_series
from .dicom_seg import (ALGORITHM_NAME, RTSTRUCT_SOP_CLASS, free_values, present_values, segment_names,
                        segment_values)

_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                  "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription")
_DETACHED_STUDY = "1.2.840.10008.3.1.2.3.1"
_CONTOUR_DATA = 0x30060050


def _ds(**items):
    from pydicom.dataset import Dataset

    ds = Dataset()
    for key, value in items.items():
        setattr(ds, key, value)
    return ds


def _image_ref(ds):
    return _ds(ReferencedSOPClassUID=ds.SOPClassUID, ReferencedSOPInstanceUID=ds.SOPInstanceUID)


def _outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines (row, col) of a 2D mask, through the pixel edges, collinear points dropped."""
    from skimage.measure import find_contours

    out = []
    for contour in find_contours(np.pad(mask, 1).astype(np.uint8), 0.5):
        points = contour[:-1] - 1.0  # find_contours repeats the first point at the end
        before, after = points - np.roll(points, 1, axis=0), np.roll(points, -1, axis=0) - points
        turns = np.abs(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) > 1e-9
        if turns.sum() >= 3:
            out.append(points[turns])  # corners only: points on a straight run add nothing
    return out


def _contour_item(points_rc: np.ndarray, ds) -> object:
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    xyz = (np.asarray(ds.ImagePositionPatient, dtype=float)
           + points_rc[:, 1:2] * dc * iop[:3] + points_rc[:, 0:1] * dr * iop[3:])
    item = _ds(ContourImageSequence=[_image_ref(ds)], ContourGeometricType="CLOSED_PLANAR",
               NumberOfContourPoints=len(xyz))
    item[_CONTOUR_DATA] = _raw_ds(_CONTOUR_DATA, xyz.ravel())
    return item


def _raw_ds(tag: int, values: np.ndarray):
    """A DS element from numbers, already encoded: pydicom's per-value checks cost minutes on speckled labels."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    text = "\\".join(f"{v:.3f}" for v in values).encode("ascii")  # at most 16 characters each
    if len(text) % 2:
        text += b" "
    return RawDataElement(Tag(tag), "DS", len(text), text, 0, False, True)


def _contour_points(contour) -> np.ndarray:
    """The (N, 3) points of a contour, parsed from the raw bytes when pydicom has not converted them yet."""
    raw = contour.get_item(_CONTOUR_DATA)
    value = getattr(raw, "value", None)
    if isinstance(value, bytes):
        return np.array(value.replace(b"\\", b" ").split(), dtype=float).reshape(-1, 3)
    return np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)


def _roi_items(number: int, value: int, name: str, frames, datasets, frame_of_ref: str, algorithm: str):
    _, prop = SNOMED.get(value, SNOMED_OTHER)
    rgb = ORGANS[value].color if value in ORGANS and value != 0 else (0.5, 0.5, 0.5, 1.0)
    contours = [_contour_item(outline, ds) for frame, ds in zip(frames, datasets)
                for outline in _outlines(frame == value)]
    roi = _ds(ROINumber=number, ReferencedFrameOfReferenceUID=frame_of_ref, ROIName=name,
              ROIGenerationAlgorithm=algorithm, ROIGenerationDescription=f"{ALGORITHM_NAME} {__version__}")
    contour = _ds(ReferencedROINumber=number, ROIDisplayColor=[int(round(c * 255)) for c in rgb[:3]],
                  ContourSequence=contours)
    code = _ds(CodeValue=prop.value, CodingSchemeDesignator="SCT", CodeMeaning=prop.meaning)
    observation = _ds(ObservationNumber=number, ReferencedROINumber=number, ROIObservationLabel=name[:16],
                      RTROIInterpretedType="ORGAN" if value in SNOMED else "", ROIInterpreter="",
                      RTROIIdentificationCodeSequence=[code])
    return roi, contour, observation


def write_rtstruct(
    path: str | os.PathLike,
    labels,
    like: Volume,
    *,
    manual_edits: bool = False,
    names: dict[int, str] | None = None,
    series_description: str = "CT organs",
    overwrite: bool = False,
) -> Path:
    """Write a label map of a CT read from DICOM as an RT Structure Set: one ROI per organ, contours per slice.

    Parameters are those of :func:`~napari_ctorgans.io.dicom_seg.write_dicom_seg`; ``manual_edits`` sets
    ROI Generation Algorithm to ``SEMIAUTOMATIC``.

    Raises
    ------
    ValueError
        The CT did not come from DICOM, the labels are not on its grid, the label map is empty, or it holds
        the value 255 ('not labelled': a reader would take it for background; save partial labels as NIfTI).
    FileNotFoundError
        Instances of the source series are missing.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    arr = check_labels(labels, like, "RTSTRUCT")
    if Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or choose another name")
    datasets = source_series(like, "RTSTRUCT")
    frames = [arr[idx] for idx in frame_indices(like, datasets, "RTSTRUCT")]
    values = present_values(arr)
    named = segment_names(labels, values, names)
    first, uid, now = datasets[0], generate_uid(), datetime.now()
    frame_of_ref = str(first.FrameOfReferenceUID)
    items = [_roi_items(n, v, named[v], frames, datasets, frame_of_ref,
                        "SEMIAUTOMATIC" if manual_edits else "AUTOMATIC") for n, v in enumerate(values, 1)]
    notes = cut_off_notes(arr)  # an organ touching an edge of the scan: "cut off by the scan (last slice)"
    for (roi, _, _), v in zip(items, values):
        if v in notes:
            roi.ROIDescription = notes[v]
    rs = _ds(**{key: first.get(key, "") for key in _PATIENT_STUDY})
    rs.file_meta = FileMetaDataset()
    rs.file_meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    rs.file_meta.MediaStorageSOPInstanceUID = uid
    rs.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rs.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    for key, value in dict(
        SpecificCharacterSet="ISO_IR 192", SOPClassUID=RTSTRUCT_SOP_CLASS, SOPInstanceUID=uid,
        InstanceCreationDate=now.strftime("%Y%m%d"), InstanceCreationTime=now.strftime("%H%M%S"),
        Modality="RTSTRUCT", SeriesInstanceUID=generate_uid(), SeriesNumber=902, SeriesDescription=series_description,
        OperatorsName="", Manufacturer=ALGORITHM_NAME, ManufacturerModelName=ALGORITHM_NAME,
        SoftwareVersions=__version__, InstanceNumber=1, FrameOfReferenceUID=frame_of_ref,
        PositionReferenceIndicator=first.get("PositionReferenceIndicator", ""), StructureSetLabel="ORGANS",
        StructureSetName="CT-ORG organs", StructureSetDate=now.strftime("%Y%m%d"),
        StructureSetTime=now.strftime("%H%M%S"),
    ).items():
        setattr(rs, key, value)
    series = _ds(SeriesInstanceUID=first.SeriesInstanceUID, ContourImageSequence=[_image_ref(d) for d in datasets])
    study = _ds(ReferencedSOPClassUID=_DETACHED_STUDY, ReferencedSOPInstanceUID=first.StudyInstanceUID,
                RTReferencedSeriesSequence=[series])
    rs.ReferencedFrameOfReferenceSequence = [_ds(FrameOfReferenceUID=frame_of_ref, RTReferencedStudySequence=[study])]
    rs.StructureSetROISequence = [roi for roi, _, _ in items]
    rs.ROIContourSequence = [contour for _, contour, _ in items]
    rs.RTROIObservationsSequence = [obs for _, _, obs in items]
    return atomic_save(rs, path, overwrite=overwrite)


def _fill_contour(out_mask: np.ndarray, points_xyz: np.ndarray, like: Volume) -> bool:
    """XOR one planar contour into a 3D mask on the grid of ``like``; False when it is off the grid's planes."""
    from skimage.draw import polygon

    a = np.asarray(like.direction) @ np.diag(like.spacing)
    idx = (points_xyz[:, ::-1] - np.asarray(like.origin)) @ np.linalg.inv(a).T  # continuous (k, j, i)
    spread = np.ptp(idx, axis=0)
    axis = int(np.argmin(spread))
    level = float(np.rint(idx[0, axis]))
    if spread[axis] > 0.05 or abs(idx[0, axis] - level) > 0.05 or not 0 <= level < like.shape[axis]:
        return False
    plane_axes = [ax for ax in range(3) if ax != axis]
    shape = tuple(like.shape[ax] for ax in plane_axes)
    rr, cc = polygon(idx[:, plane_axes[0]], idx[:, plane_axes[1]], shape=shape)
    sl = [slice(None)] * 3
    sl[axis] = int(level)
    plane = out_mask[tuple(sl)]
    plane[rr, cc] ^= True
    return True


def read_rtstruct(path: str | os.PathLike, like: Volume | str | os.PathLike) -> Volume:
    """Read an RTSTRUCT as a CT-ORG label map on the grid of its CT.

    Parameters
    ----------
    path : str or path
        The RT Structure Set file.
    like : Volume or path
        The CT series it was drawn on (a Volume read from it, or its folder): contours hold no voxel grid.

    Returns
    -------
    Volume
        Integer labels; ROIs coded or named as a CT-ORG organ take its value, others the next free values, with
        all names in ``metadata["segment_names"]``. Where ROIs overlap, the later one wins.
    """
    import pydicom

    from ._read import read_volume

    if like is None:
        raise ValueError(
            f"{path} is an RTSTRUCT: its contours need the CT series they were drawn on; "
            "read it with ct.read_labels(path, like=<CT series folder>) (CLI: --ct <series folder>)"
        )
    if isinstance(like, (str, os.PathLike)):
        like = read_volume(like)
    rs = pydicom.dcmread(path)
    check_references(path, "RTSTRUCT", rtstruct_references(rs), like)
    observed = {int(o.ReferencedROINumber): o for o in rs.get("RTROIObservationsSequence", [])}
    rois = {int(r.ROINumber): str(r.get("ROIName", "")) for r in rs.get("StructureSetROISequence", [])}
    coded = []
    for number, name in rois.items():
        codes = observed[number].get("RTROIIdentificationCodeSequence", []) if number in observed else []
        coded.append((number, codes[0].CodeValue if codes else None, name))
    value_of, names = segment_values(coded)
    free = free_values(set(ORGANS) | set(value_of.values()))
    out = np.zeros(like.shape, dtype=np.uint8 if max(value_of.values(), default=0) < 256 else np.uint16)
    for item in rs.get("ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        mask = np.zeros(like.shape, dtype=bool)
        for contour in item.get("ContourSequence", []):
            if contour.get("ContourGeometricType", "") != "CLOSED_PLANAR":
                continue
            points = _contour_points(contour)
            if not _fill_contour(mask, points, like):
                raise ValueError(
                    f"{path}: a contour of ROI {rois.get(number, number)!r} does not lie on a slice of the CT "
                    f"{like.path or '(made in memory)'}; it was drawn on another series. Give the CT series it was "
                    "made for."
                )
        out[mask] = value_of.get(number) or next(free)
    return Volume(out, like.spacing, like.origin, like.direction, like.source_orientation, path=str(path),
                  metadata={"segment_names": names, "rtstruct": True})


__all__ = ["read_rtstruct", "write_rtstruct"]
