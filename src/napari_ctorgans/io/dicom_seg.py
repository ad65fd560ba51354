"""DICOM Segmentation objects (DICOM-SEG) out of and into CT-ORG label maps, with highdicom.

One segment per organ present, named and coded in SNOMED CT (:data:`napari_ctorgans.organs.SNOMED`), with the
algorithm that made it, references to every source instance and the source's frame of reference. Reading maps
segments to organ values by code, then name; other segments get free values and keep their names in
``volume.metadata["segment_names"]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._version import __version__
from ..organs import IGNORE_LABEL, ORGANS, SNOMED, SNOMED_OTHER, organ_from_segment
from ..quality import cut_off_notes
from ..volume import Volume
from ._dicom_refs import check_references, clean_character_set, measure_slice_spacing, seg_references
from ._dicom_source import atomic_save, check_labels, frame_indices, plane_indices, source_series

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
ALGORITHM_NAME = "napari-ctorgans"


def segment_names(labels, values, names: dict | None) -> dict[int, str]:
    """Names of the label values: given ones, those the label map carries, then the CT-ORG table."""
    carried = labels.metadata.get("segment_names", {}) if isinstance(labels, Volume) else {}
    given = {int(k): str(v) for k, v in {**carried, **(names or {})}.items()}
    return {v: given.get(v) or (ORGANS[v].name if v in ORGANS else f"label {v}") for v in values}


def present_values(arr: np.ndarray) -> list[int]:
    """Label values present (background and the ignore value left out)."""
    return [int(v) for v in np.unique(arr) if v not in (0, IGNORE_LABEL)]


def _description(number: int, value: int, name: str, algorithm, algorithm_type: str):
    import highdicom as hd
    from pydicom.sr.coding import Code

    category, prop = SNOMED.get(value, SNOMED_OTHER)
    rgb = ORGANS[value].color if value in ORGANS and value != 0 else (0.5, 0.5, 0.5, 1.0)
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name,
        segmented_property_category=Code(category.value, "SCT", category.meaning),
        segmented_property_type=Code(prop.value, "SCT", prop.meaning),
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*(int(round(c * 255)) for c in rgb[:3])),
    )


def _as_hd_volume(array: np.ndarray, like: Volume, frame_of_reference: str):
    """The label array with its patient geometry, as highdicom places frames that are not the source slices."""
    import highdicom as hd

    affine = np.eye(4)
    affine[:3, :3] = (np.asarray(like.direction) @ np.diag(like.spacing))[::-1, :]  # (z, y, x) index -> (L, P, S)
    affine[:3, 3] = np.asarray(like.origin)[::-1]
    return hd.Volume(array, affine, coordinate_system="PATIENT", frame_of_reference_uid=frame_of_reference)


def write_dicom_seg(
    path: str | os.PathLike,
    labels,
    like: Volume,
    *,
    manual_edits: bool = False,
    names: dict[int, str] | None = None,
    algorithm_version: str = __version__,
    series_description: str = "CT organs",
    overwrite: bool = False,
) -> Path:
    """Write a label map of a CT read from DICOM as a DICOM Segmentation object (binary, one segment per organ).

    Parameters
    ----------
    path : str or path
        The ``.dcm`` file to write (written whole or not at all).
    labels : ndarray (Z, Y, X) of int, or Volume
        On the grid of ``like`` (CT-ORG values; others are written as ``"label N"`` or their name in ``names``).
    like : Volume
        The CT, read from its DICOM series (``ct.read_volume(folder)``).
    manual_edits : bool
        The labels were corrected by hand: the segments are flagged ``SEMIAUTOMATIC`` instead of ``AUTOMATIC``.
    names : dict, optional
        Segment names for label values outside the CT-ORG table.
    algorithm_version : str
        Version recorded in the Segment Algorithm Identification (default: this package's version).
    overwrite : bool
        Replace an existing file (never done silently).

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
    import highdicom as hd
    from pydicom.sr.codedict import codes

    arr = check_labels(labels, like, "DICOM-SEG")
    if Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or choose another name")
    datasets = source_series(like, "DICOM-SEG", resampled_ok=True)
    clean_character_set(datasets)  # an empty tag: the default repertoire
    measure_slice_spacing(datasets)  # from the positions, not the CT's own tag
    values = present_values(arr)
    lut = np.zeros(int(arr.max()) + 1, dtype=np.uint16)
    lut[values] = np.arange(1, len(values) + 1)
    if like.metadata.get("dicom_resampled"):  # tilted or uneven slices: frames placed by their own positions
        frames = _as_hd_volume(lut[arr].astype(np.uint8 if len(values) < 256 else np.uint16), like,
                               str(datasets[0].FrameOfReferenceUID))
    else:
        frames = np.stack([lut[arr[idx]] for idx in frame_indices(like, datasets, "DICOM-SEG")])
        frames = frames.astype(np.uint8 if len(values) < 256 else np.uint16)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.cid7162.ArtificialIntelligence, version=algorithm_version
    )
    kind = "SEMIAUTOMATIC" if manual_edits else "AUTOMATIC"
    named = segment_names(labels, values, names)
    descriptions = [_description(n, v, named[v], algorithm, kind) for n, v in enumerate(values, 1)]
    notes = cut_off_notes(arr)  # an organ touching an edge of the scan: "cut off by the scan (last slice)"
    for d, v in zip(descriptions, values):
        if v in notes:
            d.SegmentDescription = notes[v][:64]
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=ALGORITHM_NAME,
        manufacturer_model_name=ALGORITHM_NAME,
        software_versions=__version__,
        device_serial_number="0",
        series_description=series_description,
        content_label="ORGANS",
        content_description="CT-ORG organs" + (", corrected by hand" if manual_edits else ""),
    )
    return atomic_save(seg, path, overwrite=overwrite)


