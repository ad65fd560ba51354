"""napari reader: CT volumes as Image layers, label maps as Labels layers, with their geometry."""

from __future__ import annotations

from pathlib import Path

from .layers import image_layer_kwargs, labels_layer_kwargs

_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _can_read(path: Path) -> bool:
    try:
        if path.is_dir():
            from ..io import list_dicom_series

            return bool(list_dicom_series(path))
        if not path.is_file():
            return False
        name = path.name.lower()
        if name.endswith(_SUFFIXES):
            return True
        with open(path, "rb") as fh:  # DICOM files often have no suffix
            head = fh.read(132)
        return head[128:132] == b"DICM"
    except Exception:  # the reader contract: never raise, just decline
        return False


def get_reader(path):
    """Return a reader function for CT files and DICOM folders, or None for anything else."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        p = Path(path)
    except TypeError:
        return None
    return read_ct if _can_read(p) else None


def read_ct(path):
    """Read one CT volume or label map into napari layer data.

    Label map or image is decided from the content (whole numbers 0..255 with few distinct values), never from
    the file name: ``liver_mask.nii.gz`` may well be a CT.
    """
    from ..io import read_volume
    from ..io._read import as_labels, looks_like_labels

    if isinstance(path, (list, tuple)):
        path = path[0]
    from ..io.dicom_seg import dicom_kind

    kind = dicom_kind(path)
    if kind is not None:  # DICOM-SEG or RTSTRUCT, on the grid of the CT series found next to it or already open
        from .dicom_open import read_dicom_object

        return read_dicom_object(path, kind)
    vol = read_volume(path)
    if looks_like_labels(vol):
        labels = as_labels(vol, path)
        return [(labels.array, labels_layer_kwargs(labels), "labels")]
    return [(vol.array, image_layer_kwargs(vol), "image")]
