"""Opening a DICOM-SEG or RTSTRUCT in napari: on the grid of its CT series, found beside the file or already open.

An RTSTRUCT holds contours, no grid of its own that napari could show: it needs its CT. When the series is not
beside the file, the open CT layer whose DICOM series (else Frame of Reference) the object refers to is used; when
none is open, nothing is added and the user is told, in napari, to open the CT series first (never napari's "Choose
reader" dialog with a Python traceback). A SEG is put on that CT's grid too, and read on the grid of its own frames
when no CT is at hand (the reason told in napari when its frames lie on no regular grid).
"""

from __future__ import annotations

from pathlib import Path

from .layers import GEOMETRY_KEY, labels_layer_kwargs, volume_from_layer


def _references(path, kind: str) -> dict[str, set[str]]:
    import pydicom

    from ..io._dicom_refs import rtstruct_references, seg_references

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    refs = rtstruct_references(ds) if kind == "rtstruct" else seg_references(ds)
    return {k: {u for u in v if u} for k, v in refs.items()}


def open_ct_for(viewer, path, kind: str):
    """The Volume of the CT layer open in ``viewer`` that the SEG / RTSTRUCT at ``path`` was made on (the same
    Series UID, else the same Frame of Reference UID), or None."""
    from napari.layers import Image

    from ..io._dicom_refs import ct_uids

    if viewer is None:
        return None
    refs = _references(path, kind)
    by_frame = None
    for layer in viewer.layers:
        if not isinstance(layer, Image) or not (layer.metadata or {}).get(GEOMETRY_KEY, {}).get("path"):
            continue
        try:
            vol = volume_from_layer(layer)
            uids = ct_uids(vol)
        except (ValueError, TypeError, OSError):
            continue
        if uids is None:
            continue
        if uids["Series"] in refs.get("Series", ()):
            return vol
        if by_frame is None and uids["Frame of Reference"] in refs.get("Frame of Reference", ()):
            by_frame = vol
    return by_frame


def tell(viewer, text: str) -> None:
    """Say ``text`` in napari: a notification, and the viewer's status bar."""
    from napari.utils.notifications import show_warning

    if viewer is not None:
        viewer.status = text
    show_warning(text)


def read_dicom_object(path, kind: str) -> list[tuple]:
    """napari layer data of a DICOM-SEG or RTSTRUCT (``kind`` "seg" or "rtstruct"); ``[(None,)]`` (nothing to add,
    the reason told in napari) when an RTSTRUCT's CT series is neither beside it nor open, or the object cannot be
    read."""
    import napari

    from ..io.dicom_seg import find_source_ct, read_dicom_labels

    what = "RTSTRUCT" if kind == "rtstruct" else "DICOM-SEG"
    name = Path(path).name
    viewer = napari.current_viewer()
    like = None
    try:
        if find_source_ct(path) is None:
            like = open_ct_for(viewer, path, kind)
            if like is None and kind == "rtstruct":  # a SEG's frames carry their own grid; contours do not
                tell(viewer, f"{name} is a {what}: it needs the CT series it was drawn on, which is neither in its "
                             "folder nor open. Open the CT series first (File > Open Folder, or drop the series "
                             f"folder on the window), then open {name} again")
                return [(None,)]
        labels = read_dicom_labels(path, like, kind)
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as exc:
        tell(viewer, f"cannot open {name} ({what}): {exc}")
        return [(None,)]
    return [(labels.array, labels_layer_kwargs(labels), "labels")]
