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
