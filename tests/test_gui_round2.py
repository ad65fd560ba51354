"""The viewer, round two: closing napari mid-job, Stop that answers, the Augment preview, non-CT layers, DICOM
objects away from their series, the Train tab at 1280 x 800. Every test clicks the real buttons and checks after
each step that nothing the user made has vanished (:class:`Kept`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from qtpy.QtCore import Qt

import napari_ctorgans as ct
from conftest import ROOT, data_file

pytestmark = [pytest.mark.gui]


class Kept:
    """The user's layers (name -> data fingerprint) at one moment; :meth:`check` asserts each is still there,
    unchanged."""

    def __init__(self, viewer, *names):
        from napari_ctorgans._napari.layers import digest

        self.viewer = viewer
        self.digests = {n: digest(viewer.layers[n].data) for n in names}

    def check(self):
        from napari_ctorgans._napari.layers import digest

        for name, d in self.digests.items():
            assert name in self.viewer.layers, f"the user's layer {name!r} vanished"
            assert digest(self.viewer.layers[name].data) == d, f"the user's layer {name!r} was changed"


def _click(qtbot, button):
    qtbot.waitUntil(button.isVisible, timeout=5_000)  # a tab just brought to the front is drawn first
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


# ------------------------------------------------------------------------------------------ 11: closing mid-job
_CLOSE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import napari
    from qtpy.QtCore import QTimer
    viewer = napari.Viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    layer = viewer.open(sys.argv[1], plugin="napari-ctorgans")[0]
    predict = panel.show_step("predict")
    predict.image_combo.setCurrentText(layer.name)
    out = {}
    def close():
        out["running at close"] = predict.worker is not None
        out["t"] = time.perf_counter()
        viewer.window._qt_window.close()  # what the window's close button does
    def go():
        predict.button.click()
        QTimer.singleShot(700, close)
    QTimer.singleShot(300, go)
    napari.run()
    out.update(after_s=time.perf_counter() - out.pop("t"), closed=predict.closed, ended=predict.join(timeout=0))
    print("RESULT " + json.dumps(out), flush=True)
""")


@pytest.mark.slow
def test_closing_the_viewer_while_predict_runs_ends_cleanly(tmp_path):
    script = tmp_path / "close.py"
    script.write_text(_CLOSE_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".runtime" / "numba-cache"))
    proc = subprocess.run([sys.executable, str(script), str(data_file("chest_native.nii.gz"))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["running at close"], "the prediction ended before the window closed: nothing was tested"
    # the widgets were torn down with the window and the prediction stopped at its next tile, joined before exit
    assert result["closed"] and result["ended"], result


# ------------------------------------------------------------------------------------------ 12: Stop answers
STOPPING = dict(model="cpu-small", iterations=10_000, batch_size=1, crop_size=(16, 16, 16), spacing=8.0,
                learning_rate=0.01, loss="iou", validate_every=10_000, bn_recalibration=20_000, augment_at=-1,
                checkpoint_every=10_000)


@pytest.fixture
def stopping_preset(monkeypatch):
    from napari_ctorgans.train import TRAIN_PRESETS

    monkeypatch.setitem(TRAIN_PRESETS, "test-stopping", STOPPING)
    return "test-stopping"


def _train_tab(viewer, tmp_path, preset):
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs

    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    vol, lab = ct.make_phantom(seed=0, spacing=8.0, shape=(24, 24, 24))
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="ct0"))
    viewer.add_labels(lab, **labels_layer_kwargs(vol, name="labels0"))
    w = panel.show_step("train")
    w.preset.setCurrentText(preset)
    w.output_dir.setText(str(tmp_path / "run"))
    w.add_pair("ct0", "labels0")
    return dock, panel, w


