"""The "Augmentation preview" widget in a real napari viewer on the real abdomen CT."""

from __future__ import annotations

import time

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans.augment import AugmentParams, augment

pytestmark = pytest.mark.gui


@pytest.fixture
def viewer_with_ct(make_napari_viewer, abdomen_3mm, abdomen_3mm_labels):
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs

    viewer = make_napari_viewer()
    viewer.add_image(abdomen_3mm.array, **image_layer_kwargs(abdomen_3mm, name="abdomen"))
    viewer.add_labels(abdomen_3mm_labels.array, **labels_layer_kwargs(abdomen_3mm_labels, name="organs"))
    return viewer


def _wait(qtbot, widget, n):
    qtbot.waitUntil(lambda: widget.n_previews >= n and not widget.busy, timeout=60000)


def test_preview_updates_live_and_matches_api(viewer_with_ct, qtbot):
    from napari_ctorgans._napari.augment_widget import IMAGE_NAME, LABELS_NAME, AugmentationPreview

    viewer = viewer_with_ct
    widget = AugmentationPreview(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.image_combo.currentText() == "abdomen"
    assert widget.labels_combo.currentText() == "organs"
    _wait(qtbot, widget, 1)
    img = viewer.layers[IMAGE_NAME].data
    lab = viewer.layers[LABELS_NAME].data
    ref, ref_lab = augment(viewer.layers["abdomen"].data, viewer.layers["organs"].data, widget.params(), seed=0)
    np.testing.assert_array_equal(img, ref)
    np.testing.assert_array_equal(lab, ref_lab)
    # the preview sits beside the source, not on top of it
    assert viewer.layers[IMAGE_NAME].translate[2] > viewer.layers["abdomen"].translate[2] + 100

    # a parameter change triggers a new preview
    widget._controls["noise_sigma"].setValue((0.0, 0.0))
    widget._controls["occlusion_max"].setValue(0.0)
    _wait(qtbot, widget, 2)
    assert widget.last_drawn["noise_sigma"] == 0.0 and widget.last_drawn["occlusion"] is None
    # new random draw: different seed, different image, same layers (no pile-up)
    before = viewer.layers[IMAGE_NAME].data.copy()
    n_layers = len(viewer.layers)
    widget.new_draw_button.click()
    assert widget.seed_box.value() == 1
    _wait(qtbot, widget, 3)
    assert not np.array_equal(before, viewer.layers[IMAGE_NAME].data)
    assert len(viewer.layers) == n_layers


def test_gui_stays_responsive_while_computing(viewer_with_ct, qtbot):
    from napari_ctorgans._napari.augment_widget import AugmentationPreview

    widget = AugmentationPreview(viewer_with_ct)
    _wait(qtbot, widget, 1)
    # a burst of slider moves: debounced into few jobs, the event loop keeps ticking meanwhile
    ticks = []
    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    for v in range(10):
        widget._controls["elastic_magnitude"].setValue(float(v))
        qtbot.wait(10)
    _wait(qtbot, widget, 2)
    timer.stop()
    assert widget.n_previews <= 4  # debounced, not one job per move
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.max() < 1.0  # the GUI thread was never blocked for a second
    assert widget.last_drawn["elastic"] is not None


def test_save_load_params_and_invalid_values(viewer_with_ct, qtbot, tmp_path):
    from napari_ctorgans._napari.augment_widget import AugmentationPreview

    widget = AugmentationPreview(viewer_with_ct)
    _wait(qtbot, widget, 1)
    widget._controls["rotation_deg[1]"].setValue((-7.0, 9.0))
    widget._controls["reflect_prob[2]"].setValue(0.25)
    path = widget.save_params(tmp_path / "aug.json")
    p = ct.AugmentParams.load(path)
    assert p.rotation_deg[1] == (-7.0, 9.0) and p.reflect_prob[2] == 0.25
    other = AugmentParams(noise_sigma=(5.0, 6.0), displacement=(-3, 3))
    other.save(tmp_path / "other.json")
    widget.load_params(tmp_path / "other.json")
    assert widget.params().noise_sigma == (5.0, 6.0)
    assert widget.params().displacement == ((-3.0, 3.0),) * 3
    # inconsistent window: a clear message, no crash, no preview
    qtbot.waitUntil(lambda: not widget.busy, timeout=60000)
    n = widget.n_previews
    widget._controls["window_low"].setValue((-100.0, 300.0))
    widget._controls["window_high"].setValue((200.0, 400.0))
    qtbot.waitUntil(lambda: widget.last_error is not None, timeout=5000)
    assert "window_low" in widget.status.text()
    assert widget.n_previews == n


def test_closed_dock_disconnects_and_stops(make_napari_viewer, qtbot, abdomen_3mm, abdomen_3mm_labels):
    """Bug 3: after its dock's close button, the preview never brings its layers back nor raises."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QPushButton

    from napari_ctorgans._napari.augment_widget import IMAGE_NAME, LABELS_NAME
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs

    viewer = make_napari_viewer(show=True)
    viewer.add_image(abdomen_3mm.array, **image_layer_kwargs(abdomen_3mm, name="abdomen"))
    viewer.add_labels(abdomen_3mm_labels.array, **labels_layer_kwargs(abdomen_3mm_labels, name="organs"))
    dock, widget = viewer.window.add_plugin_dock_widget("napari-ctorgans", "Augmentation preview")
    _wait(qtbot, widget, 1)
    widget._controls["noise_sigma"].setValue((0.0, 5.0))  # a preview is pending when the dock closes
    close = next(b for b in dock.findChildren(QPushButton) if b.objectName() == "QTitleBarCloseButton")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    assert widget.closed and not widget._timer.isActive()
    # the preview left with its dock; the user's layers stay
    assert IMAGE_NAME not in viewer.layers and LABELS_NAME not in viewer.layers and "organs" in viewer.layers
    viewer.layers.remove("organs")
    viewer.add_image(abdomen_3mm.array[:40], name="another CT", scale=abdomen_3mm.spacing)
    qtbot.wait(800)  # longer than the debounce and one preview
    assert [ly.name for ly in viewer.layers] == ["abdomen", "another CT"]
    n = widget.n_previews
    widget._refresh_layers()
    qtbot.wait(300)
    assert widget.n_previews == n


def test_controls_have_units_and_thin_slab_defaults(make_napari_viewer, qtbot, abdomen_dicom):
    """Friction 9: labelled controls with units, one value label per slider, tilts that fit a 40 mm slab."""
    from qtpy.QtWidgets import QFormLayout, QLabel

    from napari_ctorgans._napari.augment_widget import AugmentationPreview, slab_tilt_deg
    from napari_ctorgans._napari.layers import image_layer_kwargs

    viewer = make_napari_viewer()
    viewer.add_image(abdomen_dicom.array, **image_layer_kwargs(abdomen_dicom, name="series"))
    widget = AugmentationPreview(viewer)
    form = next(f for f in widget.findChildren(QFormLayout) if f.rowCount() > 10)
    names = [form.itemAt(i, QFormLayout.ItemRole.LabelRole).widget().text() for i in range(form.rowCount())]
    assert "rotation about y" in names and "noise sigma" in names and "noise_sigma" not in names
    assert widget._value_labels["noise_sigma"][0].text() == "0.0 to 40.0 HU"
    assert widget._value_labels["rotation_deg[0]"][0].text() == "-15.0 to 15.0 \u00b0"
    tilt = slab_tilt_deg(abdomen_dicom.shape, abdomen_dicom.spacing)
    assert tilt is not None and tilt < 3.0  # 20 slices of 2 mm
    p = widget.params()
    assert p.rotation_deg[0] == (-15.0, 15.0)  # the in-plane rotation keeps its default
    for k in (1, 2):
        assert max(abs(v) for v in p.rotation_deg[k]) <= tilt + 0.05
    assert "40 mm slab" in widget.status.text()
    assert isinstance(widget._value_labels["rotation_deg[1]"][0], QLabel)
    assert slab_tilt_deg((100, 200, 200), (3.0, 1.0, 1.0)) is None  # a 300 mm scan keeps the defaults
