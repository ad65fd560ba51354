"""The whole loop in one window, as a user does it: a real viewer, the CT Organs panel, the real abdomen CT.

open -> Auto label lungs, then bone -> grow liver, kidneys and bladder from clicked seeds -> train a short run ->
predict the DICOM series -> paint a correction -> add it to the training set -> fine-tune -> evaluate against the
reference -> save. After every step no organ the user made has vanished. The window with the panel fits 1280 x 800
and screenshots show each organ's colour.

With ``CTORGANS_SCREENSHOTS=<folder>`` the test also writes the user guide's pictures there
(``docs/make_screenshots.py`` runs it so).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

import napari_ctorgans as ct
from conftest import data_file

pytestmark = [pytest.mark.gui, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SHOTS = os.environ.get("CTORGANS_SCREENSHOTS")


def _click(qtbot, button):
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _wait(qtbot, step, timeout=300_000):
    qtbot.waitUntil(lambda: step.worker is None, timeout=timeout)


def _seeds(labels, value, n=1):
    """The deepest voxel of each of the ``n`` largest pieces of organ ``value`` (where a user would click)."""
    from scipy import ndimage as ndi

    pieces, count = ndi.label(labels == value)
    sizes = ndi.sum(np.ones_like(pieces), pieces, range(1, count + 1))
    seeds = []
    for piece in np.argsort(sizes)[::-1][:n] + 1:
        dt = ndi.distance_transform_edt(pieces == piece)
        seeds.append(np.unravel_index(dt.argmax(), dt.shape))
    return np.array(seeds, float)


def _shot(viewer, name, canvas_only=False):
    if not SHOTS:
        return None
    import imageio.v3 as iio

    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    img = viewer.screenshot(canvas_only=True, flash=False) if canvas_only else viewer.window.screenshot(flash=False)
    iio.imwrite(Path(SHOTS) / name, img)
    return img


class Kept:
    """What the user made in the working layer: every later step must leave it as it is."""

    def __init__(self, layer):
        self.layer = layer
        self.counts: dict[int, int] = {}

    def made(self, value):
        self.counts[value] = int(np.count_nonzero(np.asarray(self.layer.data) == value))
        assert self.counts[value] > 100, ct.ORGANS[value].name

    def check(self, step):
        data = np.asarray(self.layer.data)
        now = {v: int(np.count_nonzero(data == v)) for v in self.counts}
        assert now == self.counts, f"after {step}: organ voxels {now} != {self.counts}"


def _colour_check(viewer, layer, values, qtbot):
    """A canvas screenshot through each organ shows that organ's colour (the layer drawn opaque for the check)."""
    opacity = layer.opacity
    layer.opacity = 1.0
    data = np.asarray(layer.data)
    for value in values:
        z = int(np.argmax((data == value).sum(axis=(1, 2))))
        viewer.dims.set_point(0, layer.data_to_world((z, 0, 0))[0])
        qtbot.wait(100)
        shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        rgb = np.round(np.asarray(ct.ORGANS[value].color[:3]) * 255)
        hits = np.count_nonzero(np.abs(shot - rgb).max(axis=-1) <= 12)
        assert hits >= 20, f"{ct.ORGANS[value].name}: {hits} pixels of its colour {rgb} on the canvas"
    layer.opacity = opacity


