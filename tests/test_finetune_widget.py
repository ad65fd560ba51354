"""Correct-then-fine-tune in a real viewer: predict, correct the labels, "Add to training set", "Fine-tune",
predict again; the Dice on the corrected case rises and the first run's checkpoints stay untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_ctorgans as ct

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


def _mean_dice(pred, ref):
    organs = [v for v in np.unique(ref) if 0 < v < 255]
    return float(np.mean([ct.metrics.dice(pred == v, ref == v) for v in organs]))


def _predict(w, qtbot):
    worker = w.run()
    assert worker is not None, w.status.text()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    if w.prompt.pending:  # the earlier prediction layer holds the user's corrections: keep it
        w.prompt.answer("new layer")
    return np.array(w.result_layer.data)


def test_correct_then_fine_tune_raises_dice(make_napari_viewer, qtbot, tmp_path):
    from napari_ctorgans._napari.layers import image_layer_kwargs
    from napari_ctorgans._napari.predict_widget import PredictWidget
    from napari_ctorgans._napari.train_widget import TrainWidget
    from napari_ctorgans.train import TrainConfig, train

    # a poor model: a few iterations on another phantom
    first = tmp_path / "run"
    cfg = TrainConfig(iterations=3, crop_size=(24, 24, 24), spacing=6.0, batch_size=1, augment_at=-1,
                      output_dir=str(first), checkpoint_every=1)
    list(train(cfg, [ct.make_phantom(seed=0, spacing=6.0, shape=(32, 32, 32))]))
    first_bytes = (first / "last.pt").read_bytes()

    viewer = make_napari_viewer()
    vol, truth = ct.make_phantom(seed=1, spacing=6.0, shape=(32, 32, 32))
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="scan"))
    trainer = TrainWidget(viewer)
    viewer.window.add_dock_widget(trainer)
    predictor = PredictWidget(viewer)
    viewer.window.add_dock_widget(predictor)
    predictor.checkpoint.setCurrentText(str(first / "last.pt"))
    predictor.anatomy.setChecked(False)  # the phantom's toy anatomy has no bony pelvis for its bladder
    before = _predict(predictor, qtbot)
    dice_before = _mean_dice(before, truth)

    # the user's correction: the prediction layer becomes the true label map
    layer = predictor.result_layer
    assert predictor.labels_combo.currentText() == layer.name
    layer.data = truth.copy()
    assert predictor.add_to_training_set(), predictor.status.text()
    assert len(trainer.cases) == 1 and "snapshot" in trainer.case_list.item(0).text()
    layer.data = np.zeros_like(truth)  # a later edit does not change the snapshot
    np.testing.assert_array_equal(trainer.cases[0][1], truth)
    np.testing.assert_allclose(trainer.cases[0][0].spacing, vol.spacing)

    trainer.iterations.setValue(150)
    trainer.crop.setValue(24)
    trainer.lr.setValue(0.01)
    trainer.output_dir.setText(str(first))
    trainer.checkpoint = str(first / "last.pt")
    worker = trainer.fine_tune()
    assert worker is not None, trainer.status.text()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    tuned = tmp_path / "run-finetune-1" / "last.pt"
    assert trainer.checkpoint == str(tuned) and tuned.exists(), trainer.status.text()
    assert (first / "last.pt").read_bytes() == first_bytes  # the first run is untouched
    from napari_ctorgans.train import read_checkpoint

    info = read_checkpoint(tuned)
    assert info["train_config"]["init_checkpoint"] == str(first / "last.pt")
    assert info["train_config"]["spacing"] == 6.0

    predictor.checkpoint.setCurrentText(str(tuned))
    after = _predict(predictor, qtbot)
    dice_after = _mean_dice(after, truth)
    print(f"mean organ Dice before {dice_before:.3f}, after fine-tuning {dice_after:.3f}")
    assert dice_after > dice_before + 0.1, (dice_before, dice_after)


def test_add_and_fine_tune_report_missing_pieces(make_napari_viewer, tmp_path):
    from napari_ctorgans._napari.predict_widget import PredictWidget
    from napari_ctorgans._napari.train_widget import TrainWidget

    viewer = make_napari_viewer()
    predictor = PredictWidget(viewer)
    assert not predictor.add_to_training_set() and "choose a CT layer" in predictor.status.text()
    viewer.add_image(np.zeros((8, 8, 8), np.int16), name="scan")
    viewer.add_labels(np.zeros((8, 8, 8), np.uint8), name="fix")
    predictor.labels_combo.setCurrentText("fix")
    assert not predictor.add_to_training_set() and "open the Train widget" in predictor.status.text()
    trainer = TrainWidget(viewer)
    viewer.add_labels(np.zeros((4, 4, 4), np.uint8), name="small")
    assert not predictor.add_to_training_set("scan", "small") and "shape" in predictor.status.text()
    assert predictor.add_to_training_set("scan", "fix") and len(trainer.cases) == 1
    trainer.checkpoint = None
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert trainer.fine_tune(str(bad)) is None and "cannot fine-tune" in trainer.status.text()
    with pytest.raises(TypeError, match="volume must be"):
        trainer.add_snapshot(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)))
