"""napari writer: Labels layers saved in the geometry of the CT they belong to."""

from __future__ import annotations

import numpy as np

from ..volume import Volume
from .layers import GEOMETRY_KEY


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Save a Labels layer (napari's save dialog has already confirmed the file name).

    Raises
    ------
    OSError
        The file could not be written completely (full disk, quota, file-size limit); napari shows the message.
        The write is verified before it replaces anything, so a previous file of that name is unchanged.
    RuntimeError
        The labels cannot be stored (negative or above the largest label a file holds). Not a ValueError: npe2
        reads a ValueError from a writer as "no writer for this file" and napari would hide the message.
    """
    from ..io import write_labels as _write

    arr = np.asarray(data)
    geometry = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if geometry and tuple(geometry.get("shape", arr.shape)) == arr.shape:
        like = Volume.from_geometry(np.zeros((1, 1, 1), np.uint8), {**geometry})
        like = Volume(np.broadcast_to(np.uint8(0), arr.shape), like.spacing, like.origin, like.direction,
                      like.source_orientation)
    else:
        scale = meta.get("scale", (1.0, 1.0, 1.0))
        translate = meta.get("translate", (0.0, 0.0, 0.0))
        like = Volume(np.broadcast_to(np.uint8(0), arr.shape), tuple(scale)[-3:], tuple(translate)[-3:])
    try:
        out = _write(path, arr, like=like, overwrite=True)
    except ValueError as exc:
        raise RuntimeError(f"could not save {path}: {exc}") from None
    return [str(out)]


def _dicom_ct(arr: np.ndarray, meta: dict) -> Volume:
    """The CT a Labels layer belongs to, with the path of its DICOM series (found next to a SEG it was read from)."""
    from ..io.dicom_seg import dicom_kind, find_source_ct

    geometry = (meta.get("metadata") or {}).get(GEOMETRY_KEY) or {}
    path = geometry.get("path")
    if path and dicom_kind(path) is not None:  # labels opened from a DICOM-SEG or RTSTRUCT: their CT is beside it
        found = find_source_ct(path)
        if found is None:
            raise ValueError(f"the layer was read from {path}, and the CT series it refers to is not next to it; "
                             "open the CT series too and export with ct.write_dicom_seg(path, labels, like=ct)")
        from ..io import read_volume

        return read_volume(found)
    if not geometry or tuple(geometry.get("shape", arr.shape)) != arr.shape:
        raise ValueError("this Labels layer carries no CT geometry; DICOM-SEG and RTSTRUCT need the CT's DICOM "
                         "series: make the labels with the plugin's widgets on a CT opened from its DICOM folder")
    return Volume.from_geometry(np.broadcast_to(np.uint8(0), arr.shape), geometry)


def write_dicom(path: str, data, meta: dict) -> list[str]:
    """Save a Labels layer as DICOM-SEG (``name.dcm``) or RTSTRUCT (``name.rtstruct.dcm``) of its CT's series.

    Labels that differ from what the Predict step wrote (painted, corrected or of unknown origin) are flagged
    SEMIAUTOMATIC; a CT that was not opened from DICOM gets a clear error naming the fix.
    """
    from ..io.formats import write_label_file
    from .layers import digest
    from .predict_widget import DIGEST_KEY

    arr = np.asarray(data)
    like = _dicom_ct(arr, meta)
    edited = (meta.get("metadata") or {}).get(DIGEST_KEY) != digest(arr)
    out = write_label_file(path, arr, like, overwrite=True, manual_edits=edited)
    return [str(out)]