def test_the_loop_in_one_window(make_napari_viewer, qtbot, tmp_path, abdomen_3mm_labels, abdomen_dicom_labels):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    label, train, predict, evaluate, export = (panel.steps[k] for k in
                                               ("label", "train", "predict", "evaluate", "export"))

    # open the CT: the Label tab offers it and prepares its working layer
    ct_layer = viewer.open(str(data_file("abdomen_3mm.nii.gz")), plugin="napari-ctorgans")[0]
    qtbot.waitUntil(lambda: "abdomen_3mm organs" in viewer.layers, timeout=10_000)
    work = viewer.layers["abdomen_3mm organs"]
    kept = Kept(work)
    assert window.width() <= 1280 and window.height() <= 800
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800

    # auto label lungs, then bone: both stay
    panel.show_step("label")
    _click(qtbot, label.buttons["lungs"])
    _wait(qtbot, label)
    kept.made(3)
    _click(qtbot, label.buttons["bone"])
    _wait(qtbot, label)
    kept.check("bone")
    kept.made(5)

    # grow liver, kidneys and bladder from clicked seeds inside each reference organ
    ref = abdomen_3mm_labels.array
    points = viewer.add_points(np.zeros((0, 3)), name="seeds", size=6, face_color="yellow")
    label.points_combo.setCurrentText("seeds")
    for value, n in ((1, 1), (4, 2), (2, 1)):
        points.data = [ct_layer.data_to_world(s) for s in _seeds(ref, value, n)]
        label.organ_combo.setCurrentText(ct.ORGANS[value].name)
        _click(qtbot, label.grow_button)
        _wait(qtbot, label)
        kept.check(f"growing {ct.ORGANS[value].name}")
        kept.made(value)
        grown = np.asarray(work.data) == value
        assert (grown & (ref == value)).sum() > 0.5 * (ref == value).sum()  # covers most of the organ
    viewer.layers.selection.active = work
    viewer.dims.set_point(0, ct_layer.data_to_world((int(_seeds(ref, 1)[0][0]), 0, 0))[0])
    _shot(viewer, "loop_1_labelled.png")
    _colour_check(viewer, work, (1, 2, 3, 4, 5), qtbot)

    # train a short run from the panel on the CT and its working layer
    panel.show_step("train")
    train.image_combo.setCurrentText(ct_layer.name)
    train.labels_combo.setCurrentText(work.name)
    train.add_pair()
    train.iterations.setValue(12)
    train.output_dir.setText(str(tmp_path / "run"))
    _click(qtbot, train.start_button)
    _wait(qtbot, train, timeout=400_000)
    assert train.checkpoint and Path(train.checkpoint).exists(), train.status.text()
    _shot(viewer, "loop_2_trained.png")
    kept.check("training")

    # predict the DICOM series
    series = viewer.open(str(data_file("abdomen_dicom")), plugin="napari-ctorgans")[0]
    panel.show_step("predict")
    predict.image_combo.setCurrentText(series.name)
    predict.checkpoint.setCurrentText(train.checkpoint)
    _click(qtbot, predict.button)
    _wait(qtbot, predict)
    pred = predict.result_layer
    assert pred is not None and pred.data.shape == series.data.shape, predict.status.text()
    kept.check("prediction")

    # paint a correction: the liver of the reference in the middle slice, with napari's brush
    truth = abdomen_dicom_labels.array
    z = truth.shape[0] // 2
    pred.brush_size = 15
    for y, x in np.argwhere(truth[z] == 1)[::40]:
        pred.paint((z, y, x), 1)
    corrected = np.array(pred.data)
    viewer.layers.selection.active = pred
    viewer.dims.set_point(0, series.data_to_world((z, 0, 0))[0])
    _shot(viewer, "loop_3_corrected.png")

    # add it to the training set, fine-tune
    predict.labels_combo.setCurrentText(pred.name)
    _click(qtbot, predict.add_case_button)
    assert len(train.cases) == 2, predict.status.text()
    panel.show_step("train")
    _click(qtbot, train.finetune_button)
    _wait(qtbot, train, timeout=400_000)
    assert "finetune" in train.checkpoint, train.status.text()
    kept.check("fine-tuning")
    np.testing.assert_array_equal(np.asarray(pred.data), corrected)

    # evaluate the corrected prediction against the reference
    panel.show_step("evaluate")
    ref_layer = evaluate.open_labels_file(data_file("abdomen_dicom_ctorg.nii.gz"), "reference")
    evaluate.pred_combo.setCurrentText(pred.name)
    evaluate.ref_combo.setCurrentText(ref_layer.name)
    _click(qtbot, evaluate.button)
    _wait(qtbot, evaluate)
    organs = [evaluate.table.item(i, 0).text() for i in range(evaluate.table.rowCount())]
    assert "liver" in organs, evaluate.status.text()
    _shot(viewer, "loop_4_evaluated.png")
    kept.check("evaluation")

    # save the user's labels
    panel.show_step("export")
    export.labels_combo.setCurrentText(work.name)
    export.path_edit.setText(str(tmp_path / "abdomen_organs.nii.gz"))
    _click(qtbot, export.save_button)
    _wait(qtbot, export)
    back = ct.read_labels(tmp_path / "abdomen_organs.nii.gz")
    np.testing.assert_array_equal(back.array, np.asarray(work.data))
    assert back.same_grid(ct.read_volume(data_file("abdomen_3mm.nii.gz")))
    kept.check("saving")
    _shot(viewer, "loop_5_saved.png")
    if SHOTS:  # the user's organs seen from the front, head up
        from napari_ctorgans._napari.panel import set_view

        for layer in [ly for ly in viewer.layers if ly not in (ct_layer, work)]:
            viewer.layers.remove(layer)  # the view frames what is left
        panel.view_combo.setCurrentText("coronal")
        viewer.dims.set_point(1, ct_layer.data_to_world((0, int(_seeds(ref, 1)[0][1]), 0))[1])
        qtbot.wait(300)
        _shot(viewer, "loop_6_coronal.png")
        set_view(viewer, "axial")
    assert window.width() <= 1280 and window.height() <= 800
