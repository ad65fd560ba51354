"""The Train dock widget in a real viewer: training in a worker thread keeps the event loop running; Stop keeps
the last checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_ctorgans as ct

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


def _widget(viewer, tmp_path, iterations):
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs
    from napari_ctorgans._napari.train_widget import TrainWidget

    for seed in (0, 1):
        vol, lab = ct.make_phantom(seed=seed, spacing=6.0)
        viewer.add_image(vol.array, **image_layer_kwargs(vol, name=f"ct{seed}"))
        viewer.add_labels(lab, **labels_layer_kwargs(vol, name=f"labels{seed}"))
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.add_pair("ct0", "labels0")
    w.add_pair("ct1", "labels1")
    w.iterations.setValue(iterations)
    w.crop.setValue(24)
    w.lr.setValue(0.01)
    w.output_dir.setText(str(tmp_path / "run"))
    return w


def test_training_runs_in_the_background(make_napari_viewer, qtbot, tmp_path):
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    w = _widget(viewer, tmp_path, iterations=6)
    w.hold_out.setChecked(True)  # validate on the second pair
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    worker = w.start()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    timer.stop()
    assert len(ticks) >= 5, "the event loop stalled while training"
    assert [s.iteration for s in w.statuses] == list(range(1, 7))
    assert len(w.plot.train_points) == 6 and len(w.plot.val_points) >= 1
    assert "val Dice" in w.dice_label.text() and "finished 6 iterations" in w.status.text()
    model, info = ct.load_checkpoint(tmp_path / "run" / "last.pt")
    assert info["iteration"] == 6
    from napari_ctorgans._napari.train_widget import TRAINED_CHECKPOINTS

    assert str(tmp_path / "run" / "last.pt") in TRAINED_CHECKPOINTS
    # a second Start refuses to replace the run unless asked
    assert w.start() is None and "resume=True" in w.status.text()


def test_stop_keeps_the_last_checkpoint(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    w = _widget(viewer, tmp_path, iterations=10_000)
    worker = w.start()
    qtbot.waitUntil(lambda: len(w.statuses) >= 3, timeout=300_000)
    w.toggle_pause()
    assert w.pause_button.text() == "Resume"
    qtbot.wait(300)
    paused_at = len(w.statuses)
    qtbot.wait(1500)
    assert len(w.statuses) <= paused_at + 1  # paused (at most the iteration under way completes)
    w.stop()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    done = w.statuses[-1].iteration
    assert 3 <= done < 10_000 and "stopped at iteration" in w.status.text()
    from napari_ctorgans.train import read_checkpoint

    info = read_checkpoint(tmp_path / "run" / "last.pt")
    assert info["iteration"] == done
    assert w.start_button.isEnabled() and not w.stop_button.isEnabled()


def test_bad_input_is_reported_not_raised(make_napari_viewer, tmp_path):
    from napari_ctorgans._napari.train_widget import TrainWidget

    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    assert w.start() is None and "add at least one" in w.status.text()
    w.folder.setText(str(tmp_path / "missing"))
    assert w.start() is None and "not found" in w.status.text()
    assert np.isfinite(w.lr.value())
