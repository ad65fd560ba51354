"""The working Labels layer of a CT: every tool adds its organ to it and never erases other organs or user edits.

The layer remembers what the tools wrote (``tool record``). A voxel whose value differs from that record was painted
(or erased) by the user and is never touched again by a tool. A tool writing organ ``v`` may replace the voxels of
its own earlier ``v`` result (through the layer's undo history) and claim empty voxels; every other voxel stays.
The body mask is not an organ: it goes to a layer of its own.
"""

from __future__ import annotations

import weakref

import numpy as np

from .layers import assign_box, bounding_box, labels_layer_kwargs, paint, volume_from_layer

#: layer -> what the tools wrote into it (uint8, the layer's shape)
_TOOL_RECORD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

BODY_VALUE = 1
BODY_COLOR = (0.0, 0.8, 0.8, 1.0)


def working_name(ct_layer) -> str:
    return f"{ct_layer.name} organs"


def working_layer(viewer, ct_layer):
    """The working Labels layer of ``ct_layer`` (created empty, with organ names and colours, when missing)."""
    name = working_name(ct_layer)
    shape = np.shape(ct_layer.data)
    if name in viewer.layers and np.shape(viewer.layers[name].data) == shape:
        layer = viewer.layers[name]
        _TOOL_RECORD.setdefault(layer, np.zeros(shape, np.uint8))
        return layer
    if name in viewer.layers:  # same name, other grid (the user's): leave it alone
        i = 2
        while f"{name} [{i}]" in viewer.layers:
            i += 1
        name = f"{name} [{i}]"
    kwargs = labels_layer_kwargs(volume_from_layer(ct_layer), name=name)
    kwargs["scale"], kwargs["translate"] = tuple(ct_layer.scale[-3:]), tuple(ct_layer.translate[-3:])
    layer = viewer.add_labels(np.zeros(shape, np.uint8), **kwargs)
    _TOOL_RECORD[layer] = np.zeros(shape, np.uint8)
    return layer


def tool_record(layer) -> np.ndarray:
    """What the tools wrote into ``layer`` (zeros for a layer no tool wrote)."""
    return _TOOL_RECORD.setdefault(layer, np.zeros(np.shape(layer.data), np.uint8))


def organs_update(data: np.ndarray, record: np.ndarray, masks: dict):
    """The change that makes each organ ``{value: mask}`` the tool's new result, touching no one else's voxels.

    Parameters
    ----------
    data : ndarray
        The layer's labels now.
    record : ndarray
        What the tools wrote (a voxel where ``data != record`` is the user's).
    masks : dict of int -> ndarray of bool
        The tool's new result per organ value, applied in order (the first claims a free voxel).

    Returns
    -------
    (box, new_box, new_record)
        The bounding box of the change (None: nothing changes), the labels in that box afterwards, and the
        updated record.
    """
    cur, rec = data.copy(), record.copy()
    for value, mask in masks.items():
        free = (cur == rec) & ((rec == 0) | (rec == value))
        mine = free & (rec == value)
        cur[mine] = 0
        rec[mine] = 0
        claim = free & mask
        cur[claim] = value
        rec[claim] = value
    box = bounding_box(cur != data)
    return box, (None if box is None else cur[box]), rec


def apply_update(layer, data_before: np.ndarray, update) -> int:
    """Write an :func:`organs_update` into ``layer`` (undoable); voxels the user changed meanwhile are kept.

    Returns the number of voxels written.
    """
    box, new_box, new_record = update
    if np.shape(layer.data) != data_before.shape:
        return 0
    n = 0
    if box is not None:
        now = np.asarray(layer.data[box])
        user = now != data_before[box]  # painted by the user while the tool ran: theirs
        if user.any():
            new_box = np.where(user, now, new_box)
        n = assign_box(layer, box, new_box)
    _TOOL_RECORD[layer] = new_record
    return n


def body_layer(viewer, ct_layer, mask: np.ndarray):
    """Show the body mask in its own layer "<CT> body" (value 1 named "body"; never mixed with organ labels)."""
    name = f"{ct_layer.name} body"
    data = mask.astype(np.uint8) * BODY_VALUE
    if name in viewer.layers and np.shape(viewer.layers[name].data) == data.shape:
        layer = viewer.layers[name]
        paint(layer, np.asarray(layer.data) != data, data)
        return layer
    from napari.utils.colormaps import DirectLabelColormap

    return viewer.add_labels(
        data, name=name, scale=tuple(ct_layer.scale[-3:]), translate=tuple(ct_layer.translate[-3:]), opacity=0.3,
        colormap=DirectLabelColormap(color_dict={0: (0, 0, 0, 0), BODY_VALUE: BODY_COLOR, None: (1, 0, 1, 1)}),
        features={"index": [0, BODY_VALUE], "organ": ["background", "body"]},
        metadata={"organs": {0: "background", BODY_VALUE: "body"}},
    )