@pytest.mark.slow
def test_stop_answers_at_once_shows_what_it_finishes_and_can_skip_the_recalibration(
        make_napari_viewer, qtbot, tmp_path, stopping_preset, one_torch_thread):
    from napari_ctorgans.train import read_checkpoint

    viewer = make_napari_viewer(show=True)
    dock, panel, w = _train_tab(viewer, tmp_path, stopping_preset)
    kept = Kept(viewer, "ct0", "labels0")
    _click(qtbot, w.start_button)
    worker = w.worker
    qtbot.waitUntil(lambda: len(w.statuses) >= 2, timeout=60_000)
    assert w.speed_label.text()  # the ETA while training
    _click(qtbot, w.stop_button)
    # the click itself answers: what is being finished, no stale ETA, Stop and Pause off, Skip offered
    assert w.status.text().startswith("stopping: finishing iteration"), w.status.text()
    assert "batch-norm" in w.status.text() and w.speed_label.text() == ""
    assert not w.stop_button.isEnabled() and not w.pause_button.isEnabled() and w.skip_button.isVisible()
    kept.check()
    # the recalibration shows its progress, and the status never flips back to a training iteration
    seen = []
    qtbot.waitUntil(lambda: seen.append(w.status.text()) or "recomputing batch-norm statistics" in seen[-1],
                    timeout=60_000)
    assert all(t.startswith("stopping") for t in seen), seen
    assert w.val_progress.isVisible() and w.val_progress.maximum() == STOPPING["bn_recalibration"]
    kept.check()
    t0 = time.perf_counter()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        _click(qtbot, w.skip_button)
    skipped_in = time.perf_counter() - t0
    done = w.statuses[-1].iteration
    assert "stopped at iteration" in w.status.text()
    assert read_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == done
    # 20 000 crops take minutes on a CPU: skipping ended the run within seconds
    assert skipped_in < 15, skipped_in
    assert w.start_button.isEnabled() and not w.skip_button.isVisible()
    kept.check()

    # closing the panel while a run is stopping ends the run (no recalibration left running unseen)
    w.output_dir.setText(str(tmp_path / "second"))
    _click(qtbot, w.start_button)
    worker = w.worker
    qtbot.waitUntil(lambda: len(w.statuses) >= 2, timeout=60_000)
    _click(qtbot, w.stop_button)
    qtbot.waitUntil(lambda: "recomputing batch-norm" in w.status.text(), timeout=60_000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        viewer.window.remove_dock_widget(dock)
    assert w.closed and time.perf_counter() - t0 < 15
    assert read_checkpoint(tmp_path / "second" / "last.pt")["iteration"] >= 2
    kept.check()


# ------------------------------------------------------------------------------------------ 13 and 16: preview, non-CT
def _combo_items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def _ct_combos(panel) -> dict:
    s = panel.steps
    return {"label": s["label"].image_combo, "augment": s["augment"].image_combo, "train": s["train"].image_combo,
            "predict": s["predict"].image_combo, "statistics": s["evaluate"].stats_image_combo}


def _labels_combos(panel) -> dict:
    s = panel.steps
    return {"train": s["train"].labels_combo, "predict": s["predict"].labels_combo,
            "evaluate": s["evaluate"].ref_combo, "export": s["export"].labels_combo}


def _crop(vol, lab):
    """A small real crop (the middle of the abdomen): every widget answers in a second."""
    from napari_ctorgans import Volume

    z, y, x = (n // 2 for n in vol.shape)
    box = (slice(z - 12, z + 12), slice(y - 48, y + 48), slice(x - 48, x + 48))
    crop = Volume(np.ascontiguousarray(vol.array[box]), spacing=vol.spacing,
                  origin=tuple(float(o) + s.start * float(d) for o, s, d in zip(vol.origin, box, vol.spacing)))
    return crop, np.ascontiguousarray(np.asarray(lab.array if hasattr(lab, "array") else lab)[box])


def test_augment_preview_lives_only_while_its_tab_is_open(make_napari_viewer, qtbot, abdomen_3mm,
                                                          abdomen_3mm_labels):
    from napari_ctorgans._napari.augment_widget import IMAGE_NAME, LABELS_NAME
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs

    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    vol, lab = _crop(abdomen_3mm, abdomen_3mm_labels)
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="abdomen"))
    viewer.add_labels(lab, **labels_layer_kwargs(vol, name="abdomen labels"))
    kept = Kept(viewer, "abdomen", "abdomen labels")
    qtbot.wait(200)
    camera = (tuple(viewer.scene.camera.center), viewer.scene.camera.zoom)
    aug = panel.show_step("augment")
    aug.labels_combo.setCurrentText("abdomen labels")
    qtbot.waitUntil(lambda: IMAGE_NAME in viewer.layers and LABELS_NAME in viewer.layers and not aug.busy,
                    timeout=30_000)
    kept.check()
    # the preview did not move the camera
    assert (tuple(viewer.scene.camera.center), viewer.scene.camera.zoom) == camera
    # the preview is never offered as a CT or as labels to work on, in any tab
    for where, combo in {**_ct_combos(panel), **_labels_combos(panel)}.items():
        assert IMAGE_NAME not in _combo_items(combo) and LABELS_NAME not in _combo_items(combo), where
    assert _combo_items(panel.steps["train"].image_combo) == ["abdomen"]
    # another tab: the preview goes, the camera stays, the user's layers stay
    panel.show_step("train")
    qtbot.waitUntil(lambda: IMAGE_NAME not in viewer.layers and LABELS_NAME not in viewer.layers, timeout=5_000)
    assert (tuple(viewer.scene.camera.center), viewer.scene.camera.zoom) == camera
    assert not {IMAGE_NAME, LABELS_NAME} & {ly.name for ly in viewer.layers}
    kept.check()
    # back on the Augment tab: drawn again; closing the panel takes it away for good
    panel.show_step("augment")
    qtbot.waitUntil(lambda: IMAGE_NAME in viewer.layers and not aug.busy, timeout=30_000)
    viewer.window.remove_dock_widget(dock)
    assert IMAGE_NAME not in viewer.layers and LABELS_NAME not in viewer.layers
    kept.check()


