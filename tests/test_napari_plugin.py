"""The plugin inside a real napari viewer: reader, writer, sample data, window presets."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ctorgans as ct
from conftest import data_file

pytestmark = pytest.mark.gui


def test_manifest_imports_every_python_name():
    import importlib

    import yaml
    from pathlib import Path

    manifest = yaml.safe_load((Path(__file__).parents[1] / "napari.yaml").read_text())
    names = [c["python_name"] for c in manifest["contributions"]["commands"]]
    assert names
    for name in names:
        module, attr = name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_reader_declines_what_it_cannot_read(tmp_path):
    from napari_ctorgans._napari.reader import get_reader

    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.nii.gz")) is None
    assert get_reader(str(tmp_path)) is None  # a folder with no DICOM
    assert get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None
    assert get_reader(12345) is None


def test_open_ct_and_labels_aligned(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(data_file("abdomen_3mm.nii.gz")), plugin="napari-ctorgans")
    image = layers[0]
    assert image.__class__.__name__ == "Image"
    vol = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    np.testing.assert_array_equal(image.data, vol.array)  # HU untouched
    np.testing.assert_allclose(image.scale, vol.spacing)
    np.testing.assert_allclose(image.translate, vol.origin)
    assert tuple(image.contrast_limits) == (-160.0, 240.0)
    labels = viewer.open(str(data_file("abdomen_3mm_ctorg.nii.gz")), plugin="napari-ctorgans")[0]
    assert labels.__class__.__name__ == "Labels"
    np.testing.assert_allclose(labels.scale, image.scale)
    np.testing.assert_allclose(labels.translate, image.translate)
    assert "lungs" in list(labels.features["organ"])
    # a label voxel's world position is the same as the CT voxel's
    idx = np.argwhere(labels.data == 1)[0]
    np.testing.assert_allclose(labels.data_to_world(idx), image.data_to_world(idx))


def test_open_dicom_folder_with_true_proportions(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.open(str(data_file("abdomen_dicom")), plugin="napari-ctorgans")[0]
    assert layer.data.shape == (20, 512, 512)
    np.testing.assert_allclose(layer.scale, (2.0, 0.9765625, 0.9765625), atol=1e-5)


def test_sample_data_and_screenshot_shows_anatomy(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ctorgans", "phantom")
    names = [layer.name for layer in viewer.layers]
    assert names == ["CT phantom", "phantom labels"]
    viewer.layers["phantom labels"].visible = False
    viewer.dims.set_point(0, viewer.layers["CT phantom"].data_to_world((100, 0, 0))[0])  # lung level
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    gray = shot[..., :3].mean(axis=-1)
    assert gray.std() > 20  # not a blank canvas: body, lungs and air differ
    assert (gray > 100).mean() > 0.05 and (gray < 30).mean() > 0.05


def test_window_widget_changes_limits_not_data(make_napari_viewer):
    from napari_ctorgans._napari.window_widget import ct_window_widget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-ctorgans", "phantom")
    image = viewer.layers["CT phantom"]
    before = image.data.copy()
    widget = ct_window_widget()
    viewer.window.add_dock_widget(widget)
    widget.image.value = image
    widget.window.value = "lung"
    widget()
    assert tuple(image.contrast_limits) == (-1350.0, 150.0)
    np.testing.assert_array_equal(image.data, before)


def test_writer_saves_edited_labels_in_source_geometry(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(data_file("abdomen_3mm.nii.gz")), plugin="napari-ctorgans")
    labels = viewer.open(str(data_file("abdomen_3mm_ctorg.nii.gz")), plugin="napari-ctorgans")[0]
    labels.data[50, 50, 50] = 4  # a user's edit
    out = tmp_path / "edited.nii.gz"
    from napari_ctorgans._napari.writer import write_labels

    written = write_labels(str(out), labels.data, {"metadata": labels.metadata, "scale": labels.scale,
                                                    "translate": labels.translate})
    assert written == [str(out)]
    back = ct.read_labels(out)
    np.testing.assert_array_equal(back.array, labels.data)
    ref = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    assert back.same_grid(ref)
    import SimpleITK as sitk

    assert sitk.ReadImage(str(out)).GetDirection() == sitk.ReadImage(str(data_file("abdomen_3mm.nii.gz"))).GetDirection()


def test_save_through_napari_uses_plugin_writer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-ctorgans", "phantom")
    layer = viewer.layers["phantom labels"]
    out = tmp_path / "phantom_labels.nii.gz"
    paths = layer.save(str(out), plugin="napari-ctorgans")
    assert paths and out.exists()
    back = ct.read_labels(out)
    np.testing.assert_array_equal(back.array, layer.data)
    np.testing.assert_allclose(back.spacing, layer.scale)


def test_panel_fits_a_laptop_screen_and_steps_dock_alone(make_napari_viewer, qtbot, abdomen_3mm):
    """Bug 4: one "CT Organs" panel, a scrollable tab per step, in a 1280 x 800 window; each step docks alone."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication, QPushButton

    from napari_ctorgans._napari.layers import image_layer_kwargs
    from napari_ctorgans._napari.panel import STEPS

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    viewer.add_image(abdomen_3mm.array, **image_layer_kwargs(abdomen_3mm, name="CT"))
    QApplication.processEvents()
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == [t for t, _, _ in STEPS]
    for i in range(panel.tabs.count()):  # every tab shown in turn: the window never grows past the screen
        panel.tabs.setCurrentIndex(i)
        qtbot.wait(50)
        assert window.minimumSizeHint().height() <= 800 and window.minimumSizeHint().width() <= 1280
        assert window.height() <= 800 and window.width() <= 1280
    assert panel.width() <= 420 and viewer.window._qt_viewer.canvas.native.width() >= 500  # beside the canvas
    # the steps are also separate widgets in the Plugins menu
    for name in ("Auto label", "Augmentation preview", "Train", "Predict", "Evaluate", "Export"):
        viewer.window.add_plugin_dock_widget("napari-ctorgans", name)
    # closing the panel tears every tab down (the Train tab included)
    close = next(b for b in dock.findChildren(QPushButton) if b.objectName() == "QTitleBarCloseButton")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    assert panel.closed and all(getattr(w, "closed", True) for w in panel.steps.values())
    from napari_ctorgans._napari.step import disconnect_owner

    assert disconnect_owner(viewer, panel.steps["train"]) == 0


