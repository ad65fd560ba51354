"""Prompts in the Label tab of a real napari viewer on the real abdomen: clicks, a box, the size flag and its undo.

After every step the user's painted voxels and the other organs are checked unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
from gui_timing import Ticks
from qtpy.QtCore import Qt
from scipy import ndimage as ndi

pytestmark = pytest.mark.gui


def _click(qtbot, button):
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _wait(qtbot, step, timeout=120_000):
    qtbot.waitUntil(lambda: step.worker is None and not step._queue, timeout=timeout)
    qtbot.wait(50)


def _longest_gap(qtbot, action) -> float:
    """The longest gap between the ticks of a 50 ms QTimer while ``action`` runs (the GUI thread's stalls)."""
    with Ticks() as ticks:
        action()
    return ticks.longest_gap()


def _deep(mask):
    dt = ndi.distance_transform_edt(mask)
    return np.array(np.unravel_index(dt.argmax(), dt.shape), float)


def _world_to(layer, ct_layer, voxel):
    """A CT voxel position in ``layer``'s data coordinates (where a click there lands)."""
    return np.asarray(layer.world_to_data(ct_layer.data_to_world(voxel)))


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_prompts_change_only_their_organ_and_flag_a_leak(make_napari_viewer, qtbot, abdomen_3mm, abdomen_3mm_labels):
    from napari_ctorgans._napari.label_widget import AutoLabelWidget
    from napari_ctorgans._napari.layers import image_layer_kwargs

    viewer = make_napari_viewer()
    ct_layer = viewer.add_image(abdomen_3mm.array, **image_layer_kwargs(abdomen_3mm, name="CT"))
    w = AutoLabelWidget(viewer)
    panel = w.prompts
    qtbot.waitUntil(lambda: "CT organs" in viewer.layers, timeout=20_000)
    _wait(qtbot, panel)  # the per-scan work, prepared in the background
    layer = viewer.layers["CT organs"]
    ref = np.asarray(abdomen_3mm_labels.array)

    # the user's own work: a bladder block painted by hand, and the bone by hand too (another organ)
    painted = (slice(20, 26), slice(40, 46), slice(55, 61))
    idx = tuple(np.mgrid[painted].reshape(3, -1))
    layer.data_setitem(idx, 2)
    bone = np.nonzero(ref == 5)
    layer.data_setitem(bone, 5)

    def others_intact(value):
        data = np.asarray(layer.data)
        assert np.all(data[idx] == 2), "the user's painting changed"
        if value != 5:
            assert np.array_equal(data == 5, ref == 5), "another organ changed"

    # "kidneys" clicked in the (not yet labelled) liver: it would leak, so nothing changes and the flag says why
    panel.organ_combo.setCurrentText("kidneys")
    _click(qtbot, panel.click_button)
    points = viewer.layers["CT prompts"]
    assert viewer.layers.selection.active is points and points.mode == "add"
    before = np.asarray(layer.data).copy()
    baseline = _longest_gap(qtbot, lambda: qtbot.wait(2000))  # what a busy shared machine does with nothing running
    # the prompt runs from the click handler on: the gap is timed from there to the result in the layer (napari's
    # own Points.add, which calls the handler, takes tenths of a second on a loaded machine before it does)
    points.add(_world_to(points, ct_layer, _deep(ref == 1) + [0, 3, 0]))
    gap = _longest_gap(qtbot, lambda: _wait(qtbot, panel))
    allowed = 0.25 + max(0.0, baseline - 0.1)
    assert gap < allowed, f"the GUI thread stalled {gap:.3f} s during a prompt (idle: {baseline:.3f} s)"
    assert not panel.flag.isHidden() and "kidneys" in panel.flag.text() and "nothing" in panel.flag.text()
    assert np.array_equal(np.asarray(layer.data), before)
    others_intact(4)

    # a positive click inside the liver
    panel.organ_combo.setCurrentText("liver")
    points.add(_world_to(points, ct_layer, _deep(ref == 1)))
    _wait(qtbot, panel)
    liver = np.asarray(layer.data) == 1
    assert _dice(liver, ref == 1) >= 0.8, panel.status.text()
    assert panel.flag.isHidden()
    others_intact(1)
    # undone by the button, and done again
    _click(qtbot, panel.undo_button)
    assert not (np.asarray(layer.data) == 1).any() and not panel.undo_button.isEnabled()
    others_intact(1)
    points.add(_world_to(points, ct_layer, _deep(ref == 1) + [0, 0, 1]))
    _wait(qtbot, panel)
    liver = np.asarray(layer.data) == 1
    assert _dice(liver, ref == 1) >= 0.8, panel.status.text()

    # a negative click on the liver's far side removes a part of it and nothing else
    panel.negative.setChecked(True)
    before = np.asarray(layer.data).copy()
    edge = np.argwhere(liver & (ndi.distance_transform_edt(liver) >= 2))[0]
    points.add(_world_to(points, ct_layer, edge))
    _wait(qtbot, panel)
    after = np.asarray(layer.data)
    assert after[tuple(edge)] == 0 and np.all((after == before) | ((before == 1) & (after == 0)))
    others_intact(1)

    panel.positive.setChecked(True)
    # a box in one slice around the bladder grows the bladder in 3D, sparing the painted block
    panel.organ_combo.setCurrentText("bladder")
    bladder = ref == 2
    z = int(np.argmax(bladder.sum(axis=(1, 2))))
    ys, xs = np.nonzero(bladder[z])
    shapes = panel.shapes_layer(activate=True)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)
    shapes.add_rectangles(np.array([_world_to(shapes, ct_layer, c) for c in corners]))
    _click(qtbot, panel.apply_shape_button)
    _wait(qtbot, panel)
    grown = np.asarray(layer.data) == 2
    assert np.flatnonzero(grown.any(axis=(1, 2))).size >= 5, panel.status.text()
    others_intact(2)