def test_non_ct_layers_are_not_offered_and_the_status_line_says_why(make_napari_viewer, qtbot, abdomen_3mm,
                                                                     abdomen_3mm_labels):
    from skimage import data as skdata

    from napari_ctorgans._napari.layers import image_layer_kwargs

    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    viewer.add_image(skdata.astronaut(), name="photo")  # a real 2D RGB photograph
    viewer.add_image(skdata.camera(), name="slice")  # a real 2D grey picture
    kept = Kept(viewer, "photo", "slice")
    for where, combo in _ct_combos(panel).items():
        assert _combo_items(combo) == [], where
    for name in ("label", "train", "predict"):
        text = panel.show_step(name).status.text()
        assert "'photo' is a colour (RGB) picture" in text and "'slice' is 2D (a CT is a 3D" in text, (name, text)
    aug = panel.show_step("augment")
    qtbot.waitUntil(lambda: not aug.busy, timeout=5_000)
    assert "computing" not in aug.status.text() and "'photo'" in aug.status.text(), aug.status.text()
    assert [ly.name for ly in viewer.layers] == ["photo", "slice"]
    kept.check()
    # a real CT is offered everywhere, the pictures still not
    vol, _ = _crop(abdomen_3mm, abdomen_3mm_labels)
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="abdomen"))
    for where, combo in _ct_combos(panel).items():
        assert _combo_items(combo) == ["abdomen"], where
    qtbot.waitUntil(lambda: not aug.busy and "seed" in aug.status.text(), timeout=30_000)
    kept.check()


# ------------------------------------------------------------------------------------------ 14: RTSTRUCT alone
@pytest.fixture(scope="module")
def rtstruct_alone(tmp_path_factory):
    """An RTSTRUCT of the real DICOM abdomen, saved in a folder of its own (away from its series)."""
    vol = ct.read_volume(data_file("abdomen_dicom"))
    labels = ct.read_labels(data_file("abdomen_dicom_ctorg.nii.gz"), like=vol)
    out = tmp_path_factory.mktemp("elsewhere") / "organs.rtstruct.dcm"
    ct.write_rtstruct(out, labels.array, like=vol)
    return out, vol.shape


def test_an_rtstruct_away_from_its_series_asks_for_the_ct_then_opens_on_it(make_napari_viewer, qtbot,
                                                                            rtstruct_alone):
    from napari.utils.notifications import notification_manager

    path, shape = rtstruct_alone
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((4, 8, 8), np.int16), name="mine")
    kept = Kept(viewer, "mine")
    # no CT series beside it, none open: nothing added, no "Choose reader", the user is told what to open
    assert viewer.open(str(path), plugin="napari-ctorgans") == []
    message = str(notification_manager.records[-1].message)
    assert "organs.rtstruct.dcm is a RTSTRUCT" in message and "Open the CT series first" in message, message
    assert "ct.read_labels" not in message and "like=" not in message
    assert [ly.name for ly in viewer.layers] == ["mine"]
    kept.check()
    # once the CT series is open (the same Frame of Reference), the RTSTRUCT opens on its grid
    ct_layer = viewer.open(str(data_file("abdomen_dicom")), plugin="napari-ctorgans")[0]
    kept = Kept(viewer, "mine", ct_layer.name)
    layers = viewer.open(str(path), plugin="napari-ctorgans")
    assert len(layers) == 1 and layers[0].data.shape == shape == ct_layer.data.shape
    assert set(np.unique(layers[0].data)) >= {0, 1}  # the liver is back
    np.testing.assert_allclose(layers[0].translate, ct_layer.translate)
    kept.check()


