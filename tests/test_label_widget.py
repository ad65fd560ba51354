"""The Auto label widget in a real napari viewer, on a phantom and on the real abdomen CT."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ctorgans as ct

pytestmark = pytest.mark.gui


def _wait(qtbot, widget):
    # the widget clears .worker in its own slot on `finished` (connected before the worker started: no race)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=240_000)


def test_auto_label_all_then_grow(make_napari_viewer, qtbot, abdomen_3mm, abdomen_3mm_labels):
    from napari_ctorgans._napari.label_widget import RESULT_NAME, AutoLabelWidget

    viewer = make_napari_viewer()
    image = viewer.add_image(abdomen_3mm.array, name="CT", **abdomen_3mm.napari_kwargs())
    widget = AutoLabelWidget(viewer)
    assert widget.image_combo.currentText() == "CT"
    widget.run("all")
    _wait(qtbot, widget)
    layer = viewer.layers[RESULT_NAME]
    assert np.allclose(layer.scale, image.scale) and np.allclose(layer.translate, image.translate)
    assert np.array_equal(np.asarray(layer.data), ct.auto_label(abdomen_3mm))

    # the user edits the layer: a re-run asks first and touches nothing until answered
    from qtpy.QtCore import Qt

    edited = np.asarray(layer.data).copy()
    edited[0, 0, 0] = 1
    layer.data = edited
    widget.run("lungs")
    _wait(qtbot, widget)
    assert widget.prompt.pending and not widget.prompt.isHidden()
    assert "auto labels" in widget.prompt.text.text()
    np.testing.assert_array_equal(np.asarray(layer.data), edited)
    # "Replace" writes through the undo history: undo brings the edits back
    qtbot.mouseClick(widget.prompt.buttons["replace"], Qt.MouseButton.LeftButton)
    assert widget.prompt.isHidden() and not widget.prompt.pending
    assert set(np.unique(np.asarray(layer.data))) == {0, 3}
    layer.undo()
    np.testing.assert_array_equal(np.asarray(layer.data), edited)
    # "New layer" keeps the edited layer as it is
    widget.run("lungs")
    _wait(qtbot, widget)
    assert widget.prompt.pending
    qtbot.mouseClick(widget.prompt.buttons["new layer"], Qt.MouseButton.LeftButton)
    labels_layers = [ly for ly in viewer.layers if ly.name.startswith(RESULT_NAME)]
    assert len(labels_layers) == 2
    np.testing.assert_array_equal(np.asarray(layer.data), edited)
    assert set(np.unique(np.asarray(widget.result_layer.data))) == {0, 3}

    # grow the liver from one click given in world coordinates
    from scipy import ndimage as ndi

    liver = abdomen_3mm_labels.array == 1
    dt = ndi.distance_transform_edt(liver)
    seed = np.array(np.unravel_index(dt.argmax(), dt.shape), float)
    world = seed * np.asarray(abdomen_3mm.spacing) + np.asarray(abdomen_3mm.origin)
    viewer.add_points([world], name="seeds")
    widget.organ_combo.setCurrentText("liver")
    painted = widget.grow()
    data = np.asarray(widget.result_layer.data)
    assert painted.any() and np.all(data[painted] == 1)
    assert np.count_nonzero(data == 3) > 0  # lungs not erased
    d = 2 * np.count_nonzero((data == 1) & liver) / (np.count_nonzero(data == 1) + np.count_nonzero(liver))
    assert d >= 0.75
    # napari's undo reverts the grown organ and nothing else
    widget.result_layer.undo()
    after = np.asarray(widget.result_layer.data)
    assert not np.any(after == 1)
    assert np.count_nonzero(after == 3) == np.count_nonzero(data == 3)


def test_cancel_keeps_viewer_usable(make_napari_viewer, qtbot):
    from napari_ctorgans._napari.label_widget import AutoLabelWidget

    vol, _ = ct.make_phantom(seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="phantom", **vol.napari_kwargs())
    widget = AutoLabelWidget(viewer)
    widget.run("all")
    widget.cancel()
    _wait(qtbot, widget)
    assert widget.cancel_button.isEnabled() is False
    assert all(b.isEnabled() for b in widget.buttons.values())
