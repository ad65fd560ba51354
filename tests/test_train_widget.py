"""The Train dock widget in a real viewer, clicking its real buttons: training in a worker thread, the live
pyqtgraph plot (axes, log loss, per-organ Dice lines), speed and ETA, the validation progress, Stop and Pause, and
the Resume / Replace / New folder choice when the output folder already holds a run; a resumed run's plot
starting with the run's history (kept in its last.pt)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from qtpy.QtCore import Qt

import napari_ctorgans as ct

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]

#: a real preset small enough for a test: ~0.1 s per iteration and a two-second validation on a 2-core CPU
TINY = dict(model="cpu-small", iterations=6, batch_size=1, crop_size=(16, 16, 16), spacing=8.0, learning_rate=0.01,
            loss="iou", validate_every=3, bn_recalibration=4, augment_at=-1, checkpoint_every=100, val_overlap=0.0)


@pytest.fixture
def tiny_preset(monkeypatch):
    from napari_ctorgans.train import TRAIN_PRESETS

    monkeypatch.setitem(TRAIN_PRESETS, "test-tiny", TINY)
    return "test-tiny"


def _widget(viewer, tmp_path, preset, iterations=6):
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs
    from napari_ctorgans._napari.train_widget import TrainWidget

    for seed in (0, 1):
        vol, lab = ct.make_phantom(seed=seed, spacing=8.0, shape=(24, 24, 24))
        viewer.add_image(vol.array, **image_layer_kwargs(vol, name=f"ct{seed}"))
        viewer.add_labels(lab, **labels_layer_kwargs(vol, name=f"labels{seed}"))
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.preset.setCurrentText(preset)
    w.add_pair("ct0", "labels0")
    w.add_pair("ct1", "labels1")
    w.iterations.setValue(iterations)
    w.output_dir.setText(str(tmp_path / "run"))
    return w


def _click_and_wait(qtbot, button, w):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert w.worker is not None, w.status.text()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)  # a refused run may finish within the click


@pytest.mark.slow  # 15-25 s on a loaded 2-core machine
def test_live_plot_speed_and_validation_progress(make_napari_viewer, qtbot, tmp_path, tiny_preset):
    from qtpy.QtCore import QTimer

    from napari_ctorgans._napari.train_widget import TRAINED_CHECKPOINTS, speed_and_eta

    viewer = make_napari_viewer()
    w = _widget(viewer, tmp_path, tiny_preset)
    w.hold_out.setChecked(True)  # validate on the second pair (iterations 3 and 6)
    seen, speeds, ticks = [], [], []
    # queued after the widget's own slot: records what the widget shows while the worker validates
    w._relay.progress.connect(lambda d, t, what: seen.append((d, t, what, not w.val_progress.isHidden(),
                                                              w.val_progress.text(), w.status.text())))
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    qtbot.mouseClick(w.start_button, Qt.MouseButton.LeftButton)
    worker = w.worker
    worker.yielded.connect(lambda s: speeds.append((len(w.statuses), w.speed_label.text())))
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    timer.stop()
    assert len(ticks) >= 5, "the event loop stalled while training"
    assert [s.iteration for s in w.statuses] == list(range(1, 7))
    assert "finished 6 iterations" in w.status.text()

    # the loss plot: labelled axes, a log y axis, the raw losses as data
    plot = w.plot.loss_plot
    assert plot.getAxis("left").logMode and not plot.getAxis("bottom").logMode
    assert plot.getAxis("left").labelText == "loss (log scale)" and plot.getAxis("bottom").labelText == "iteration"
    assert plot.ctrl.logYCheck.isChecked()
    np.testing.assert_array_equal(w.plot.loss_curve.xData, np.arange(1, 7))
    np.testing.assert_allclose(w.plot.loss_curve.yData, [max(s.loss, 1e-6) for s in w.statuses])
    # one Dice line per validated organ (organ colours from ct.ORGANS) plus the mean, each with two points
    final = w.statuses[-1].val_dice
    assert set(final) == {"liver", "bladder", "lungs", "kidneys", "bone"}
    assert set(w.plot.dice_curves) == set(final) | {"mean"}
    for name, curve in w.plot.dice_curves.items():
        np.testing.assert_array_equal(curve.xData, [3, 6])
        if name != "mean":
            np.testing.assert_allclose(curve.yData, [w.statuses[2].val_dice[name], final[name]])
            colour = curve.opts["pen"].color()
            expected = next(o.color for o in ct.ORGANS.values() if o.name == name)
            np.testing.assert_allclose(colour.getRgbF()[:3], expected[:3], atol=1 / 255)
    legend = {label.text for _, label in w.plot.dice_legend.items}
    assert legend == set(final) | {"mean"}
    assert w.plot.dice_plot.getAxis("left").labelText == "validation Dice"
    assert "val Dice: liver" in w.dice_label.text()

    # speed and ETA after every iteration from the second on, equal to what the statuses say
    assert speeds[0] == (1, "")
    for n, text in speeds[1:]:
        rate, eta = speed_and_eta(w.statuses[:n], 6, 3, True)
        assert re.fullmatch(r"(\d+\.\d\d it/s|\d+\.\d s/it \(\d+\.\d\d it/s\)), ETA \d+ s", text), text
        assert f"{rate:.2f} it/s" in text
        assert text.endswith(f"ETA {int(round(eta))} s")

    # the validation progress: batch norm, then the tiles of the validation case, shown while they run
    whats = [what for _, _, what, _, _, _ in seen]
    assert "batch norm" in whats and "validation, case 1 of 1" in whats
    tiles = [(d, t, shown, bar, status) for d, t, what, shown, bar, status in seen if what.startswith("validation")]
    assert tiles[-1][0] == tiles[-1][1] and all(shown for _, _, shown, _, _ in tiles)
    assert tiles[0][3].startswith("validation, case 1 of 1: tile 1 / ")
    assert tiles[0][4].startswith("iteration 3: validation, case 1 of 1 (1/")
    assert w.val_progress.isHidden()  # hidden again once the status arrived
    out = tmp_path / "run"
    assert str(out / "last.pt") in TRAINED_CHECKPOINTS and str(out / "best.pt") in TRAINED_CHECKPOINTS
    assert ct.load_checkpoint(out / "last.pt")[1]["iteration"] == 6


@pytest.mark.slow  # 15-25 s on a loaded 2-core machine
def test_second_start_offers_resume_replace_new_folder(make_napari_viewer, qtbot, tmp_path, tiny_preset):
    viewer = make_napari_viewer()
    w = _widget(viewer, tmp_path, tiny_preset, iterations=3)
    w.hold_out.setChecked(True)
    out = tmp_path / "run"
    _click_and_wait(qtbot, w.start_button, w)
    assert (out / "best.pt").exists()
    first_run = ct.load_checkpoint(out / "last.pt")[1]["run_id"]
    first = list(w.statuses)

    # a second Start: refused in the worker, the three ways on appear as buttons
    _click_and_wait(qtbot, w.start_button, w)
    assert not w.choice.isHidden()
    assert all(not b.isHidden() and b.isEnabled() for b in (w.resume_button, w.replace_button, w.new_folder_button))
    assert str(out) in w.choice_label.text() and "best.pt, last.pt" in w.choice_label.text()
    assert w.status.text() == f"not started: {out} already holds a run; choose Resume, Replace or New folder"
    assert w.statuses == [] and ct.load_checkpoint(out / "last.pt")[1]["iteration"] == 3

    # Resume with a changed setting is refused, naming it; the choice stays
    w.lr.setValue(0.02)
    _click_and_wait(qtbot, w.resume_button, w)
    assert w.status.text().startswith("cannot resume: the settings differ from the run's own in learning_rate "
                                      "0.01 -> 0.02; set them back and Resume, Replace the run, or train into a New "
                                      f"folder (cannot resume the run in {out}"), w.status.text()
    assert not w.choice.isHidden() and w.statuses == []
    assert ct.load_checkpoint(out / "last.pt")[1]["iteration"] == 3
    w.lr.setValue(0.01)
    # Resume with more iterations continues the run
    w.iterations.setValue(5)
    _click_and_wait(qtbot, w.resume_button, w)
    assert w.run_request["resume"] and not w.run_request["overwrite"]
    assert [s.iteration for s in w.statuses] == [4, 5] and "finished 5 iterations" in w.status.text()
    info = ct.load_checkpoint(out / "last.pt")[1]
    assert info["iteration"] == 5 and info["run_id"] == first_run
    # the plot shows the whole run: the first run's losses and Dice (from last.pt's history), then the resumed ones
    resumed = first + w.statuses
    np.testing.assert_array_equal(w.plot.loss_curve.xData, np.arange(1, 6))
    np.testing.assert_allclose(w.plot.loss_curve.yData, [max(s.loss, 1e-6) for s in resumed])
    np.testing.assert_array_equal(w.plot.smooth_curve.xData, np.arange(5, 6))
    validated = [s for s in resumed if s.val_dice]
    assert [s.iteration for s in validated] == [3, 5]
    assert set(w.plot.dice_curves) == set(validated[0].val_dice) | {"mean"}
    for name, curve in w.plot.dice_curves.items():
        np.testing.assert_array_equal(curve.xData, [3, 5])
        expected = [s.val_score if name == "mean" else s.val_dice[name] for s in validated]
        np.testing.assert_allclose(curve.yData, expected)
    assert [label.text for _, label in w.plot.dice_legend.items][-1] == "mean"
    assert w.progress.value() == 5 and w.progress.maximum() == 5
    # nothing left to resume: said so, and the plot shows the run's history
    _click_and_wait(qtbot, w.resume_button, w)
    assert w.status.text().startswith(f"nothing to resume: the run in {out} already reached 5 iterations")
    np.testing.assert_allclose(w.plot.loss_curve.yData, [max(s.loss, 1e-6) for s in resumed])
    assert w.dice_label.text().startswith("val Dice: liver")

    # New folder: a fresh run beside this one, which stays byte-identical
    before = (out / "last.pt").read_bytes()
    _click_and_wait(qtbot, w.start_button, w)
    assert not w.choice.isHidden()
    w.hold_out.setChecked(False)
    w.iterations.setValue(2)
    _click_and_wait(qtbot, w.new_folder_button, w)
    assert w.output_dir.text() == str(tmp_path / "run-1") and w.choice.isHidden()
    assert ct.load_checkpoint(tmp_path / "run-1" / "last.pt")[1]["iteration"] == 2
    assert (out / "last.pt").read_bytes() == before

    # Replace: a new run in the same folder
    w.output_dir.setText(str(out))
    _click_and_wait(qtbot, w.start_button, w)
    _click_and_wait(qtbot, w.replace_button, w)
    assert w.run_request["overwrite"] and not w.run_request["resume"]
    info = ct.load_checkpoint(out / "last.pt")[1]
    assert info["iteration"] == 2 and info["run_id"] != first_run and "finished 2 iterations" in w.status.text()
    assert not (out / "best.pt").exists()  # the old run's best.pt went with it


def test_stop_pause_and_closing_the_dock(make_napari_viewer, qtbot, tmp_path, tiny_preset):
    from napari_ctorgans.train import read_checkpoint

    viewer = make_napari_viewer()
    w = _widget(viewer, tmp_path, tiny_preset, iterations=10_000)
    qtbot.mouseClick(w.start_button, Qt.MouseButton.LeftButton)
    worker = w.worker
    qtbot.waitUntil(lambda: len(w.statuses) >= 3, timeout=60_000)
    qtbot.mouseClick(w.pause_button, Qt.MouseButton.LeftButton)
    assert w.pause_button.text() == "Continue" and w.status.text() == "paused"
    qtbot.wait(300)
    paused_at = len(w.statuses)
    qtbot.wait(1000)
    assert len(w.statuses) <= paused_at + 1  # paused (at most the iteration under way completes)
    qtbot.mouseClick(w.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(w.statuses) >= paused_at + 2, timeout=60_000)
    qtbot.mouseClick(w.stop_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    done = w.statuses[-1].iteration
    assert "stopped at iteration" in w.status.text()
    assert read_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == done
    assert w.start_button.isEnabled() and not w.stop_button.isEnabled()

    # closing the dock (its real close button) stops the run, which keeps its checkpoint, and unhooks the widget
    w.output_dir.setText(str(tmp_path / "second"))
    qtbot.mouseClick(w.start_button, Qt.MouseButton.LeftButton)
    worker = w.worker
    qtbot.waitUntil(lambda: len(w.statuses) >= 2, timeout=60_000)
    dock = w.parent()
    while dock is not None and not hasattr(dock, "title"):
        dock = dock.parent()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        qtbot.mouseClick(dock.title.close_button, Qt.MouseButton.LeftButton)
    assert w.closed
    n = len(w.statuses)
    assert read_checkpoint(tmp_path / "second" / "last.pt")["iteration"] >= n
    items = w.image_combo.count()
    viewer.add_image(np.zeros((4, 4, 4)), name="after close")
    assert w.image_combo.count() == items and len(w.statuses) == n
    for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed):
        assert not any(getattr(cb, "__self__", None) is w or (isinstance(cb, tuple) and cb[0]() is w)
                       for cb in emitter.callbacks)
    from napari_ctorgans._napari.train_widget import train_widget_for

    assert train_widget_for(viewer) is None


def test_file_pickers_and_a_narrow_tab(make_napari_viewer, qtbot, tmp_path, tiny_preset):
    from napari_ctorgans._napari.train_widget import TrainWidget

    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.minimumSizeHint().width() <= 420  # fits a narrow tab of the CT Organs panel
    cases = tmp_path / "cases"
    cases.mkdir()
    qtbot.mouseClick(w.folder_browse, Qt.MouseButton.LeftButton)
    dialog = w.file_dialog
    assert not dialog.isHidden() and dialog.fileMode() == dialog.FileMode.Directory
    dialog.selectFile(str(cases))
    dialog.accept()
    assert w.folder.text() == str(cases)
    qtbot.mouseClick(w.output_browse, Qt.MouseButton.LeftButton)
    w.file_dialog.selectFile(str(tmp_path))
    w.file_dialog.accept()
    assert w.output_dir.text() == str(tmp_path)

    params = ct.AugmentParams(noise_sigma=(0.0, 5.0))
    params.save(tmp_path / "aug.json")
    qtbot.mouseClick(w.augment_browse, Qt.MouseButton.LeftButton)
    dialog = w.file_dialog
    assert dialog.fileMode() == dialog.FileMode.ExistingFile and "*.json" in dialog.nameFilters()[0]
    dialog.selectFile(str(tmp_path / "aug.json"))
    dialog.accept()
    assert w.augment_json.text() == str(tmp_path / "aug.json")
    assert w.config().augment == params.to_dict()
    (tmp_path / "bad.json").write_text('{"noise_sigma": [0, 5],}')
    w.augment_json.setText(str(tmp_path / "bad.json"))
    qtbot.mouseClick(w.start_button, Qt.MouseButton.LeftButton)
    assert w.worker is None
    assert w.status.text().startswith(f"cannot start: augmentation file {tmp_path / 'bad.json'}")
    assert "not valid JSON" in w.status.text() and w.status.text().endswith("fix it or clear the field")


def test_bad_input_is_reported_not_raised(make_napari_viewer, tmp_path):
    from napari_ctorgans._napari.train_widget import TrainWidget

    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    assert w.start() is None and "add at least one" in w.status.text()
    w.folder.setText(str(tmp_path / "missing"))
    assert w.start() is None and "not found" in w.status.text()
    assert np.isfinite(w.lr.value())


def test_run_history_of_a_checkpoint(tmp_path):
    import torch

    from napari_ctorgans._napari.train_plot import run_history

    cfg = ct.TrainConfig.from_dict({**TINY, "iterations": 2, "bn_recalibration": 0,
                                    "output_dir": str(tmp_path / "run")})
    statuses = list(ct.train(cfg, [ct.make_phantom(seed=0, spacing=8.0, shape=(24, 24, 24))]))
    history = run_history(tmp_path / "run" / "last.pt")
    assert history == {"iterations": [1, 2], "losses": [s.loss for s in statuses], "validations": []}
    # a checkpoint that keeps no losses (an older run): no history, the plot starts at the resumed iteration
    data = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    data["state"] = {"iteration": 2}
    torch.save(data, tmp_path / "old.pt")
    assert run_history(tmp_path / "old.pt") is None
