"""The built-in starter model is the default model: ``ct.predict(volume)``, ``ctorgans predict`` without
``--checkpoint``, the Predict widget's first entry, and the start of Fine-tune when no model was trained."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import napari_ctorgans as ct
from conftest import data_file
from napari_ctorgans import models
from napari_ctorgans.cli import main


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def starter_labels():
    """The abdomen CT and the starter model's labels from ``ct.predict(volume)`` with no model given."""
    vol = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    return vol, ct.predict(vol)


def test_predict_without_a_model_uses_the_starter(starter_labels):
    vol, labels = starter_labels
    assert labels.shape == vol.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) - {0} <= set(ct.ORGANS) and labels.any()
    path = ct.starter_path()
    assert path == models.STARTER_FILE and path.name == "starter.safetensors" and path.is_file()
    # None, "starter" and the file itself are the same model; anything else passes through resolve_model unchanged
    for obj in (None, "starter", models.STARTER_LABEL):
        assert models.resolve_model(obj) == path
        assert ct.Predictor.coerce(obj).info["path"] == str(path)
    assert ct.Predictor.from_checkpoint("starter").info["path"] == str(path)
    assert models.resolve_model("runs/demo/best.pt") == "runs/demo/best.pt"
    np.testing.assert_array_equal(ct.predict(vol, path), labels)  # the default is exactly the starter file


def test_cli_predict_without_checkpoint_writes_the_starters_labels(starter_labels, tmp_path, capsys):
    vol, labels = starter_labels
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(data_file("abdomen_3mm.nii.gz")), "-o", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (")
    written = ct.read_labels(out)
    assert written.same_grid(vol)
    np.testing.assert_array_equal(written.array, labels)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    usage = capsys.readouterr().out
    assert usage.startswith("usage: ctorgans predict INPUT [--checkpoint C] -o OUTPUT [options]\n")
    assert "without --checkpoint: the built-in starter model" in usage


def test_missing_starter_file_is_a_clear_error(monkeypatch, tmp_path, capsys):
    real = ct.starter_path()
    missing = tmp_path / "models" / "starter.safetensors"
    monkeypatch.setattr(models, "STARTER_FILE", missing)  # a source checkout without the weights
    for call in (ct.starter_path, lambda: ct.predict(ct.make_phantom(seed=0, shape=(16, 16, 16))[0])):
        with pytest.raises(FileNotFoundError) as info:
            call()
        text = str(info.value)
        assert f"the built-in starter model is missing: {missing} does not exist" in text
        assert "ctorgans train --preset starter" in text and "export_starter('runs/starter-adapt/last.pt')" in text
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(data_file("abdomen_3mm.nii.gz")), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ctorgans predict: error: the built-in starter model is missing") and str(missing) in err
    assert not out.exists()

    # the export command the message names makes the file; it never replaces one silently
    assert models.export_starter(real) == missing and ct.starter_path() == missing
    assert missing.stat().st_mode & 0o777 == 0o644  # installed with the package, read by every user
    assert ct.load_checkpoint(missing)[1]["model_config"] == ct.load_checkpoint(real)[1]["model_config"]
    before = _sha(missing)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        models.export_starter(real)
    assert _sha(missing) == before


@pytest.mark.gui
def test_predict_widget_defaults_to_the_starter(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from napari.layers import Labels
    from qtpy.QtCore import Qt

    from napari_ctorgans._napari import train_widget
    from napari_ctorgans._napari.layers import image_layer_kwargs
    from napari_ctorgans._napari.predict_widget import PredictWidget

    # two models trained earlier in the session: listed after the starter, newest first
    monkeypatch.setattr(train_widget, "TRAINED_CHECKPOINTS", ["/runs/a/last.pt", "/runs/b/last.pt"])
    viewer = make_napari_viewer()
    w = PredictWidget(viewer)
    items = [w.checkpoint.itemText(i) for i in range(w.checkpoint.count())]
    assert items == [models.STARTER_LABEL, "/runs/b/last.pt", "/runs/a/last.pt"]
    assert w.checkpoint.currentText() == models.STARTER_LABEL and not w.button.isEnabled()
    vol = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="scan"))
    assert w.button.isEnabled() and w.checkpoint.currentText() == models.STARTER_LABEL  # only a CT layer
    qtbot.mouseClick(w.button, Qt.MouseButton.LeftButton)
    assert w.worker is not None, w.status.text()
    with qtbot.waitSignal(w.worker.finished, timeout=120_000):
        pass
    layer = viewer.layers["scan prediction"]
    assert isinstance(layer, Labels) and layer.data.shape == vol.shape
    assert "no organ found" not in w.status.text()
    assert "lungs and bone from the automatic labellers" in w.status.text()  # the starter's lungs and bone
    np.testing.assert_array_equal(np.isin(layer.data, (3, 5)), np.isin(ct.auto_label(vol), (3, 5)))
    # the labellers' box follows the model: on for the starter, off for a trained model, and the user's choice
    assert w.labellers.isChecked()
    w.checkpoint.setCurrentText("/runs/b/last.pt")
    assert not w.labellers.isChecked()
    w.checkpoint.setCurrentText(models.STARTER_LABEL)
    assert w.labellers.isChecked()
    w.labellers.click()  # the user turns it off: the network's own
    assert not w.labellers.isChecked()
    with qtbot.waitSignal(w.run().finished, timeout=120_000):
        pass
    assert "automatic labellers" not in w.status.text()
    np.testing.assert_array_equal(layer.data, ct.predict(vol, labelers=None))  # our unedited layer, refreshed

    # the file picker offers .pt and .safetensors checkpoints and puts the choice in the combo
    dialog = w.browse_checkpoint()
    assert dialog.nameFilters() == ["Checkpoints (*.pt *.safetensors)"]
    chosen = tmp_path / "mine.safetensors"
    chosen.write_bytes(b"")
    dialog.selectFile(str(chosen))
    dialog.accept()
    assert w.checkpoint.currentText() == str(chosen)


@pytest.mark.gui
@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tune_without_a_model_starts_from_the_starter(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from napari_ctorgans._napari import train_widget
    from napari_ctorgans._napari.train_widget import TrainWidget
    from napari_ctorgans.train import read_checkpoint

    monkeypatch.setattr(train_widget, "TRAINED_CHECKPOINTS", [])  # no model trained in this session
    starter = ct.starter_path()
    before = _sha(starter)
    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    assert "built-in starter model" in w.finetune_button.toolTip()
    vol, truth = ct.make_phantom(seed=1, spacing=3.0, shape=(32, 32, 32))
    w.add_snapshot(vol, truth, name="corrected")
    w.iterations.setValue(2)
    w.crop.setValue(24)
    w.output_dir.setText(str(tmp_path / "run"))
    worker = w.fine_tune()
    assert worker is not None, w.status.text()
    assert w.status.text().startswith("fine-tuning the built-in starter model")
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    out = tmp_path / "run-finetune-1"
    assert w.checkpoint == str(out / "last.pt"), w.status.text()
    info = read_checkpoint(out / "last.pt")
    assert info["train_config"]["init_checkpoint"] == str(starter)
    assert json.loads((out / "config.json").read_text())["init_checkpoint"] == str(starter)
    assert info["model_config"] == read_checkpoint(starter)["model_config"]
    assert _sha(starter) == before  # the packaged model is never written
