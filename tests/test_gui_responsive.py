"""The viewer stays responsive during the long actions, on the native-resolution chest CT (512 x 512 x 141).

A 50 ms QTimer ticks while each action runs, from the click until its result is in the viewer; the largest gap
between ticks is the longest the user could not pan, scroll or paint. It must stay under 0.25 s; on a machine so
busy that the timer already misses its ticks with nothing running (the idle baseline, measured first), the
excess of that baseline over 0.1 s is added to the limit, so the test measures the plugin, not the neighbours.
Showing a new prediction layer is napari's own work (its layer visuals) and is reported separately.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from qtpy.QtCore import Qt, QTimer

import napari_ctorgans as ct
from conftest import data_file

pytestmark = [pytest.mark.gui, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

MAX_GAP_S = 0.25


def _gaps(qtbot, button, step, timeout=300_000) -> tuple[float, float]:
    """(longest gap while the work runs, gap around showing its result), from the click on."""
    # the viewer first draws what the test just set up (a new Points layer's first draw compiles its shaders for
    # ~0.2 s, a tab switch lays out its widgets): that is napari's work, not the action's
    qtbot.wait(300)
    ticks = [time.perf_counter()]
    done = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(50)
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    ticks.append(time.perf_counter())  # the click handler itself counts
    step.worker.returned.connect(lambda *_: done.append(time.perf_counter()))  # runs after the result is shown
    qtbot.waitUntil(lambda: step.worker is None, timeout=timeout)
    qtbot.wait(150)  # the result is drawn
    timer.stop()
    before = [t for t in ticks if t < done[0]]
    after = [t for t in ticks if t >= done[0]]
    return float(np.diff(before).max()), float(after[0] - before[-1]) if after else float("nan")


def _idle_gap(qtbot, seconds: float = 3.0) -> float:
    ticks = [time.perf_counter()]
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(50)
    qtbot.wait(int(seconds * 1000))
    timer.stop()
    return float(np.diff(ticks).max())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from napari_ctorgans.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(iterations=2, crop_size=(24, 24, 24), spacing=6.0, batch_size=1, augment_at=-1,
                      output_dir=str(out), checkpoint_every=1, model="cpu-small", bn_recalibration=0)
    list(train(cfg, [ct.make_phantom(seed=0, spacing=6.0, shape=(32, 32, 32))]))
    return str(out / "last.pt")


def test_long_actions_keep_the_viewer_responsive(make_napari_viewer, qtbot, checkpoint):
    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    label, predict = panel.steps["label"], panel.steps["predict"]
    chest = viewer.open(str(data_file("chest_native.nii.gz")), plugin="napari-ctorgans")[0]
    assert chest.data.shape == (141, 512, 512)
    qtbot.waitUntil(lambda: "chest_native organs" in viewer.layers, timeout=20_000)
    qtbot.wait(300)
    baseline = _idle_gap(qtbot)  # what a busy shared machine does to a 50 ms timer with nothing running
    allowed = MAX_GAP_S + max(0.0, baseline - 0.1)
    gaps = {}

    for organ in ("lungs", "bone"):
        gaps[f"auto label {organ}"] = max(_gaps(qtbot, label.buttons[organ], label))
    work = np.asarray(viewer.layers["chest_native organs"].data)
    assert (work == 3).sum() > 100_000 and (work == 5).sum() > 100_000

    # grow from one click in the mediastinum (the middle of the body at mid height)
    z = chest.data.shape[0] // 2
    body = np.argwhere(np.asarray(chest.data[z]) > -300)
    seed = (z, *np.round(body.mean(axis=0)))
    viewer.add_points([chest.data_to_world(seed)], name="seeds")
    label.points_combo.setCurrentText("seeds")
    gaps["grow"] = max(_gaps(qtbot, label.grow_button, label))
    assert (np.asarray(viewer.layers["chest_native organs"].data) == 1).sum() > 1000, label.status.text()

    panel.show_step("predict")
    predict.image_combo.setCurrentText(chest.name)
    predict.checkpoint.setCurrentText(checkpoint)
    gaps["predict"], shown_first = _gaps(qtbot, predict.button, predict)
    assert "chest_native prediction" in viewer.layers, predict.status.text()
    running, shown_again = _gaps(qtbot, predict.button, predict)
    gaps["predict"] = max(gaps["predict"], running)
    print("longest gaps (s):", {k: round(v, 3) for k, v in gaps.items()},
          f"showing the prediction: {shown_first:.3f} s (new layer), {shown_again:.3f} s (refreshed layer);",
          f"idle baseline {baseline:.3f} s, allowed {allowed:.3f} s")
    slow = {k: v for k, v in gaps.items() if v >= allowed}
    assert not slow, f"the GUI thread was blocked: {slow}"
    # napari itself needs a few tenths of a second to add a 512 x 512 x 141 Labels layer (its vispy visuals)
    assert shown_first < 1.0 and shown_again < 1.0


def test_saving_and_training_start_keep_the_viewer_responsive(make_napari_viewer, qtbot, tmp_path):
    """Save report, the DICOM-SEG and RTSTRUCT exports and the start of a training run, on the real DICOM abdomen
    (512 x 512 x 20, liver and bone): none blocks the GUI thread (the harness is ``gui_timing``; add an action as
    ``gaps[name] = action_gap(qtbot, click, done)``)."""
    from gui_timing import STALLS, action_gap, allowed_gap, idle_gap

    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    from napari_ctorgans._napari.layers import labels_layer_kwargs, volume_from_layer

    scan = viewer.open(str(data_file("abdomen_dicom")), plugin="napari-ctorgans")[0]
    vol = volume_from_layer(scan)  # the labels carry the CT series' geometry, as a prediction of it does
    labels = ct.read_labels(data_file("abdomen_dicom_ctorg.nii.gz"), like=vol)
    organs = viewer.add_labels(labels.array, **labels_layer_kwargs(vol, name="organs"))
    assert organs.data.shape == scan.data.shape == (20, 512, 512)
    qtbot.wait(300)
    allowed = allowed_gap(idle_gap(qtbot))
    gaps = {}
    left = lambda button: qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # noqa: E731

    evaluate = panel.show_step("evaluate")
    evaluate.stats_labels_combo.setCurrentText(organs.name)
    evaluate.stats_image_combo.setCurrentText(scan.name)
    left(evaluate.stats_button)
    assert len(evaluate.stats) >= 2, evaluate.stats_status.text()
    left(evaluate.report_button)
    dialog = evaluate.report_dialog
    png = tmp_path / "report.png"
    dialog.selectFile(str(png))
    gaps["save report"] = action_gap(qtbot, dialog.accept, lambda: evaluate.worker is None and png.exists(),
                                     name="save report")
    assert png.with_suffix(".csv").exists() and "wrote report.png" in evaluate.stats_status.text()

    export = panel.show_step("export")
    export.labels_combo.setCurrentText(organs.name)
    for text, name in (("DICOM-SEG (.dcm)", "organs.dcm"), ("DICOM RTSTRUCT (.dcm)", "organs.rtstruct.dcm")):
        export.format_combo.setCurrentText(text)
        export.path_edit.setText(str(tmp_path / name))
        gaps[text] = action_gap(qtbot, lambda: left(export.save_button), lambda: export.worker is None, name=text)
        assert (tmp_path / name).exists(), export.status.text()

    train = panel.show_step("train")
    train.add_pair(scan.name, organs.name)
    train.iterations.setValue(2)
    train.output_dir.setText(str(tmp_path / "run"))
    gaps["training start-up"] = action_gap(qtbot, lambda: left(train.start_button), lambda: bool(train.statuses),
                                           timeout=120_000, name="training start-up")
    left(train.stop_button)
    qtbot.waitUntil(lambda: train.worker is None, timeout=120_000)
    print("longest gaps (s):", {k: round(v, 3) for k, v in gaps.items()}, f"allowed {allowed:.3f} s")
    slow = {k: v for k, v in gaps.items() if v >= allowed}
    assert not slow, f"the GUI thread was blocked: {slow}; " + "; ".join(f"{k}: {STALLS[k]}" for k in slow)
