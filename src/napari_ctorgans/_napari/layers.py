"""Converting between Volumes and napari layers (layer-data tuples, geometry in layer metadata)."""

from __future__ import annotations

import numpy as np

from ..organs import ORGANS, napari_colormap
from ..volume import Volume

GEOMETRY_KEY = "ctorgans_geometry"

#: CT display windows as (low, high) HU; the data stays untouched, only contrast limits change.
WINDOWS: dict[str, tuple[float, float]] = {
    "soft tissue": (-160.0, 240.0),  # W 400, L 40
    "lung": (-1350.0, 150.0),  # W 1500, L -600
    "bone": (-500.0, 1300.0),  # W 1800, L 400
    "liver": (-25.0, 175.0),  # W 200, L 75
}


def image_layer_kwargs(volume: Volume, *, name: str | None = None, window: str = "soft tissue") -> dict:
    """Keyword arguments for ``viewer.add_image`` that show a CT in its physical proportions."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}")
    return {
        "name": name or _stem(volume.path) or "CT",
        "colormap": "gray",
        "contrast_limits": WINDOWS[window],
        "metadata": {GEOMETRY_KEY: volume.geometry(), "ct_window": window},
        **volume.napari_kwargs(),
    }


def organ_kwargs() -> dict:
    """Organ colours and names (layer features: napari shows the organ under the cursor in the status bar)."""
    values = sorted(ORGANS)
    return {
        "colormap": napari_colormap(),
        "features": {"index": values, "organ": [ORGANS[v].name for v in values]},
        "metadata": {"organs": {v: ORGANS[v].name for v in values}},
    }


def labels_layer_kwargs(volume: Volume, *, name: str | None = None) -> dict:
    """Keyword arguments for ``viewer.add_labels``: organ names and colours from ``ORGANS``, CT geometry."""
    kwargs = organ_kwargs()
    kwargs["metadata"][GEOMETRY_KEY] = volume.geometry()
    return {"name": name or (_stem(volume.path) or "labels"), **kwargs, **volume.napari_kwargs()}


def volume_from_layer(layer) -> Volume:
    """Rebuild a Volume (array + geometry) from a napari Image or Labels layer."""
    data = np.asarray(layer.data)
    geometry = (layer.metadata or {}).get(GEOMETRY_KEY)
    if geometry and tuple(geometry.get("shape", data.shape)) == data.shape:
        return Volume.from_geometry(data, geometry)
    if data.ndim != 3:
        raise ValueError(f"layer {layer.name!r} is {data.ndim}D; CT tools need a 3D (z, y, x) layer")
    return Volume(data, spacing=tuple(layer.scale), origin=tuple(layer.translate))


def digest(data) -> str:
    """Fingerprint of a layer's data: tells whether the user edited a layer since a widget wrote it."""
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(np.asarray(data)).view(np.uint8)).hexdigest()


def bounding_box(where: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (tuple of slices) holding every True voxel of ``where``; None when there is none."""
    box = []
    for axis in range(where.ndim):  # numpy reductions release the GIL (scipy's find_objects does not)
        hit = np.flatnonzero(where.any(axis=tuple(a for a in range(where.ndim) if a != axis)))
        if not hit.size:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def assign_box(layer, box: tuple[slice, ...], new: np.ndarray, *, before: np.ndarray | None = None,
               changed: int | None = None) -> int:
    """Replace ``layer.data[box]`` by ``new`` as one step of the layer's undo history; returns voxels changed.

    A box copy is much cheaper on the GUI thread than napari's per-voxel ``data_setitem`` for organ-sized edits
    (millions of voxels). The history atom is napari's documented (indices, before, after) form, with slices.
    ``before`` (a copy of ``layer.data[box]`` now) and ``changed`` (the voxels where it differs from ``new``) may
    be given when already computed off the GUI thread.
    """
    before = np.array(layer.data[box], copy=True) if before is None else before
    n = int(np.count_nonzero(before != new)) if changed is None else int(changed)
    if not n:
        return 0
    new = np.asarray(new, dtype=before.dtype)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # napari flags plugin access to its history helper
        save = getattr(layer, "_save_history", None)
    if save is None:  # a napari without it: the public per-voxel path (slower for whole organs)
        idx = np.nonzero(before != new)
        layer.data_setitem(tuple(i + s.start for i, s in zip(idx, box)), new[idx])
        return n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        save((box, before, new))
    layer.data[box] = new
    layer.refresh()
    return n


def paint(layer, where: np.ndarray, values) -> None:
    """Write ``values`` at ``where`` through the Labels layer's edit history, so napari's undo reverts it."""
    box = bounding_box(where)
    if box is None:
        return
    current = np.asarray(layer.data[box])
    new = np.where(where[box], values[box] if isinstance(values, np.ndarray) else values, current)
    assign_box(layer, box, new)


def _stem(path: str | None) -> str | None:
    if not path:
        return None
    from pathlib import Path

    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


#: layer metadata key of layers that only preview something (the Augment tab's): never offered as input
PREVIEW_KEY = "ctorgans_preview"
#: metadata key of the Predict tab's uncertainty layers (an Image of values 0 to 1, never offered as a CT)
UNCERTAINTY_KEY = "ctorgans_uncertainty"


def is_preview(layer) -> bool:
    """Whether ``layer`` is a preview a widget shows for a while (never a CT or labels to work on)."""
    return bool((getattr(layer, "metadata", None) or {}).get(PREVIEW_KEY))


def ct_refusal(layer) -> str | None:
    """Why an Image layer cannot be used as a CT, in the user's words (what it is, then why in brackets: "2D (a CT
    is ...)"); None when it can (3D, one value a voxel)."""
    if is_preview(layer):
        return "the augmentation preview"
    if (getattr(layer, "metadata", None) or {}).get(UNCERTAINTY_KEY):
        return "an uncertainty map (values 0 to 1, not Hounsfield units)"
    if getattr(layer, "rgb", False):
        return "a colour (RGB) picture (a CT has one value per voxel)"
    ndim = np.ndim(layer.data) if not getattr(layer, "multiscale", False) else np.ndim(layer.data[0])
    if ndim != 3:
        return f"{ndim}D (a CT is a 3D volume: slices x rows x columns)"
    return None


def ct_layer_names(viewer) -> list[str]:
    """Names of the Image layers that can be used as a CT (see :func:`ct_refusal`), in layer order."""
    from napari.layers import Image

    return [ly.name for ly in viewer.layers if isinstance(ly, Image) and ct_refusal(ly) is None]


def labels_layer_names(viewer) -> list[str]:
    """Names of the Labels layers a widget may work on (previews left out), in layer order."""
    from napari.layers import Labels

    return [ly.name for ly in viewer.layers if isinstance(ly, Labels) and not is_preview(ly)]


def refused_note(viewer) -> str:
    """The status-line sentence naming the Image layers not offered as a CT and why ("" when there are none)."""
    from napari.layers import Image

    refused = [(ly.name, ct_refusal(ly)) for ly in viewer.layers if isinstance(ly, Image) and not is_preview(ly)]
    refused = [f"'{name}' is {why}" for name, why in refused if why]
    return f"; not offered as a CT: {', '.join(refused)}" if refused else ""
