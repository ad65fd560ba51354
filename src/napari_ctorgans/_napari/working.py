"""The working Labels layer of a CT: every tool adds its organ to it and never erases other organs or user edits.

The layer remembers what the tools wrote (``tool record``). A voxel whose value differs from that record was painted
(or erased) by the user and is never touched again by a tool. A tool writing organ ``v`` may replace the voxels of
its own earlier ``v`` result (through the layer's undo history) and claim empty voxels; every other voxel stays.
The body mask is not an organ: it goes to a layer of its own.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

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


class Update(NamedTuple):
    """A tool's change to a working layer, prepared off the GUI thread (see :func:`organs_update`)."""

    shape: tuple[int, ...]  # the layer's shape when the tool started
    box: tuple[slice, ...] | None  # the bounding box of the change (None: nothing changes)
    before: np.ndarray | None  # the labels in ``box`` when the tool started
    after: np.ndarray | None  # the labels in ``box`` afterwards
    record: np.ndarray  # the updated tool record (the layer's shape)
    n: int  # voxels changed


def organs_update(data: np.ndarray, record: np.ndarray, masks: dict) -> Update:
    """The change that makes each organ ``{value: mask}`` the tool's new result, touching no one else's voxels.

    Every whole-volume pass happens here, in the worker (numpy ufuncs, ``copyto`` and reductions release the GIL),
    so that writing the result on the GUI thread is one comparison and one copy of the changed box.

    Parameters
    ----------
    data : ndarray
        The layer's labels when the tool started (not modified).
    record : ndarray
        What the tools wrote (a voxel where ``data != record`` is the user's).
    masks : dict of int -> ndarray of bool
        The tool's new result per organ value, applied in order (the first claims a free voxel).

    Returns
    -------
    Update
        The box of the change, the labels in it before and after, the updated record and the voxels changed.
    """
    cur, rec = data.copy(), record.copy()
    for value, mask in masks.items():
        free = (cur == rec) & ((rec == 0) | (rec == value))
        mine = free & (rec == value)
        np.copyto(cur, 0, where=mine)
        np.copyto(rec, 0, where=mine)
        claim = free & mask
        np.copyto(cur, value, where=claim)
        np.copyto(rec, value, where=claim)
    changed = cur != data
    box = bounding_box(changed)
    if box is None:
        return Update(data.shape, None, None, None, rec, 0)
    return Update(data.shape, box, np.array(data[box]), np.array(cur[box]), rec, int(np.count_nonzero(changed[box])))


def apply_update(layer, update: Update) -> int:
    """Write an :func:`organs_update` into ``layer`` (undoable); voxels the user changed meanwhile are kept.

    On the GUI thread this is one comparison of the box (did the user paint in it while the tool ran?) and one
    copy; only when the user did paint there are their voxels merged in. Returns the number of voxels written.
    """
    if tuple(np.shape(layer.data)) != tuple(update.shape):
        return 0
    n = 0
    if update.box is not None:
        now = np.asarray(layer.data[update.box])
        if np.array_equal(now, update.before):
            n = assign_box(layer, update.box, update.after, before=update.before, changed=update.n)
        else:  # painted by the user while the tool ran: theirs
            n = assign_box(layer, update.box, np.where(now != update.before, now, update.after))
    _TOOL_RECORD[layer] = update.record
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
