"""The Predict dock widget in a real viewer: an aligned, editable Labels layer that is never overwritten after edits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_ctorgans as ct

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from napari_ctorgans.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = TrainConfig(iterations=2, crop_size=(24, 24, 24), spacing=6.0, batch_size=1, augment_at=-1,
                      output_dir=str(out), checkpoint_every=1)
    list(train(cfg, [ct.make_phantom(seed=0, spacing=6.0)]))
    torch.set_num_threads(n)
    return str(out / "last.pt")


def test_prediction_is_an_aligned_editable_layer(make_napari_viewer, qtbot, checkpoint):
    from napari.layers import Labels

    from napari_ctorgans._napari.layers import image_layer_kwargs
    from napari_ctorgans._napari.predict_widget import PredictWidget

    viewer = make_napari_viewer()
    vol, _ = ct.make_phantom(seed=4, spacing=(5.0, 4.0, 4.0), shape=(40, 50, 60))
    ct_layer = viewer.add_image(vol.array, **image_layer_kwargs(vol, name="scan"))
    w = PredictWidget(viewer)
    w.checkpoint.setCurrentText(checkpoint)
    w.overlap.setValue(0.25)
    worker = w.run()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    layer = viewer.layers["scan prediction"]
    assert isinstance(layer, Labels) and layer.data.shape == vol.shape
    np.testing.assert_allclose(layer.scale, ct_layer.scale)
    np.testing.assert_allclose(layer.translate, ct_layer.translate)
    assert w.progress.value() == w.progress.maximum() > 0  # the tile progress bar reached the end
    assert "automatic labellers" not in w.status.text()  # a trained checkpoint predicts every organ itself
    assert not w.labellers.isChecked()
    np.testing.assert_allclose(layer.get_color(3)[:3], ct.ORGANS[3].color[:3], atol=1e-3)  # organ colours
    # predicting again refreshes our unedited layer in place
    with qtbot.waitSignal(w.run().finished, timeout=300_000):
        pass
    assert [lyr.name for lyr in viewer.layers] == ["scan", "scan prediction"]
    # the user edits the prediction: the next prediction asks first and touches nothing until answered
    from qtpy.QtCore import Qt

    layer.data_setitem((np.array([1]), np.array([1]), np.array([1])), 2)
    edited = np.array(layer.data)
    with qtbot.waitSignal(w.run().finished, timeout=300_000):
        pass
    assert w.prompt.pending and "scan prediction" in w.prompt.text.text()
    np.testing.assert_array_equal(viewer.layers["scan prediction"].data, edited)
    qtbot.mouseClick(w.prompt.buttons["discard"], Qt.MouseButton.LeftButton)
    assert [lyr.name for lyr in viewer.layers] == ["scan", "scan prediction"]
    np.testing.assert_array_equal(viewer.layers["scan prediction"].data, edited)
    # "New layer" keeps the edit; "Replace" writes through the undo history
    with qtbot.waitSignal(w.run().finished, timeout=300_000):
        pass
    qtbot.mouseClick(w.prompt.buttons["new layer"], Qt.MouseButton.LeftButton)
    assert [lyr.name for lyr in viewer.layers] == ["scan", "scan prediction", "scan prediction [2]"]
    np.testing.assert_array_equal(viewer.layers["scan prediction"].data, edited)
    fresh = np.array(viewer.layers["scan prediction [2]"].data)
    with qtbot.waitSignal(w.run().finished, timeout=300_000):
        pass
    w.prompt.answer("replace")
    np.testing.assert_array_equal(viewer.layers["scan prediction"].data, fresh)
    viewer.layers["scan prediction"].undo()
    np.testing.assert_array_equal(viewer.layers["scan prediction"].data, edited)


def test_missing_inputs_and_bad_checkpoint(make_napari_viewer, tmp_path):
    from napari_ctorgans._napari.predict_widget import PredictWidget

    viewer = make_napari_viewer()
    w = PredictWidget(viewer)
    assert w.run() is None and "choose a CT layer" in w.status.text()
    viewer.add_image(np.zeros((20, 20, 20), np.float32), name="scan")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    w.checkpoint.setCurrentText(str(bad))
    assert w.run() is None and "truncated, corrupted" in w.status.text()