def segment_values(segments: list[tuple[int, str | None, str]]) -> tuple[dict[int, int], dict[int, str]]:
    """Label values of segments or ROIs given as (number, SNOMED CT code, name), and the name of each value.

    A segment coded or named as a CT-ORG organ takes its value (a left and a right kidney both become
    ``kidneys``); any other segment gets the next free value and keeps its name.
    """
    value_of, names = {}, {}
    free = free_values(set(ORGANS))
    for number, code, name in segments:
        value = organ_from_segment(code, name)
        if value is None:
            value = next(free)
            names[value] = str(name)
        else:
            names[value] = ORGANS[value].name
        value_of[int(number)] = value
    return value_of, names


def free_values(taken: set[int]):
    """Label values for segments that are no CT-ORG organ: after the organ table, skipping taken ones."""
    value = max(ORGANS) + 1
    while True:
        if value not in taken and value != IGNORE_LABEL:
            taken.add(value)
            yield value
        value += 1


def _functional(seg, i: int, name: str):
    per = seg.PerFrameFunctionalGroupsSequence[i] if "PerFrameFunctionalGroupsSequence" in seg else None
    if per is not None and name in per:
        return per[name][0]
    return seg.SharedFunctionalGroupsSequence[0][name][0]


def _frame_planes(seg) -> list[tuple]:
    """(segment number, position, orientation, pixel spacing) of every frame."""
    planes = []
    for i in range(int(seg.get("NumberOfFrames", 1))):
        number = int(_functional(seg, i, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        position = _functional(seg, i, "PlanePositionSequence").ImagePositionPatient
        orientation = _functional(seg, i, "PlaneOrientationSequence").ImageOrientationPatient
        spacing = _functional(seg, i, "PixelMeasuresSequence").PixelSpacing
        planes.append((number, position, orientation, spacing))
    return planes


def grid_of_planes(planes: list[tuple], rows: int, cols: int, gap: float | None = None) -> Volume:
    """The smallest regular grid holding every plane (for a SEG read without its CT)."""
    import SimpleITK as sitk

    from ._sitk import from_sitk

    iop = np.asarray(planes[0][2], dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    positions = np.array([np.asarray(p[1], dtype=float) for p in planes])
    depth = positions @ normal
    levels = np.unique(np.round(depth, 3))
    step = float(np.diff(levels).min()) if len(levels) > 1 else 1.0
    if gap and float(gap) > 0 and np.allclose((levels - levels[0]) / float(gap),
                                              np.round((levels - levels[0]) / float(gap)), atol=0.05):
        step = float(gap)  # the tag, where the frames agree with it (frames may skip slices without organs)
    n = int(round((levels[-1] - levels[0]) / step)) + 1
    first = positions[int(np.argmin(depth))]
    image = sitk.Image([cols, rows, n], sitk.sitkUInt8)
    image.SetSpacing([float(planes[0][3][1]), float(planes[0][3][0]), step])
    image.SetOrigin(first.tolist())
    image.SetDirection(np.column_stack([iop[:3], iop[3:], normal]).ravel().tolist())
    return from_sitk(image)


def _off_grid(path, like: Volume, own_grid: bool) -> str:
    """Why a frame of a SEG has no place on the grid it is read onto."""
    if own_grid:
        return (f"{path} has frames that do not lie on one regular grid of slices (their positions and Spacing Between "
                "Slices disagree); read it with the CT series it was made for: ct.read_labels(path, like=<series "
                "folder>) (CLI: --ct <series folder>)")
    return (f"{path} has frames outside the grid of the CT {like.path or '(made in memory)'}; it was made on another "
            "series. Give the CT series it was made for (its Referenced Series).")


def _frames_of(seg) -> np.ndarray:
    frames = np.asarray(seg.pixel_array)
    if frames.ndim == 2:
        frames = frames[None]
    if str(seg.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        return frames >= (int(seg.get("MaximumFractionalValue", 255)) + 1) // 2
    return frames > 0


def read_dicom_seg(path: str | os.PathLike, like: Volume | str | os.PathLike | None = None) -> Volume:
    """Read a DICOM-SEG file as a CT-ORG label map.

    Parameters
    ----------
    path : str or path
        A DICOM Segmentation object (BINARY or FRACTIONAL).
    like : Volume or path, optional
        The CT it belongs to (or its series folder): the labels come on its grid. Without it, the grid is the
        smallest one holding the segmentation's frames, in the same patient coordinates.

    Returns
    -------
    Volume
        Integer labels; segments coded or named as a CT-ORG organ take its value, others the next free values,
        with all names in ``metadata["segment_names"]``. Where segments overlap, the later one wins.
    """
    import highdicom as hd

    from ._read import read_volume

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - highdicom raises several types for malformed files
        raise ValueError(
            f"cannot read {path} as a DICOM Segmentation ({exc}); export it again from its source"
        ) from None
    if isinstance(like, (str, os.PathLike)):
        like = read_volume(like)
    own_grid = like is None
    if like is not None:
        check_references(path, "DICOM-SEG", seg_references(seg), like)
    planes = _frame_planes(seg)
    rows, cols = int(seg.Rows), int(seg.Columns)
    if like is None:
        gap = _functional(seg, 0, "PixelMeasuresSequence").get("SpacingBetweenSlices")
        like = grid_of_planes(planes, rows, cols, gap)
    descriptions = [seg.get_segment_description(n) for n in seg.segment_numbers]
    value_of, names = segment_values([(n, d.segmented_property_type.value, d.segment_label)
                                      for n, d in zip(seg.segment_numbers, descriptions)])
    top = max(value_of.values())
    out = np.zeros(like.shape, dtype=np.uint8 if top < 256 else np.uint16)
    for frame, (number, position, orientation, spacing) in zip(_frames_of(seg), planes):
        idx = plane_indices(like, position, orientation, spacing, rows, cols)
        if idx is None:
            raise ValueError(_off_grid(path, like, own_grid))
        out[idx[0][frame], idx[1][frame], idx[2][frame]] = value_of[number]
    return Volume(out, like.spacing, like.origin, like.direction, like.source_orientation, path=str(path),
                  metadata={"segment_names": names, "dicom_seg": True})


def referenced_instances(ds) -> set[str]:
    """SOP Instance UIDs of the images a SEG or RTSTRUCT refers to."""
    uids = {str(i.ReferencedSOPInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])
            for i in s.get("ReferencedInstanceSequence", [])}
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uids |= {str(i.ReferencedSOPInstanceUID) for i in series.get("ContourImageSequence", [])}
    return uids


def find_source_ct(path: str | os.PathLike, limit: int = 64) -> Path | None:
    """A CT instance next to a SEG or RTSTRUCT (its folder, sibling folders) that the object refers to."""
    import pydicom

    from ._dicom_source import _is_dicom

    p = Path(path).resolve()
    uids = referenced_instances(pydicom.dcmread(p, stop_before_pixels=True))
    if not uids:
        return None
    folders = [p.parent, *sorted(d for d in p.parent.iterdir() if d.is_dir())]
    folders += sorted(d for d in p.parent.parent.iterdir() if d.is_dir() and d != p.parent)
    for folder in folders[:limit]:
        files = sorted(f for f in folder.iterdir() if f.is_file() and f != p)
        for f in files[:limit]:
            if not _is_dicom(f):
                continue
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            uid = str(ds.get("SOPInstanceUID") or getattr(ds.file_meta, "MediaStorageSOPInstanceUID", ""))
            if uid in uids:
                return f
            break  # one file tells whether a folder holds the series
    return None


def read_dicom_labels(path: str | os.PathLike, like=None, kind: str | None = None) -> Volume:
    """Read a DICOM-SEG or RTSTRUCT as labels on the grid of ``like``, or of the CT found next to it."""
    from .rtstruct import read_rtstruct

    kind = kind or dicom_kind(path)
    if like is None:
        found = find_source_ct(path)
        if found is not None:
            from ._read import read_volume

            like = read_volume(found)
    if kind == "rtstruct":
        return read_rtstruct(path, like)
    return read_dicom_seg(path, like)


def dicom_kind(path: str | os.PathLike) -> str | None:
    """``"seg"`` or ``"rtstruct"`` for a DICOM-SEG or RTSTRUCT file, None for anything else."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        import pydicom

        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - not DICOM at all
        return None
    sop = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    return {SEG_SOP_CLASS: "seg", RTSTRUCT_SOP_CLASS: "rtstruct"}.get(sop)


__all__ = ["dicom_kind", "find_source_ct", "read_dicom_labels", "read_dicom_seg", "write_dicom_seg"]