def test_every_step_waits_for_its_inputs(make_napari_viewer):
    """Bug 7: in an empty viewer no step can start; each says in its own status line what it needs."""
    from napari_ctorgans._napari.panel import CTOrgansPanel

    viewer = make_napari_viewer()
    panel = CTOrgansPanel(viewer)
    label, predict, evaluate, export = (panel.steps[k] for k in ("label", "predict", "evaluate", "export"))
    assert not any(b.isEnabled() for b in (*label.buttons.values(), label.grow_button, predict.button,
                                           predict.add_case_button, evaluate.button, evaluate.stats_button,
                                           export.save_button))
    for step in (label, predict, evaluate, export):
        assert step.status.text(), type(step).__name__
    assert "open a CT" in label.status.text() and "open a CT" in predict.status.text()


def test_export_writes_in_the_ct_geometry_and_never_over_a_file(make_napari_viewer, qtbot, tmp_path, abdomen_3mm):
    from napari_ctorgans._napari.export_widget import ExportWidget, export_formats
    from napari_ctorgans._napari.layers import image_layer_kwargs
    from napari_ctorgans._napari.working import working_layer

    viewer = make_napari_viewer()
    ct_layer = viewer.add_image(abdomen_3mm.array, **image_layer_kwargs(abdomen_3mm, name="CT"))
    layer = working_layer(viewer, ct_layer)
    layer.data_setitem((np.array([5]), np.array([6]), np.array([7])), 4)
    w = ExportWidget(viewer)
    assert [s for _, s in export_formats()][:3] == [".nii.gz", ".nrrd", ".mha"]
    w.labels_combo.setCurrentText("CT organs")
    w.path_edit.setText(str(tmp_path / "organs.nii.gz"))
    w.format_combo.setCurrentIndex(1)  # the file name follows the format
    assert w.path_edit.text().endswith("organs.nrrd")
    with qtbot.waitSignal(w.save().finished, timeout=60_000):
        pass
    out = tmp_path / "organs.nrrd"
    back = ct.read_labels(out)
    assert back.same_grid(abdomen_3mm) and back.array[5, 6, 7] == 4 and back.array.sum() == 4
    before = out.read_bytes()
    layer.data_setitem((np.array([5]), np.array([6]), np.array([8])), 1)
    assert w.save() is None and "exists" in w.status.text() and "replace" in w.status.text()
    assert out.read_bytes() == before
    w.replace.setChecked(True)
    with qtbot.waitSignal(w.save().finished, timeout=60_000):
        pass
    assert ct.read_labels(out).array[5, 6, 8] == 1


def test_export_offers_dicom_seg_and_rtstruct_of_a_dicom_ct(make_napari_viewer, qtbot, tmp_path):
    from napari_ctorgans._napari.export_widget import ExportWidget, export_formats
    from napari_ctorgans._napari.working import working_layer

    viewer = make_napari_viewer()
    series = viewer.open(str(data_file("abdomen_dicom")), plugin="napari-ctorgans")[0]
    layer = working_layer(viewer, series)
    layer.data_setitem((np.arange(5, 10), np.arange(200, 205), np.arange(200, 205)), 1)
    w = ExportWidget(viewer)
    w.labels_combo.setCurrentText(layer.name)
    suffixes = [s for _, s in export_formats()]
    assert suffixes[3:] == [".dcm", ".rtstruct.dcm"]
    for i in (3, 4):
        w.format_combo.setCurrentIndex(i)
        w.path_edit.setText(str(tmp_path / f"organs{suffixes[i]}"))
        with qtbot.waitSignal(w.save().finished, timeout=120_000):
            pass
        out = tmp_path / f"organs{suffixes[i]}"
        assert out.read_bytes()[128:132] == b"DICM" and str(out) in w.status.text()