# ------------------------------------------------------------------------------------------ 17: 1280 x 800
def _controls(root):
    """Every control the user can operate inside ``root`` (the editors inside spin and combo boxes are theirs)."""
    from qtpy.QtWidgets import (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget, QSlider)

    kinds = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget, QSlider)
    return [c for c in root.findChildren(kinds)
            if not isinstance(c.parent(), (QAbstractSpinBox, QComboBox)) and c.isVisibleTo(root)]


def test_train_and_evaluate_tabs_at_1280_by_800(make_napari_viewer, qtbot, tmp_path, abdomen_3mm,
                                                abdomen_3mm_labels):
    from qtpy.QtWidgets import QScrollArea

    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs
    from napari_ctorgans._napari.predict_widget import DIGEST_KEY

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    vol, lab = _crop(abdomen_3mm, abdomen_3mm_labels)
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="abdomen_3mm"))
    viewer.add_labels(lab, **labels_layer_kwargs(vol, name="abdomen_3mm_ctorg"))
    predicted = viewer.add_labels(np.where(lab == 5, 0, lab), **labels_layer_kwargs(vol, name="abdomen_3mm prediction"))
    predicted.metadata[DIGEST_KEY] = "made by the Predict tab"
    kept = Kept(viewer, "abdomen_3mm", "abdomen_3mm_ctorg", "abdomen_3mm prediction")
    train = panel.steps["train"]
    train.crop.setValue(16)  # a quick step to time on a shared machine
    panel.show_step("train")
    # the labels of the CT by default: the layer that holds labels, not a tool's empty working layer
    assert train.labels_combo.currentText() == "abdomen_3mm_ctorg", _combo_items(train.labels_combo)
    qtbot.waitUntil(lambda: train.estimate_label.text().startswith("estimated time: about"), timeout=120_000)
    qtbot.wait(200)
    window.grab().save(str(tmp_path / "train_1280x800.png"))
    scroll = next(a for a in panel.findChildren(QScrollArea) if a.widget() is train)
    bottom = scroll.viewport().mapTo(window, scroll.viewport().rect().bottomLeft()).y()
    # the status, Start with its estimate and the whole plot show without scrolling, and nothing scrolls sideways
    for widget in (train.start_button, train.estimate_label, train.status, train.plot):
        assert widget.mapTo(window, widget.rect().bottomLeft()).y() <= bottom, widget
    assert scroll.verticalScrollBar().value() == 0 and not scroll.horizontalScrollBar().isVisible()
    # whole layer names, a tooltip on every control
    for combo in (train.image_combo, train.labels_combo):
        assert combo.width() > combo.fontMetrics().horizontalAdvance(combo.currentText()) + 20, combo.currentText()
    train.more_settings.expand()
    qtbot.wait(100)
    untipped = [(type(c).__name__, getattr(c, "text", lambda: "")()) for c in _controls(train) if not c.toolTip()]
    assert not untipped, untipped
    assert f"for {train.iterations.value()} iterations" in train.estimate_label.text()
    train.iterations.setValue(100)  # the step time is known: the estimate follows the iterations at once
    qtbot.waitUntil(lambda: "for 100 iterations" in train.estimate_label.text(), timeout=5_000)
    kept.check()

    # Evaluate: the prediction against the reference (not the prediction, not a tool's working layer)
    evaluate = panel.show_step("evaluate")
    assert evaluate.pred_combo.currentText() == "abdomen_3mm prediction"
    assert evaluate.ref_combo.currentText() == "abdomen_3mm_ctorg"
    with qtbot.waitSignal(evaluate.run().finished, timeout=60_000):
        pass
    qtbot.wait(100)
    assert evaluate.table.rowCount() >= 2 and not evaluate.table.horizontalScrollBar().isVisible()
    assert "not predicted" in [evaluate.table.item(i, 1).text() for i in range(evaluate.table.rowCount())]
    evaluate.all_metrics.setChecked(True)  # every column on request
    assert all(not evaluate.table.isColumnHidden(j) for j in range(evaluate.table.columnCount()))
    kept.check()
